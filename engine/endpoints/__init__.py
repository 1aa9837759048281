"""Serving endpoints as stored configuration: served entities, traffic split, payload
logging settings, and the payload log's records. The live serving runtime is
`cairn.app.serving`'s; this room only stores and checks what it runs.

Imports: errors, store/, query/, registry/ (names).
"""
