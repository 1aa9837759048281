"""The storage layer every room stands on: the one LMDB environment and its one writer
(group commit, map growth), fixed-width big-endian keys, record codecs, interned key
names, content-addressed blobs and the artifact tree, the appliance's identity, clocks.

Imports: `cairn.engine.errors` only (and lmdb, msgspec); nothing here knows a domain.
"""
