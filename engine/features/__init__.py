"""The feature store, Databricks Feature Engineering on one box: feature tables stored
as real Delta Lake tables under the data directory (`offline`, `frames`), point-in-time
training sets joined with DuckDB (`lookups`, `pointintime`, `trainingset`), the online
copy in LMDB (`store`, `records`), publishing to it from Delta's change feed
(`publish`), and filling a request's features by key at serving (`fill`).

`store`, `records`, `lookups` and `fill` need only LMDB and msgspec: an edge install
without the `features` extra (deltalake, pyarrow, DuckDB) still opens the engine and
serves models with online lookups. The rest is imported where it is used.

Imports: errors, store/, registry/ (names and the catalog namespace).
"""
