"""`cairn models serve -m URI`: one model behind MLflow's scoring routes, like `mlflow
models serve`, on uvicorn (uvloop + httptools).

The URI is anything engine.sdk.modelloading.load_model takes: `models:/NAME@ALIAS`,
`models:/NAME/N` (or a stage, or latest), `models:/m-ID`, `runs:/RUN/PATH`, an .onnx
file or an MLflow model folder. A registry URI is resolved to its version once, at
start: the server keeps serving that version if the alias moves later (named endpoints
follow aliases; this mirrors `mlflow models serve`).

A local MLflow model folder is prepared as registration prepares it (engine.models.package:
its sklearn model converted to ONNX and verified on its example rows), in a child
process, and the result is kept in the data directory under cache/prepared-models/,
keyed by the folder's content. Why: preparing imports scikit-learn and skl2onnx and
unpickles the model, which costs seconds and ~150 MiB that a server would otherwise
carry for its whole life; with the cache a restart is as quick as serving an .onnx file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import msgspec

from cairn import engine
from cairn.app.address import DEFAULT_HOST, DEFAULT_MODEL_PORT
from cairn.app.serverrun import run_server
from cairn.app.serving.batcher import Batcher
from cairn.app.serving.invocations import DEFAULT_MAX_BODY_BYTES, create_model_server
from cairn.engine.endpoints.contract import DEFAULT_MAX_BATCH_ROWS
from cairn.engine.errors import CairnError
from cairn.engine.models.signature import OnnxSignature
from cairn.engine.sdk.features import version_filler
from cairn.engine.sdk.modelloading import load_model, resolve_version

DEFAULT_MAX_QUEUE_ROWS = 4096


def load_served_model(uri: str, data_dir: str | os.PathLike | None = None) -> tuple[Any, dict[str, Any], Any]:
    """(predictor, version info for /version, feature fill or None) for `uri`; the
    registry and artifact store are those of `data_dir` (else the SDK's default data
    directory). A registered version logged from a training set fills its features from
    the online store by key, as a named endpoint does."""
    from cairn.engine.sdk.context import open_engine, set_tracking_dir

    if data_dir is not None:
        set_tracking_dir(data_dir)
    rest = uri[len("models:/"):].strip("/") if uri.startswith("models:/") else ""
    if rest and not (rest.startswith("m-") and "/" not in rest):
        # Resolve once and load that exact version: an alias moving meanwhile cannot
        # make the served model and the reported version disagree.
        mv = resolve_version(open_engine().registry, rest, uri)
        predictor = load_model(f"models:/{mv.full_name or mv.name}/{mv.version}")
        filler = version_filler(open_engine(), mv)
        return predictor, {"model_name": mv.name, "model_version": str(mv.version)}, filler and filler.fill
    folder = _local_model_folder(uri)
    if folder is not None:
        return _prepared(folder, Path(data_dir) if data_dir is not None else engine.default_data_dir()), {}, None
    return load_model(uri), {}, None


# -- local model folders -----------------------------------------------------------------

PREPARED_CACHE = ("cache", "prepared-models")
_ONNX, _SIGNATURE = "model.onnx", "signature.msgpack"


def _local_model_folder(uri: str) -> Path | None:
    if uri.startswith(("models:/", "runs:/")) or ("://" in uri and not uri.startswith("file://")):
        return None
    path = Path(unquote(urlparse(uri).path) if uri.startswith("file://") else uri).expanduser()
    return path if (path / "MLmodel").is_file() else None


def _prepared(folder: Path, data_dir: Path):
    """The predictor for a local MLflow model folder, prepared once per content."""
    cache = data_dir.joinpath(*PREPARED_CACHE, _digest(folder))
    if (cache / _SIGNATURE).is_file():
        try:
            return _load_prepared(cache)
        except (OSError, msgspec.DecodeError, CairnError):  # unreadable: prepare it again
            shutil.rmtree(cache, ignore_errors=True)
    _prepare_in_child(folder, cache)
    return _load_prepared(cache)


def _load_prepared(cache: Path):
    from cairn.engine.models.predictor import OnnxPredictor

    signature = msgspec.msgpack.decode((cache / _SIGNATURE).read_bytes(), type=OnnxSignature)
    return OnnxPredictor((cache / _ONNX).read_bytes(), signature=signature)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def _prepare_in_child(folder: Path, cache: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])  # where `app` and `engine` import from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "cairn.app.serving.modelserver", str(folder), str(cache)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not (cache / _SIGNATURE).is_file():
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.startswith("error: ")]
        why = lines[-1][len("error: "):] if lines else (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise CairnError(f"Cannot prepare the model folder {folder}: {why}")


def _prepare_main(folder: str, cache: str) -> int:
    """The child: prepare the folder, write model.onnx and the signature next to the
    cache entry, then rename into place (atomic: a concurrent start sees all or none)."""
    from cairn.engine.models.modeldir import LocalModelDir
    from cairn.engine.models.package import prepare_version

    try:
        prepared = prepare_version(LocalModelDir(folder))
    except CairnError as exc:
        print(f"error: {' '.join(exc.message.split())}", file=sys.stderr)
        return 1
    target = Path(cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}"
    tmp.mkdir()
    for name, data in ((_ONNX, prepared.onnx), (_SIGNATURE, msgspec.msgpack.encode(prepared.signature))):
        with open(tmp / name, "wb") as f:  # synced: a crash must not leave a torn entry
            f.write(data)
            os.fsync(f.fileno())
    try:
        os.replace(tmp, target)
    except OSError:  # another start prepared it first
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def serve_model(
    uri: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_MODEL_PORT,
    *,
    data_dir: str | os.PathLike | None = None,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    max_wait_ms: float = 0.0,
    max_queue_rows: int = DEFAULT_MAX_QUEUE_ROWS,
    max_workers: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Load the model, then serve it until interrupted; `ready(url)` is called once the
    socket accepts connections (with the bound port when `port` is 0)."""
    import uvicorn

    predictor, info, fill = load_served_model(uri, data_dir)
    batcher = Batcher(
        predictor.run, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows, max_workers=max_workers, name=uri,
    )
    app = create_model_server(
        predictor, model_uri=uri, version_info=info, batcher=batcher, max_body_bytes=max_body_bytes, fill=fill
    )
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
        log_level="warning", access_log=False,
    )
    try:
        run_server(uvicorn.Server(config), host, port, ready)
    finally:
        batcher.close(drain=True, timeout=10.0)


__all__ = ["DEFAULT_MAX_BATCH_ROWS", "DEFAULT_MAX_QUEUE_ROWS", "load_served_model", "serve_model"]


if __name__ == "__main__":
    sys.exit(_prepare_main(*sys.argv[1:3]))
