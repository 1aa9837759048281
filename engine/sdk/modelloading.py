"""`cairn.load_model(uri)`: any model Cairn knows, as an ONNX Runtime predictor.

URIs:
- `models:/NAME/N`, `models:/NAME@ALIAS`, `models:/NAME/STAGE` (the stage's latest
  version), `models:/NAME/latest`: a registered version. It must be READY; its own
  copy's model.onnx and the signature stored with the version are all that is read, so
  loading a registered model never unpickles anything.
- `models:/m-<id>` (an MLflow 3 logged model) and `runs:/RUN/PATH`: a model folder in
  the artifact store.
- a local `.onnx` file, or a local MLflow model folder (`file://` or a path).

A folder with an `onnx` flavor (what `cairn.sklearn.log_model` and autologging write)
loads its model.onnx. A folder with only a scikit-learn flavor (a model saved by
`mlflow.sklearn.save_model`, or one whose conversion failed when it was logged) is
converted on the spot, which loads its pickle: the caller pointed at that folder, and
converting it is what registering it would do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cairn.engine.errors import CairnError, invalid, not_found
from cairn.engine.registry.entities import ModelVersion, Stage, VersionStatus

ONNX_FILE = "model.onnx"


def load_model(model_uri: str | os.PathLike, dst_path: str | None = None, *, engine=None):
    """An `engine.models.predictor.OnnxPredictor` for `model_uri` (see the module doc),
    from `engine` (default: the tracking directory's). `dst_path` is accepted for
    mlflow.pyfunc.load_model's signature; nothing is downloaded, the model is read from
    the store directly."""
    from cairn.engine.sdk.context import open_engine

    uri = os.fspath(model_uri)
    if uri.startswith("models:/"):
        eng = engine or open_engine()
        rest = uri[len("models:/"):].strip("/")
        if rest.startswith("m-") and "/" not in rest:
            model = eng.logged_models.get_logged_model(rest)
            return _from_dir(_artifact_dir(eng, model.info.artifact_uri), uri)
        return _from_version(eng, resolve_version(eng.registry, rest, uri))
    if uri.startswith("runs:/"):
        eng = engine or open_engine()
        run_id, _, path = uri[len("runs:/"):].strip("/").partition("/")
        if not run_id:
            raise invalid(f"Invalid model URI {uri!r}: use runs:/RUN_ID/PATH")
        base = eng.tracking.get_run(run_id).info.artifact_uri
        return _from_dir(_artifact_dir(eng, base, path.strip("/")), uri)
    if "://" in uri and not uri.startswith("file://"):
        raise invalid(
            f"Unsupported model URI {uri!r}: use models:/, runs:/, a local .onnx file or a "
            "local model folder"
        )
    return _from_local(Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri))


def resolve_version(registry, rest: str, uri: str) -> ModelVersion:
    """The version `models:/<rest>` names: NAME/N, NAME@ALIAS, NAME/STAGE or NAME/latest."""
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias:
            return registry.get_model_version_by_alias(name, alias)
    name, _, which = rest.rpartition("/")
    if not name or not which:
        raise invalid(
            f"Invalid model URI {uri!r}: use models:/NAME/VERSION, models:/NAME@ALIAS or "
            "models:/NAME/STAGE"
        )
    if which.isdigit():
        return registry.get_model_version(name, which)
    if which.lower() == "latest":
        versions = registry.get_latest_versions(name, None)
        if not versions:
            raise not_found(f"Registered Model {name} has no versions")
        return max(versions, key=lambda mv: int(mv.version))
    stage = Stage.parse(which)
    latest = registry.get_latest_versions(name, [stage])
    if not latest:
        raise not_found(f"Registered Model {name} has no version in stage {stage}")
    return latest[0]


def _from_version(eng, mv: ModelVersion):
    from cairn.engine.models.predictor import OnnxPredictor

    onnx, signature = version_onnx(eng, mv)
    return OnnxPredictor(onnx, signature=signature)


def version_onnx(eng, mv: ModelVersion):
    """(ONNX bytes, signature) of a READY registered version, read from its own copy
    (what serving loads; nothing is unpickled)."""
    from cairn.engine.models.mlmodel import ONNX_FLAVOR, read_mlmodel

    where = f"{mv.name} version {mv.version}"
    if mv.status != VersionStatus.READY:
        why = f": {mv.status_message}" if mv.status_message else ""
        raise invalid(f"Cannot load {where}: it is {mv.status}{why}")
    if not mv.storage_location:
        raise not_found(f"Cannot load {where}: it has no stored files")
    try:
        with eng.artifacts.open(f"{mv.storage_location}/MLmodel") as f:
            conf = read_mlmodel(f.read()).flavor(ONNX_FLAVOR) or {}
    except CairnError:  # no readable MLmodel: the ONNX file has its default name
        conf = {}
    onnx_path = str(conf.get("data") or ONNX_FILE)
    with eng.artifacts.open(f"{mv.storage_location}/{onnx_path}") as f:
        return f.read(), mv.signature


def _artifact_dir(eng, artifact_uri: str, path: str = ""):
    from cairn.engine.registry.registration import ArtifactModelDir, proxy_path

    prefix = proxy_path(artifact_uri)
    return ArtifactModelDir(eng.artifacts, f"{prefix}/{path}" if path else prefix)


def _from_local(path: Path):
    from cairn.engine.models.modeldir import LocalModelDir
    from cairn.engine.models.predictor import OnnxPredictor

    path = path.expanduser()
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise invalid(f"{str(path)!r} is not an .onnx file or a model folder")
        return OnnxPredictor(str(path))
    if path.is_dir():
        return _from_dir(LocalModelDir(path), str(path))
    raise not_found(f"Model path {str(path)!r} does not exist")


def _from_dir(model_dir: Any, where: str):
    """A predictor for a model folder: its ONNX model when it has one, else the ONNX
    conversion of its scikit-learn model (modelpackage verifies it on the example)."""
    from cairn.engine.models.package import prepare_onnx_file, prepare_version
    from cairn.engine.models.predictor import OnnxPredictor

    paths = model_dir.paths()
    if not paths:
        raise not_found(f"No model files at {where}")
    if "MLmodel" not in paths:
        onnx_files = [p for p in paths if p.endswith(".onnx")]
        if len(onnx_files) != 1:
            raise invalid(f"{where} holds no MLmodel file and not exactly one .onnx file")
        prepared = prepare_onnx_file(model_dir.read(onnx_files[0]))
    else:
        prepared = prepare_version(model_dir)
    return OnnxPredictor(prepared.onnx, signature=prepared.signature)


__all__ = ["load_model", "resolve_version", "version_onnx"]
