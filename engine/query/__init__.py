"""MLflow's query language, shared by every search: the filter and order_by grammar
(searchfilter.py) and offset page tokens with the `Page` they return (pagination.py).

Imports: `cairn.engine.errors` only.
"""
