"""Model bundles between appliances: one registered version as one signed file.

`export_bundle` writes the version's registered copy (ONNX, MLmodel, the original
model), its metadata, its lineage and its run (params, tags, every metric point, dataset
inputs) into a bundle (engine/bundles/archive.py), signed with this appliance's key.

`import_bundle` reads and verifies the whole bundle first (digests, signature, trust)
and only then writes: it recreates the run under its original id (so a run exported
and imported twice, or two versions of one run, never make two runs), registers the
version through the registrar (which verifies the ONNX model in ONNX Runtime as for any
registration; the original model, whose pickle runs code, is loaded to re-verify the
conversion only when a trusted key signed the bundle) and records the origin as
`cairn.origin.*` version tags, which lineage shows. Importing a version that is already here reports the version already here.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime

import msgspec

from cairn.engine.bundles.archive import (
    Bundle,
    BundleOrigin,
    SignerCheck,
    check_signer,
    read_bundle,
    write_bundle,
)
from cairn.engine.bundles.signing import load_private_key, own_key_path, trusted_keys
from cairn.engine.errors import CairnError, invalid
from cairn.engine.models.signature import OnnxSignature
from cairn.engine.registry.contract import SEARCH_MODEL_VERSIONS_MAX
from cairn.engine.registry.entities import ModelVersion, Stage, VersionStatus
from cairn.engine.registry.lineage import ORIGIN_TAG_PREFIX
from cairn.engine.registry.names import check_alias_name, parse_model_name
from cairn.engine.registry.registration import ORIGINAL_TAG, SKIP_ORIGINAL, proxy_path
from cairn.engine.sdk.modelloading import resolve_version, version_onnx
from cairn.engine.store.appliance import appliance_identity
from cairn.engine.store.artifacts import blob_scratch
from cairn.engine.tracking.contract import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH
from cairn.engine.tracking.entities import LifecycleStage, Metric, Param, Run, RunTag

MODEL_DIR = "model"
VERSION_FILE = "version.json"
LINEAGE_FILE = "lineage.json"
# MessagePack, not JSON: metric values may be NaN or infinite, which JSON cannot hold.
RUN_FILE = "run.msgpack"
# Imported model files are staged here (by bundle digest) before registration copies them.
STAGING_PREFIX = "bundles"
# How long an import waits for the registrar to verify the version.
IMPORT_TIMEOUT_S = 300.0
# The run tag that marks a run recreated from a bundle (its value: the origin appliance).
RUN_ORIGIN_TAG = f"{ORIGIN_TAG_PREFIX}appliance_id"


class VersionMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the registry said about the version when it was exported."""

    name: str
    full_name: str
    version: str
    description: str = ""
    tags: dict[str, str] = {}
    aliases: list[str] = []
    stage: str = Stage.NONE
    status: str = ""
    source: str = ""
    run_id: str = ""
    user_id: str = ""
    creation_timestamp: int = 0
    signature: OnnxSignature | None = None
    model_description: str = ""
    model_tags: dict[str, str] = {}


class RunExport(msgspec.Struct, kw_only=True):
    run: Run
    experiment_name: str = ""
    metric_history: dict[str, list[Metric]] = {}


class ExportResult(msgspec.Struct, kw_only=True):
    path: str
    digest: str
    name: str
    version: str
    files: int
    size: int
    signer: str = ""  # fingerprint; "" when unsigned


class ImportResult(msgspec.Struct, kw_only=True):
    name: str
    version: str
    status: str
    existing: bool  # the version was already here; nothing was written
    run_id: str = ""
    run_created: bool = False
    digest: str = ""
    signer: SignerCheck | None = None


# -- export ------------------------------------------------------------------------------
def signing_key(data_dir: str | os.PathLike, key_path: str | os.PathLike | None):
    """The key to sign with: `key_path`, else this appliance's key, else None."""
    if key_path is not None:
        return load_private_key(key_path)
    own = own_key_path(data_dir)
    return load_private_key(own) if own is not None else None


