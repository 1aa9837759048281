"""Signed model bundles: one registered version, its files, run and lineage as one tar
with a signed sha256 manifest (archive.py), this appliance's signing keys and the keys
it trusts (signing.py), export and verified import (transfer.py).

Imports: every room below, `cairn.engine.datadir` and sdk/ (model loading).
"""
