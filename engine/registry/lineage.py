"""get_lineage: where a model version came from, read live from the tracking store.

The version record keeps what was known when it was registered (run id, logged model
id, the version it was derived from); the run's facts (experiment, dataset inputs with
their context, source script and git tags, params, latest metrics) are read from the
tracking tables in the same snapshot, so a renamed experiment or a late metric shows.
A run that was deleted, or that this data directory never held (an imported version),
keeps its run_id; run_deleted is true only for a run that is there and deleted.
"""
from __future__ import annotations

import msgspec

from cairn.engine.registry.entities import Lineage, LineageDataset
from cairn.engine.registry.names import parse_model_name, version_number
from cairn.engine.store.keys import run_key, u64
from cairn.engine.tracking.entities import LifecycleStage
from cairn.engine.tracking.records import EXPERIMENT, RUN

DATASET_CONTEXT_TAG = "mlflow.data.context"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_REPO_TAG = "mlflow.source.git.repoURL"
# Version tags an imported model bundle records its origin with (engine/bundles/transfer.py).
ORIGIN_TAG_PREFIX = "cairn.origin."


def lineage(store, name: str, version) -> Lineage:
    full = parse_model_name(name)
    n = version_number(version)
    tracking = store._tracking
    db = store.env.dbs
    with store.env.read() as txn:
        mid, _rec = store._model(txn, full, name)
        vrec = store._version(txn, mid, name, n)
        out = Lineage(
            name=full.display,
            version=str(n),
            source=vrec.source,
            run_id=vrec.run_id,
            model_id=vrec.model_id,
            derived_from=vrec.derived_from,
            origin={k[len(ORIGIN_TAG_PREFIX):]: v for k, v in vrec.tags.items() if k.startswith(ORIGIN_TAG_PREFIX)},
        )
        try:
            run_b = run_key(vrec.run_id)
        except ValueError:  # no run, or not one of ours
            return out
        raw = txn.get(run_b, db=db["runs"]) if len(run_b) == 16 else None
        if raw is None:
            return out
        run = RUN.decode(raw)
        out.run_name = run.run_name
        out.run_deleted = run.lifecycle_stage == LifecycleStage.DELETED
        out.experiment_id = str(run.experiment_id)
        exp_raw = txn.get(u64(run.experiment_id), db=db["experiments"])
        if exp_raw is not None:
            out.experiment_name = EXPERIMENT.decode(exp_raw).name
        tags = tracking.run_tags(txn, run_b)
        out.source_name = tags.get(SOURCE_NAME_TAG, "")
        out.source_type = tags.get(SOURCE_TYPE_TAG, "")
        out.git_commit = tags.get(GIT_COMMIT_TAG, "")
        out.git_repo = tags.get(GIT_REPO_TAG, "")
        out.params = tracking.run_params(txn, run_b)
        out.metrics = {m.key: m.value for m in tracking.run_latest_metrics(txn, run_b)}
        out.datasets = [
            LineageDataset(
                name=di.dataset.name,
                digest=di.dataset.digest,
                source_type=di.dataset.source_type,
                source=di.dataset.source,
                context=next((t.value for t in di.tags if t.key == DATASET_CONTEXT_TAG), ""),
            )
            for di in tracking.run_inputs(txn, run_b, run.experiment_id)
        ]
    return out


def dataset_source_gist(source_type: str, source: str) -> str:
    """A dataset source is JSON ({"uri": ...} or the code's tags); show its gist."""
    try:
        doc = msgspec.json.decode(source)
    except msgspec.DecodeError:
        return source[:80]
    if isinstance(doc, dict):
        if "delta_version" in doc:  # a feature table (engine/sdk/features.py)
            return f"delta {doc.get('uri', '?')} at version {doc['delta_version']}"
        if "uri" in doc:
            return str(doc["uri"])
        tags = doc.get("tags")
        if isinstance(tags, dict) and tags.get("mlflow.source.name"):
            return f"code {tags['mlflow.source.name']}"
    return f"{source_type or 'unknown'}"


def lineage_nodes(lin: Lineage) -> list[tuple[str, list]]:
    """The version's ancestry as (label, children) trees: run -> datasets, source and
    commit; the logged model; the version it was derived from; the appliance an imported
    bundle came from. `cairn models lineage` draws it as text, the Models screen as a
    Tree."""
    nodes: list[tuple[str, list]] = []
    if lin.run_id:
        label = f"run {lin.run_name or '?'} ({lin.run_id})"
        if lin.experiment_id:
            label += f"  experiment {lin.experiment_name or '?'} ({lin.experiment_id})"
        if lin.run_deleted:
            label += "  [deleted]"
        kids: list[tuple[str, list]] = []
        if lin.datasets:
            kids.append(("datasets", [
                (f"{d.name}  digest {d.digest}" + (f"  [{d.context}]" if d.context else "")
                 + (f"  source {dataset_source_gist(d.source_type, d.source)}" if d.source else ""), [])
                for d in lin.datasets
            ]))
        else:
            kids.append(("datasets: none recorded", []))
        if lin.source_name:
            kids.append((f"source {lin.source_name}" + (f" ({lin.source_type})" if lin.source_type else ""), []))
        if lin.git_commit:
            kids.append((f"git commit {lin.git_commit}" + (f"  {lin.git_repo}" if lin.git_repo else ""), []))
        nodes.append((label, kids))
    elif not lin.derived_from:
        nodes.append((f"source {lin.source or '?'} (no run recorded)", []))
    if lin.model_id:
        nodes.append((f"logged model {lin.model_id}", []))
    if lin.derived_from:
        nodes.append((f"derived from {lin.derived_from}", []))
    if lin.origin:  # an imported model bundle (cairn bundle import)
        o = lin.origin
        label = (f"imported from {o.get('hostname') or '?'} (appliance {o.get('appliance_id', '?')}): "
                 f"{o.get('name', '?')} version {o.get('version', '?')}")
        if o.get("exported_at"):
            label += f", exported {o['exported_at']}"
        nodes.append((label, []))
    return nodes