def export_bundle(eng, uri: str, out: str | os.PathLike, *, key=None, user_id: str = "") -> ExportResult:
    """Write the version `uri` names (models:/NAME/N, @ALIAS, /STAGE, /latest) to `out`."""
    if not uri.startswith("models:/"):
        raise invalid(f"Cannot export {uri!r}: name a registered version, e.g. models:/NAME@ALIAS or models:/NAME/1")
    mv = resolve_version(eng.registry, uri[len("models:/"):].strip("/"), uri)
    version_onnx(eng, mv)  # refuses, with the reason, a version that is not READY or has no files
    full = mv.full_name or parse_model_name(mv.name).full
    files: dict[str, bytes] = {}
    cut = len(mv.storage_location) + 1
    for path, _entry in eng.artifacts.walk(mv.storage_location):
        with eng.artifacts.open(path) as f:
            files[f"{MODEL_DIR}/{path[cut:]}"] = f.read()
    model = eng.registry.get_registered_model(full)
    meta = VersionMetadata(
        name=mv.name, full_name=full, version=mv.version, description=mv.description,
        tags=mv.tags_dict, aliases=list(mv.aliases), stage=mv.current_stage, status=mv.status,
        source=mv.source, run_id=mv.run_id, user_id=mv.user_id, creation_timestamp=mv.creation_timestamp,
        signature=mv.signature, model_description=model.description, model_tags=model.tags_dict,
    )
    files[VERSION_FILE] = _pretty(meta)
    files[LINEAGE_FILE] = _pretty(eng.registry.get_lineage(full, mv.version))
    run_doc = _run_export(eng, mv.run_id)
    if run_doc is not None:
        files[RUN_FILE] = msgspec.msgpack.encode(run_doc)
    ident = appliance_identity(eng.path)
    origin = BundleOrigin(
        appliance_id=ident.appliance_id, hostname=ident.hostname, name=full, version=mv.version,
        run_id=mv.run_id, source=mv.source, exported_by=user_id,
    )
    bundle = write_bundle(out, origin, files, key)
    return ExportResult(
        path=bundle.path, digest=bundle.digest, name=mv.name, version=mv.version, files=len(files),
        size=bundle.size, signer=bundle.signature.fingerprint if bundle.signature else "",
    )


def _pretty(obj) -> bytes:
    return msgspec.json.format(msgspec.json.encode(obj), indent=2)


def _run_export(eng, run_id: str) -> RunExport | None:
    """The version's run with every metric point, or None when it has none here."""
    if not run_id:
        return None
    try:
        run = eng.tracking.get_run(run_id)
    except CairnError:
        return None  # registered from a file, or its run lives on another appliance
    exp = eng.tracking.get_experiment(run.info.experiment_id)
    history = {m.key: eng.tracking.get_metric_history(run_id, m.key).items for m in run.data.metrics}
    return RunExport(run=run, experiment_name=exp.name, metric_history=history)


# -- reading -----------------------------------------------------------------------------
class BundleContents(msgspec.Struct, kw_only=True):
    bundle: Bundle
    signer: SignerCheck
    meta: VersionMetadata
    run: RunExport | None


def open_bundle(data_dir: str | os.PathLike, path: str | os.PathLike) -> BundleContents:
    """The bundle at `path`, verified (digests, signature) and decoded; `signer.refusal`
    says why this appliance's trusted keys would refuse it (inspect shows it, import
    raises it). Nothing is written but the spooled copies of its files, in the data
    directory's blob scratch space when there is one (the bundle's `close()` removes
    them)."""
    # The blob store's scratch space: on the same disk as the blobs the files become,
    # and cleaned of a crash's leftovers at open.
    scratch = blob_scratch(data_dir)
    bundle = read_bundle(path, spool_dir=scratch if scratch.is_dir() else None)
    try:
        return _decoded(data_dir, bundle)
    except BaseException:
        bundle.close()
        raise


def _decoded(data_dir, bundle: Bundle) -> BundleContents:
    signer = check_signer(bundle, trusted_keys(data_dir))
    where = f"Bundle {bundle.path}"
    try:
        meta = msgspec.json.decode(bundle.files[VERSION_FILE], type=VersionMetadata)
    except KeyError:
        raise invalid(f"{where} holds no {VERSION_FILE}: not a model version bundle") from None
    except msgspec.DecodeError as exc:
        raise invalid(f"{where} has an unreadable {VERSION_FILE}: {exc}") from None
    run = None
    if RUN_FILE in bundle.files:
        try:
            run = msgspec.msgpack.decode(bundle.files[RUN_FILE], type=RunExport)
        except msgspec.DecodeError as exc:
            raise invalid(f"{where} has an unreadable {RUN_FILE}: {exc}") from None
    if not any(p.startswith(f"{MODEL_DIR}/") for p in bundle.files):
        raise invalid(f"{where} holds no model files ({MODEL_DIR}/)")
    return BundleContents(bundle=bundle, signer=signer, meta=meta, run=run)


# -- import ------------------------------------------------------------------------------
def import_bundle(
    eng, path: str | os.PathLike, *, name: str | None = None, alias: str | None = None,
    user_id: str = "", timeout: float = IMPORT_TIMEOUT_S,
) -> ImportResult:
    """Verify the bundle at `path` completely, then register its version here (see the
    module doc). `name` registers it under another name (catalog.schema.model works)."""
    contents = open_bundle(eng.path, path)
    try:
        return _import(eng, contents, name, alias, user_id, timeout)
    finally:
        contents.bundle.close()


