"""MLflow 3's logged models: a model's record, params, tags, metrics and files, the
runs that made and used it, and search_logged_models.

Imports: errors, store/, query/, tracking/ (entities, records, validation).
"""
