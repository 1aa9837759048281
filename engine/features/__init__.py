"""The feature store, Databricks Feature Engineering on one box: feature tables stored
as real Delta Lake tables under the data directory (`offline`), point-in-time training
sets joined with DuckDB (`lookups`, `pointintime`, `trainingset`), and the online copy
in LMDB that serving reads (`online`). The offline side needs the `features` extra
(deltalake, pyarrow, DuckDB), imported only where it is used: an edge install without
it still opens the engine and serves online lookups from LMDB.

Imports: errors, store/, registry/ (names and the catalog namespace).
"""