def _import(eng, contents: BundleContents, name: str | None, alias: str | None, user_id: str,
            timeout: float) -> ImportResult:  # fmt: skip
    bundle, signer, meta = contents.bundle, contents.signer, contents.meta
    if signer.refusal:
        raise invalid(signer.refusal)
    origin = bundle.manifest.origin
    full = parse_model_name(name or meta.full_name or origin.name)
    if alias is not None:
        alias = check_alias_name(alias)
    existing = _existing_version(eng, full.full, origin)
    if existing is not None:
        if alias:
            eng.registry.set_registered_model_alias(full.full, alias, existing.version, user_id)
        return ImportResult(
            name=existing.name, version=existing.version, status=existing.status, existing=True,
            run_id=existing.run_id, digest=bundle.digest, signer=signer,
        )
    # Checks that need the store, all before the first write.
    try:
        eng.registry.get_schema(f"{full.catalog}.{full.schema}")
    except CairnError as exc:
        raise CairnError(f"Cannot import as {full.full}: {exc.message} (create it with `cairn catalogs create` "
                         "and `cairn schemas create`, or pass --name)", exc.error_code) from None
    run_plan = _run_plan(eng, contents.run, origin)

    run_id = contents.run.run.info.run_id if contents.run is not None else ""
    ours = run_plan in ("create", "refresh")  # a run this import writes (never one of this appliance's own)
    if ours:
        _write_run(eng, contents.run, origin, create=run_plan == "create")
    source = _stage_files(eng, bundle, origin, run_id if ours else "")
    try:
        eng.registry.create_registered_model(
            full.full, tags=meta.model_tags or None, description=meta.model_description, user_id=user_id,
        )
    except CairnError as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {k: v for k, v in meta.tags.items() if not k.startswith(ORIGIN_TAG_PREFIX) and k != ORIGINAL_TAG}
    tags.update(origin_tags(bundle, meta, signer))
    if not signer.trusted_as:
        # No trusted key vouches for the files: register the bundle's ONNX (checked to
        # load) without loading the original model, whose pickle would run its code here.
        # The source appliance verified the conversion when it registered the version.
        tags[ORIGINAL_TAG] = SKIP_ORIGINAL
    mv = eng.registry.create_model_version(
        full.full, source, run_id=run_id or None, tags=tags, description=meta.description, user_id=user_id,
    )
    mv = eng.registrar.wait(mv.full_name or full.full, mv.version, timeout)
    if mv.status == VersionStatus.FAILED:
        raise CairnError(f"{mv.name} version {mv.version} from bundle {bundle.path} failed registration: "
                         f"{mv.status_message}")
    if alias:
        eng.registry.set_registered_model_alias(full.full, alias, mv.version, user_id)
    return ImportResult(
        name=mv.name, version=mv.version, status=mv.status, existing=False, run_id=run_id,
        run_created=run_plan == "create", digest=bundle.digest, signer=signer,
    )


def origin_tags(bundle: Bundle, meta: VersionMetadata, signer: SignerCheck) -> dict[str, str]:
    o = bundle.manifest.origin
    exported = datetime.fromtimestamp(bundle.manifest.created / 1000, UTC)
    tags = {
        "appliance_id": o.appliance_id,
        "hostname": o.hostname,
        "name": o.name,
        "version": o.version,
        "run_id": o.run_id,
        "source": o.source,
        "stage": meta.stage,
        "aliases": ",".join(meta.aliases),
        "exported_at": exported.isoformat(timespec="seconds"),
        "bundle_digest": f"sha256:{bundle.digest}",
        "signer": f"{signer.fingerprint} ({signer.trusted_as})" if signer.trusted_as
        else signer.fingerprint or "unsigned",
    }
    return {f"{ORIGIN_TAG_PREFIX}{k}": v for k, v in tags.items() if v}


def _existing_version(eng, full_name: str, origin: BundleOrigin) -> ModelVersion | None:
    """The version of `full_name` already made from the origin's version: imported
    before (its origin tags match), or the very version when a bundle comes home."""
    reg = eng.registry
    try:
        reg.get_registered_model(full_name)
    except CairnError as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    want = {"appliance_id": origin.appliance_id, "name": origin.name, "version": origin.version}
    token = None
    while True:
        page = reg.search_model_versions(f"name = '{full_name}'", SEARCH_MODEL_VERSIONS_MAX, None, token)
        for mv in page.items:
            tags = mv.tags_dict
            if mv.status != VersionStatus.FAILED and all(
                tags.get(f"{ORIGIN_TAG_PREFIX}{k}") == v for k, v in want.items()
            ):
                return mv
        token = page.next_page_token
        if not token:
            break
    if origin.appliance_id == appliance_identity(eng.path).appliance_id and origin.name == full_name:
        try:
            mv = reg.get_model_version(full_name, origin.version)
        except CairnError:
            return None
        return mv if mv.status == VersionStatus.READY else None
    return None


