"""Loading the scikit-learn model of an MLflow model directory (the `sklearn` flavor):
pickle, cloudpickle or skops, as mlflow.sklearn.save_model writes them.

Unpickling runs the pickle's code: that is what loading a pickled scikit-learn model
means anywhere (MLflow loads the same file to serve it). skops files are loaded only
when every type they need is scikit-learn's or numpy's; anything else is refused with
the list of types, never trusted silently. This runs at registration only: serving
never loads a pickle (it runs the ONNX conversion).
"""
from __future__ import annotations

import io
import pickle
from typing import Any

from cairn.engine.models.errors import ModelFormatError
from cairn.engine.models.mlmodel import MLMODEL_FILE, PYFUNC_FLAVOR, SKLEARN_FLAVOR, MLModel, read_mlmodel
from cairn.engine.models.modeldir import LocalModelDir, MemoryModelDir, ModelDir, as_model_dir

SERIALIZATION_FORMATS = ("pickle", "cloudpickle", "skops")
# Module prefixes whose types a skops file may hold.
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.")


def read_model_mlmodel(model_dir: ModelDir) -> MLModel:
    try:
        raw = model_dir.read(MLMODEL_FILE)
    except KeyError:
        raise ModelFormatError("The model directory has no MLmodel file") from None
    return read_mlmodel(raw)


def sklearn_flavor(mlmodel: MLModel) -> dict[str, Any] | None:
    """The sklearn flavor's configuration, or one made from a python_function flavor
    whose loader is mlflow.sklearn (MLflow 1.x wrote some models that way)."""
    conf = mlmodel.flavor(SKLEARN_FLAVOR)
    if conf is not None:
        return conf
    pyfunc = mlmodel.flavor(PYFUNC_FLAVOR)
    if pyfunc and pyfunc.get("loader_module") == "mlflow.sklearn" and pyfunc.get("model_path"):
        return {"pickled_model": pyfunc["model_path"], "serialization_format": "cloudpickle"}
    return None


def load_sklearn_model(model_dir: ModelDir | str, mlmodel: MLModel | None = None) -> Any:
    """The estimator of an MLflow model directory with the sklearn flavor.

    ModelFormatError when there is no MLmodel, no sklearn flavor, the model file is
    missing, the serialization format is unknown, or the file does not load."""
    model_dir = as_model_dir(model_dir)
    if mlmodel is None:
        mlmodel = read_model_mlmodel(model_dir)
    conf = sklearn_flavor(mlmodel)
    if conf is None:
        flavors = ", ".join(sorted(mlmodel.flavors)) or "none"
        raise ModelFormatError(f"The model has no sklearn flavor (flavors: {flavors})")
    path = conf.get("pickled_model")
    if not isinstance(path, str) or not path:
        raise ModelFormatError("The sklearn flavor names no model file (pickled_model)")
    fmt = conf.get("serialization_format") or "cloudpickle"
    if fmt not in SERIALIZATION_FORMATS:
        raise ModelFormatError(
            f"Unknown sklearn serialization_format {fmt!r} (known: {', '.join(SERIALIZATION_FORMATS)})"
        )
    try:
        data = model_dir.read(path)
    except KeyError:
        raise ModelFormatError(f"The sklearn flavor's model file {path!r} is missing") from None
    return load_sklearn_bytes(data, fmt, where=path)


def load_sklearn_bytes(data: bytes, serialization_format: str, where: str = "model") -> Any:
    if serialization_format == "skops":
        model = _load_skops(data, where)
    else:
        try:
            if serialization_format == "cloudpickle":
                import cloudpickle

                model = cloudpickle.loads(data)
            else:
                model = pickle.loads(data)
        except Exception as exc:
            raise ModelFormatError(
                f"Could not unpickle {where} ({serialization_format}): {type(exc).__name__}: {exc}"
            ) from None
    # Whatever a file unpickles to is not a model: one that loads as None (or anything
    # else without an estimator's methods) must not pass as one and skip verification.
    if not any(callable(getattr(model, m, None)) for m in ("predict", "predict_proba", "transform")):
        raise ModelFormatError(
            f"{where} does not hold a scikit-learn model: it loaded as {type(model).__name__}, "
            "which has no predict or transform method"
        )
    return model


def _load_skops(data: bytes, where: str) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ModelFormatError(
            f"{where} is in skops format, and skops is not installed (pip install skops)"
        ) from None
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelFormatError(f"{where} is not a readable skops file: {type(exc).__name__}: {exc}") from None
    refused = [t for t in untrusted if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
    if refused:
        raise ModelFormatError(
            f"{where} (skops) needs types outside scikit-learn and numpy, which are not "
            f"trusted: {', '.join(refused)}"
        )
    try:
        return sio.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ModelFormatError(f"Could not load {where} (skops): {type(exc).__name__}: {exc}") from None


def dumps_sklearn(model: Any, serialization_format: str = "cloudpickle") -> bytes:
    """The model file bytes, as mlflow.sklearn.save_model writes them."""
    if serialization_format == "cloudpickle":
        import cloudpickle

        return cloudpickle.dumps(model)
    if serialization_format == "pickle":
        buf = io.BytesIO()
        pickle.dump(model, buf, protocol=pickle.DEFAULT_PROTOCOL)
        return buf.getvalue()
    if serialization_format == "skops":
        try:
            import skops.io as sio
        except ImportError:
            raise ModelFormatError("The skops format needs skops installed (pip install skops)") from None
        return sio.dumps(model)
    raise ModelFormatError(
        f"Unknown sklearn serialization_format {serialization_format!r} "
        f"(known: {', '.join(SERIALIZATION_FORMATS)})"
    )


__all__ = [
    "LocalModelDir",
    "MemoryModelDir",
    "ModelDir",
    "ModelFormatError",
    "dumps_sklearn",
    "load_sklearn_bytes",
    "load_sklearn_model",
    "read_model_mlmodel",
    "sklearn_flavor",
]
