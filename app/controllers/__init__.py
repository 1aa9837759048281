"""One Litestar controller per MLflow resource."""
