"""Governance: who is calling and what happened. Principals (users, nested groups,
service principals), their credentials (personal access tokens stored as hashes,
passwords as scrypt hashes) and the audit log, an append-only hash chain in LMDB.
Grants (Unity Catalog's privileges on securables) build on these.

Imports: errors, store/.
"""
