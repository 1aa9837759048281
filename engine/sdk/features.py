"""`FeatureEngineeringClient`, shaped like `databricks.feature_engineering`'s, so a
notebook's feature code ports by changing its import. Frames come back as pandas
(Databricks gives Spark DataFrames); `as_arrow=True` gives pyarrow tables instead.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import msgspec

from cairn.engine.errors import invalid
from cairn.engine.features.lookups import SPEC_JSON, FeatureLookup, FeatureSpec
from cairn.engine.features.store import FeatureStore, FeatureTable
from cairn.engine.sdk.context import current_user, open_engine
from cairn.engine.tracking.entities import Dataset

__all__ = ["FEATURE_SPEC_FILE", "FeatureEngineeringClient", "FeatureLookup", "FeatureTable", "TableDescription",
           "offline_store"]

# Beside MLmodel in a model logged from a training set; registration copies the folder,
# so a registered version carries it too (serving and score_batch read it there).
FEATURE_SPEC_FILE = "feature_spec.json"
FEATURE_DATASET_SOURCE = "delta"

# One OfflineStore per FeatureStore (its per-table write locks must be shared).
_offline: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_offline_lock = threading.Lock()


def offline_store(store: FeatureStore):
    """The Delta side of `store` (create, write, read, publish, training sets); a clear
    error when the `features` extra (deltalake, pyarrow, duckdb) is not installed."""
    with _offline_lock:
        found = _offline.get(store)
        if found is None:
            try:
                from cairn.engine.features.offline import OfflineStore
            except ImportError as exc:
                raise invalid(f"Feature tables need the 'features' extra (pip install 'cairn[features]'): "
                              f"{exc}") from None
            found = _offline[store] = OfflineStore(store)
        return found


def version_filler(engine, mv):
    """The FeatureFiller of a registered version logged from a training set (its copied
    feature_spec.json), or None for a model that takes all its inputs from the caller."""
    from cairn.engine.errors import CairnError
    from cairn.engine.features.fill import FeatureFiller

    if not mv.storage_location:
        return None
    try:
        with engine.artifacts.open(f"{mv.storage_location}/{FEATURE_SPEC_FILE}") as f:
            raw = f.read()
    except CairnError:  # no spec: a plain model
        return None
    return FeatureFiller.from_json(raw, engine.features)


class TableDescription(msgspec.Struct, kw_only=True):
    """One table as `cairn features show`, the REST describe route and the UI's
    Features screen show it: the table, its newest Delta versions and the registered
    versions trained on it as (model, version, the table's Delta version)."""

    feature_table: FeatureTable
    history: list[dict[str, Any]]
    models: list[tuple[str, str, int]]


class FeatureEngineeringClient:
    def __init__(self, data_dir: str | os.PathLike | None = None, *, engine=None):
        """On `data_dir` (default: the tracking directory), or on an already opened
        `engine` (the server and the UI, which hold one and must not open it again)."""
        self._engine = engine if engine is not None else open_engine(data_dir)
        self._store = self._engine.features

    @property
    def _offline(self):
        return offline_store(self._store)

    # -- tables -------------------------------------------------------------------------
    def create_table(self, name: str, primary_keys: str | Sequence[str], df: Any = None, *,
                     timestamp_keys: str | Sequence[str] | None = None, schema: Any = None,
                     description: str | None = None, tags: dict[str, str] | None = None) -> FeatureTable:
        return self._offline.create_table(name, primary_keys, timestamp_keys, df=df, schema=schema,
                                          description=description, tags=tags, creator=current_user())

    def write_table(self, name: str, df: Any, mode: str = "merge") -> int:
        """Upsert on the keys, one Delta commit; returns the table's new Delta version."""
        return self._offline.write_table(name, df, mode)

    def read_table(self, name: str, as_of_version: int | None = None, *, as_arrow: bool = False):
        table = self._offline.read_table(name, as_of_version)
        return table if as_arrow else table.to_pandas()

    def get_table(self, name: str) -> FeatureTable:
        return self._offline.get_table(name)

    def list_tables(self) -> list[FeatureTable]:
        return self._offline.list_tables()

    def drop_table(self, name: str) -> None:
        self._store.drop_table(name)

    def set_feature_table_tag(self, table_name: str, key: str, value: str) -> None:
        self._store.set_tag(table_name, key, value)

    def delete_feature_table_tag(self, table_name: str, key: str) -> None:
        self._store.delete_tag(table_name, key)

    # -- training and serving -----------------------------------------------------------
    def create_training_set(self, df: Any, feature_lookups: Sequence[FeatureLookup], label: str | None,
                            exclude_columns: Sequence[str] | None = None):
        return self._offline.create_training_set(df, list(feature_lookups), label, exclude_columns)

    def create_feature_spec(self, name: str, features: Sequence[FeatureLookup],
                            exclude_columns: Sequence[str] | None = None) -> FeatureSpec:
        """A named set of lookups (Databricks' feature spec) that a feature serving
        endpoint serves: keys in, feature values out. Checked against the tables now."""
        import pyarrow as pa

        from cairn.engine.features.trainingset import resolve

        lookups = list(features)
        if not lookups or not all(isinstance(f, FeatureLookup) for f in lookups):
            raise invalid("features: a list of FeatureLookup is required")
        specs = []
        for lookup in lookups:
            # There is no frame yet (requests bring the keys): check the lookup against a
            # frame whose key columns have the table's own key types.
            _, rec = self._store.record(lookup.table_name)
            schema = self._offline.arrow_schema(self._offline.delta(rec))
            pairs = list(zip(lookup.lookup_key, rec.primary_keys))
            if lookup.timestamp_lookup_key and rec.timestamp_keys:
                pairs.append((lookup.timestamp_lookup_key, rec.timestamp_keys[0]))
            request = pa.schema([schema.field(key).with_name(column) for column, key in pairs])
            specs.append(resolve(self._offline, lookup, request))
        excluded = list(exclude_columns or [])
        outputs = [out for s_ in specs for out in s_.outputs]
        if len(set(outputs)) != len(outputs):
            raise invalid("features: two lookups give the same output name; rename one with rename_outputs")
        spec = FeatureSpec(lookups=specs, label=None, exclude_columns=excluded,
                           input_columns=list(dict.fromkeys(k for s_ in specs for k in s_.lookup_key)),
                           feature_columns=[o for o in outputs if o not in excluded])
        self._store.put_feature_spec(name, SPEC_JSON.encode(spec))
        return spec

    def get_feature_spec(self, name: str) -> FeatureSpec:
        from cairn.engine.features.lookups import SPEC_DECODE

        return SPEC_DECODE.decode(self._store.feature_spec_json(name))

    def delete_feature_spec(self, name: str) -> None:
        self._store.delete_feature_spec(name)

    def publish_table(self, name: str, ttl: Any = None):
        """The latest row per key into the online store (incremental; see publish.py)."""
        return self._offline.publish_table(name, ttl)

    def lookup_online(self, name: str, keys: Sequence[Sequence[Any]],
                      feature_names: Sequence[str] | None = None) -> list[dict[str, Any] | None]:
        """Each key's published features, None where missing or stale."""
        return self._store.lookup(name, keys, feature_names)

    def log_model(self, model: Any, artifact_path: str = "model", *, training_set, flavor: Any = None,
                  registered_model_name: str | None = None, input_example: Any = None,
                  await_registration_for: int = 300):
        """Log a scikit-learn model trained on `training_set` into the active run, with
        the set's feature spec beside it (`feature_spec.json`: tables, their Delta
        versions, lookup keys, renames) and each feature table recorded as a training
        input of the run, so lineage reads model -> run -> feature tables at versions.
        `flavor` is accepted for Databricks' signature (only scikit-learn is logged)."""
        del flavor
        from cairn.engine.sdk import fluent, modellogging

        if open_engine() is not self._engine:
            raise invalid("log_model: this client's data directory is not the tracking directory; "
                          "create it without a path, or cairn.set_tracking_dir() to it first")
        spec: FeatureSpec = training_set.feature_spec
        frame = training_set.load_df()
        labels = [spec.label] if isinstance(spec.label, str) else list(spec.label or [])
        inputs = frame.drop(columns=[c for c in labels if c in frame.columns])
        info = modellogging.log_model(model, artifact_path, input_example=inputs.head(5) if input_example is None
                                      else input_example, training_data=inputs)
        client, run_id = fluent._client(), fluent._run_id()
        client.log_bytes(run_id, SPEC_JSON.encode(spec), f"{info.artifact_path}/{FEATURE_SPEC_FILE}")
        for lookup in spec.lookups:
            fluent.log_input(self._table_dataset(lookup.table_name, lookup.table_version), context="training")
        if registered_model_name:
            mv = fluent.register_model(info.model_uri, registered_model_name,
                                       await_registration_for=await_registration_for)
            info.registered_model_version = int(mv.version)
        return info

    def describe_table(self, name: str, history: int = 10) -> TableDescription:
        return TableDescription(feature_table=self.get_table(name), history=self._offline.history(name, history),
                                models=self.models_using(name))

    def score_batch(self, model_uri: str, df: Any, result_type: Any = None):
        """Score `df` (keys, timestamps and any request-time columns) with a model logged
        from a training set: its features are joined point-in-time from each table's
        current Delta version, the model runs in ONNX Runtime, and the frame comes back
        (pandas) with a `prediction` column. `result_type` is accepted for Databricks'
        signature."""
        del result_type
        from cairn.engine.features import frames
        from cairn.engine.features.trainingset import join_features
        from cairn.engine.sdk.modelloading import load_model

        spec = self._model_spec(model_uri)
        frame = frames.to_arrow(df)
        joined = join_features(self._offline, frame, spec, pinned=False)
        labels = [spec.label] if isinstance(spec.label, str) else list(spec.label or [])
        inputs = joined.drop_columns([c for c in labels if c in joined.column_names]).to_pandas()
        out = joined.to_pandas()
        out["prediction"] = list(load_model(model_uri, engine=self._engine).predict(inputs))
        return out

    def _model_spec(self, model_uri: str) -> FeatureSpec:
        """The feature_spec.json of a registered version (`models:/...`) or of a model
        folder in a run (`runs:/RUN/PATH`)."""
        from cairn.engine.errors import CairnError
        from cairn.engine.features.lookups import SPEC_DECODE
        from cairn.engine.registry.registration import proxy_path
        from cairn.engine.sdk.modelloading import resolve_version

        if model_uri.startswith("models:/"):
            mv = resolve_version(self._engine.registry, model_uri[len("models:/"):].strip("/"), model_uri)
            where = mv.storage_location
        elif model_uri.startswith("runs:/"):
            run_id, _, path = model_uri[len("runs:/"):].strip("/").partition("/")
            where = f"{proxy_path(self._engine.tracking.get_run(run_id).info.artifact_uri)}/{path.strip('/')}"
        else:
            raise invalid(f"score_batch: use a models:/ or runs:/ URI, got {model_uri!r}")
        try:
            with self._engine.artifacts.open(f"{where}/{FEATURE_SPEC_FILE}") as f:
                return SPEC_DECODE.decode(f.read())
        except CairnError:
            raise invalid(f"score_batch: {model_uri} was not logged with a training set (no {FEATURE_SPEC_FILE}); "
                          "use cairn.load_model(uri).predict(df) for it") from None

    def models_using(self, table_name: str) -> list[tuple[str, str, int]]:
        """(model, version, Delta version of the table) for every registered version
        trained on the table, read from the versions' lineage (their runs' delta inputs)."""
        full = self._store.record(table_name)[0].full
        out = []
        registry = self._engine.registry
        token = None
        while True:
            page = registry.search_model_versions(max_results=1000, page_token=token)
            for mv in page.items:
                if not mv.run_id:
                    continue
                for d in registry.get_lineage(mv.name, mv.version).datasets:
                    if d.source_type != FEATURE_DATASET_SOURCE:
                        continue
                    try:
                        src = json.loads(d.source)
                    except ValueError:
                        continue
                    if src.get("table") == full:
                        out.append((mv.name, str(mv.version), int(src.get("delta_version", -1))))
            token = page.next_page_token
            if not token:
                return out

    def _table_dataset(self, table_name: str, version: int):
        """A feature table at a Delta version as an MLflow dataset input."""
        table = self._store.entity(*self._store.record(table_name))
        digest = hashlib.sha256(f"{table.table_id}:{table_name}@{version}".encode()).hexdigest()[:8]
        source = json.dumps({"uri": table.path, "table": table_name, "delta_version": version})
        return Dataset(name=table.name, digest=digest, source_type=FEATURE_DATASET_SOURCE, source=source)