def _run_plan(eng, doc: RunExport | None, origin: BundleOrigin) -> str:
    """What to do with the bundle's run: "create" it, "refresh" a run an earlier import
    of the same origin created (writes are idempotent, so this finishes an import that
    was interrupted), "keep" a run this appliance has of its own, or "none"."""
    if doc is None:
        return "none"
    try:
        run = eng.tracking.get_run(doc.run.info.run_id)
    except CairnError as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        if doc.experiment_name:
            exp = eng.tracking.get_experiment_by_name(doc.experiment_name)
            if exp is not None and exp.lifecycle_stage != LifecycleStage.ACTIVE:
                raise invalid(
                    f"The bundle's run belongs to experiment {doc.experiment_name!r}, which is deleted on this "
                    "appliance: restore it before importing"
                ) from None
        return "create"
    ours = run.data.tags_dict.get(RUN_ORIGIN_TAG) == origin.appliance_id
    return "refresh" if ours and run.info.lifecycle_stage == LifecycleStage.ACTIVE else "keep"


def _write_run(eng, doc: RunExport, origin: BundleOrigin, *, create: bool) -> None:
    tr = eng.tracking
    info, data = doc.run.info, doc.run.data
    run_id = info.run_id
    if create:
        exp_id = _experiment_id(tr, doc.experiment_name)
        try:
            tr.create_run(exp_id, user_id=info.user_id, start_time=info.start_time, run_name=info.run_name,
                          run_id=run_id)
        except CairnError as exc:
            # Another import of the same run got there first: fill in the same facts.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    tags = {t.key: t.value for t in data.tags}
    tags[RUN_ORIGIN_TAG] = origin.appliance_id
    tags[f"{ORIGIN_TAG_PREFIX}hostname"] = origin.hostname
    for chunk in _chunks(data.params, MAX_PARAMS_TAGS_PER_BATCH):
        tr.log_batch(run_id, params=[Param(p.key, p.value) for p in chunk])
    for chunk in _chunks([RunTag(k, v) for k, v in tags.items() if v], MAX_PARAMS_TAGS_PER_BATCH):
        tr.log_batch(run_id, tags=chunk)
    # Every point of every metric; a metric whose history is missing keeps its latest value.
    points = [m for key in doc.metric_history for m in doc.metric_history[key]]
    points += [m for m in data.metrics if m.key not in doc.metric_history]
    for chunk in _chunks(points, MAX_METRICS_PER_BATCH):
        tr.log_batch(run_id, metrics=chunk)
    if doc.run.inputs.dataset_inputs:
        tr.log_inputs(run_id, doc.run.inputs.dataset_inputs)
    tr.update_run_info(run_id, info.status, info.end_time, None)


def _experiment_id(tr, name: str) -> str:
    """The experiment of that name here, created if missing ("0", Default, if no name)."""
    if not name:
        return "0"
    exp = tr.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return tr.create_experiment(name)
    except CairnError as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return tr.get_experiment_by_name(name).experiment_id  # created meanwhile


def _chunks(items: list, n: int):
    return (items[i:i + n] for i in range(0, len(items), n))


def _stage_files(eng, bundle: Bundle, origin: BundleOrigin, run_id: str) -> str:
    """Put the model files in the artifact store; return the source to register. A run
    recreated here gets them at its original model path, so the version's source reads
    as it did at the origin (runs:/RUN/PATH); otherwise they stay in the staging area."""
    prefix = f"{STAGING_PREFIX}/{bundle.digest}/{MODEL_DIR}"
    cut = len(MODEL_DIR) + 1
    for rel in bundle.files:
        if rel.startswith(f"{MODEL_DIR}/"):
            with bundle.open_file(rel) as f:
                eng.artifacts.put(f"{prefix}/{rel[cut:]}", f)
    head = f"runs:/{run_id}/"
    if run_id and origin.source.startswith(head) and origin.source[len(head):].strip("/"):
        path = origin.source[len(head):].strip("/")
        run_root = proxy_path(eng.tracking.get_run(run_id).info.artifact_uri)
        eng.artifacts.copy(prefix, f"{run_root}/{path}")
        return origin.source
    return f"mlflow-artifacts:/{prefix}"
