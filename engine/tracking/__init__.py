"""Experiment tracking: experiments, runs, params, tags, metric histories, datasets and
run search. `contract.TrackingStore` is the interface (its docstrings are the spec);
`lmdbstore.LmdbTrackingStore` implements it on LMDB (records.py says what each
sub-database holds).

Imports: errors, store/, query/.
"""
