"""`from cairn.features import FeatureEngineeringClient, FeatureLookup`: the feature
store's face, as `databricks.feature_engineering` (re-exports; logic in
cairn.engine.features and cairn.engine.sdk.features)."""
from cairn.engine.features.lookups import FeatureLookup, FeatureSpec
from cairn.engine.features.store import FeatureTable
from cairn.engine.sdk.features import FeatureEngineeringClient

__all__ = ["FeatureEngineeringClient", "FeatureLookup", "FeatureSpec", "FeatureTable"]
