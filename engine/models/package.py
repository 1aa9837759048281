"""Model directories in, ONNX models out: what logging and registration call.

- `package_sklearn`: a fitted scikit-learn model -> a full MLflow model directory
  (model.pkl, MLmodel with python_function + sklearn flavors, environment files, input
  example) plus its ONNX conversion and `onnx` flavor when conversion and verification
  succeed. mlflow.pyfunc.load_model and mlflow.sklearn.load_model read it as theirs.
- `prepare_version`: a model directory being registered -> the verified ONNX model the
  version will serve: its own `onnx` flavor (checked, and verified against the sklearn
  original when there is one with sample rows), or a conversion of its sklearn flavor
  (written by Cairn or by the official mlflow client), or a bare folder's .onnx file.
- `prepare_onnx_file` / `mlmodel_for_onnx`: registering any ONNX file directly.

Every refusal is a RegistrationError whose message says why, for the version's
status_message.
"""
from __future__ import annotations

import importlib.metadata
import json
import platform
import posixpath
from typing import Any

import msgspec
import yaml

from cairn.engine.errors import CairnError
from cairn.engine.models.errors import ConversionError, ModelFormatError, RegistrationError
from cairn.engine.models.mlmodel import (
    MLMODEL_FILE,
    ONNX_FLAVOR,
    PYFUNC_ENV,
    PYFUNC_FLAVOR,
    SERVING_INPUT_FILE,
    SKLEARN_FLAVOR,
    MLModel,
    add_onnx_flavor,
    new_mlmodel,
    onnx_flavor,
    read_input_example,
    read_mlmodel,
    serving_input_example,
    write_input_example,
)
from cairn.engine.models.modeldir import ModelDir, as_model_dir
from cairn.engine.models.sample import TabularSample, mlflow_input_columns, synthesize
from cairn.engine.models.signature import (
    COLUMNS,
    MATRIX,
    ColumnSpec,
    OnnxSignature,
    is_numeric_type,
    mlflow_output_columns,
    mlflow_schema_of,
    signature_from_onnx,
    to_mlflow_signature,
)
from cairn.engine.models.sklearnmodel import dumps_sklearn, load_sklearn_model, sklearn_flavor

ONNX_FILE = "model.onnx"
EXAMPLE_ROWS = 20  # rows kept in input_example.json: enough to verify a conversion again
MAX_VERIFY_ROWS = 10_000
_MODEL_FILES = {"pickle": "model.pkl", "cloudpickle": "model.pkl", "skops": "model.skops"}
# Flavors that hold a model Cairn could serve after an export, and how to get there.
_EXPORT_HINTS = {
    "pytorch": "export it with torch.onnx.export and log the file with mlflow.onnx.log_model",
    "tensorflow": "convert it with tf2onnx and log it with mlflow.onnx.log_model",
    "keras": "convert it with tf2onnx and log it with mlflow.onnx.log_model",
    "xgboost": "convert it with onnxmltools and log it with mlflow.onnx.log_model",
    "lightgbm": "convert it with onnxmltools and log it with mlflow.onnx.log_model",
}


class PackagedModel(msgspec.Struct, kw_only=True):
    """An MLflow model directory's files (relative path -> bytes); `signature` is the
    ONNX model's when conversion worked, else None and `onnx_error` says why."""

    files: dict[str, bytes]
    signature: OnnxSignature | None = None
    onnx_error: str | None = None


class PreparedVersion(msgspec.Struct, kw_only=True):
    """What registration stores: the self-contained ONNX bytes and where they go in the
    version's folder, the MLmodel to write (None: keep the folder's), the signature,
    the flavor the model came from ("onnx", "sklearn") and the rows verified."""

    onnx: bytes
    onnx_path: str
    mlmodel: bytes | None
    signature: OnnxSignature
    source_flavor: str
    verified_rows: int = 0


# -- packaging at logging time -------------------------------------------------------


def package_sklearn(
    model: Any,
    sample: Any,
    *,
    run_id: str | None,
    artifact_path: str = "model",
    pickle_format: str = "cloudpickle",
) -> PackagedModel:
    """The MLflow model directory for a fitted estimator, with its verified ONNX
    conversion when skl2onnx can make one (else the sklearn files and `onnx_error`)."""
    import sklearn

    from cairn.engine.models.onnxconvert import convert_table, sample_for
    from cairn.engine.models.onnxverify import verify

    if pickle_format not in _MODEL_FILES:
        raise ModelFormatError(f"pickle_format must be one of {', '.join(_MODEL_FILES)}, not {pickle_format!r}")
    model_file = _MODEL_FILES[pickle_format]
    sample = _plain_sample(sample)
    files: dict[str, bytes] = {model_file: dumps_sklearn(model, pickle_format)}
    mlmodel = new_mlmodel(run_id=run_id, artifact_path=artifact_path)
    mlmodel.flavors = {
        PYFUNC_FLAVOR: {
            "env": dict(PYFUNC_ENV),
            "loader_module": "mlflow.sklearn",
            "model_path": model_file,
            "predict_fn": "predict",
            "python_version": platform.python_version(),
        },
        SKLEARN_FLAVOR: {
            "code": None,
            "pickled_model": model_file,
            "serialization_format": pickle_format,
            "sklearn_version": sklearn.__version__,
            "skops_trusted_types": None,
        },
    }
    head = _head(sample, EXAMPLE_ROWS)
    mlmodel.signature = _mlflow_signature(model, head)
    if mlmodel.signature is not None:
        mlmodel.extra.update(is_signature_from_type_hint=False, type_hint_from_example=False)
    example, info = write_input_example(head)
    files["input_example.json"] = example
    files[SERVING_INPUT_FILE] = serving_input_example(head)
    mlmodel.saved_input_example_info = info

    signature, onnx_error = None, None
    try:
        table = sample_for(model, _head(sample, MAX_VERIFY_ROWS))
        onnx_bytes, signature = convert_table(model, table)
        verify(onnx_bytes, signature, model, table)
    except CairnError as exc:  # ConversionError, VerificationError, or ORT refusing the result
        signature, onnx_error = None, exc.message
    except Exception as exc:  # a converter's own crash: logging the model must still work
        signature, onnx_error = None, f"ONNX conversion failed: {type(exc).__name__}: {exc}"
    else:
        files[ONNX_FILE] = onnx_bytes
        add_onnx_flavor(mlmodel, ONNX_FILE)
    files[MLMODEL_FILE] = mlmodel.dump().encode()
    packages = ["scikit-learn", "numpy"] + (["cloudpickle"] if pickle_format == "cloudpickle" else [])
    packages += ["skops"] if pickle_format == "skops" else []
    packages += ["pandas"] if _is_dataframe(sample) else []
    files.update(environment_files(packages))
    return PackagedModel(files=files, signature=signature, onnx_error=onnx_error)


def _plain_sample(sample: Any) -> Any:
    """Records or a dict of columns as a DataFrame (when pandas is here: MLflow infers
    signatures and examples from one), a sparse matrix as a dense array (its first rows)."""
    if hasattr(sample, "tocsr") and hasattr(sample, "toarray"):
        return sample.tocsr()[:MAX_VERIFY_ROWS].toarray()
    is_records = isinstance(sample, list) and sample and all(isinstance(r, dict) for r in sample)
    if is_records or (isinstance(sample, dict) and sample):
        try:
            import pandas as pd
        except ImportError:
            return sample
        try:
            return pd.DataFrame(sample)
        except ValueError:  # e.g. a dict of scalars: left to the converter to refuse
            return sample
    return sample


def _head(sample: Any, n: int) -> Any:
    if _is_dataframe(sample):
        return sample.head(n)
    if isinstance(sample, dict):
        return {k: v[:n] for k, v in sample.items()}
    if isinstance(sample, list):
        return sample[:n]
    import numpy as np

    return np.asarray(sample)[:n]


def _mlflow_signature(model: Any, sample: Any) -> dict[str, Any] | None:
    """MLflow's signature section from the sample and the model's output on it, as
    mlflow.models.infer_signature writes it for an sklearn model."""
    import warnings

    try:
        inputs = mlflow_schema_of(sample)
    except Exception:
        return None
    outputs = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model.predict(sample)
        outputs = mlflow_output_columns(out) if _is_dataframe(sample) else mlflow_schema_of(out)
    except Exception:
        outputs = None
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs) if outputs is not None else None,
        "params": None,
    }


def environment_files(packages: list[str]) -> dict[str, bytes]:
    """requirements.txt, conda.yaml and python_env.yaml as MLflow writes them, pinning
    what is installed here (mlflow itself pinned when installed, else unpinned)."""
    reqs = sorted({_pinned(p) for p in ["mlflow", *packages]}, key=str.lower)
    python = platform.python_version()
    pip = _version("pip")
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip", {"pip": reqs}],
        "name": "mlflow-env",
    }
    python_env = {
        "python": python,
        "build_dependencies": [
            f"pip=={pip}" if pip else "pip",
            _pinned("setuptools"),
            "wheel",
        ],
        "dependencies": ["-r requirements.txt"],
    }
    return {
        "requirements.txt": "\n".join(reqs).encode(),
        "conda.yaml": yaml.safe_dump(conda, default_flow_style=False).encode(),
        "python_env.yaml": yaml.safe_dump(python_env, default_flow_style=False, sort_keys=False).encode(),
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pinned(dist: str) -> str:
    v = _version(dist)
    return f"{dist}=={v}" if v else dist


# -- registration ----------------------------------------------------------------------


def prepare_version(model_dir: ModelDir | str, *, load_original: bool = True) -> PreparedVersion:
    """The verified ONNX model a registered version serves, from its model directory.
    RegistrationError with the reason when there is none to be had.

    `load_original=False` never loads the original (scikit-learn) model, whose pickle
    runs code: an `onnx` flavor is only checked to load in ONNX Runtime, and a model
    without one is refused, since converting it would load the original."""
    model_dir = as_model_dir(model_dir)
    paths = model_dir.paths()
    if MLMODEL_FILE not in paths:
        onnx_files = [p for p in paths if p.lower().endswith(".onnx")]
        if len(onnx_files) == 1:
            prepared = prepare_onnx_file(_read(model_dir, onnx_files[0]))
            prepared.onnx_path = onnx_files[0]
            prepared.mlmodel = mlmodel_for_onnx(prepared.onnx, prepared.signature, onnx_path=onnx_files[0])
            return prepared
        if onnx_files:
            raise RegistrationError(
                f"The model folder has no MLmodel file and {len(onnx_files)} .onnx files "
                f"({', '.join(onnx_files[:5])}): register one of them"
            )
        raise RegistrationError("The model folder has no MLmodel file and no .onnx file")
    try:
        mlmodel = read_mlmodel(_read(model_dir, MLMODEL_FILE))
    except ModelFormatError as exc:
        raise RegistrationError(f"Invalid MLmodel: {exc.message}") from None
    if mlmodel.flavor(ONNX_FLAVOR) is not None:
        return _prepare_onnx_flavor(model_dir, mlmodel, paths, load_original)
    if sklearn_flavor(mlmodel) is not None:
        if not load_original:
            raise RegistrationError(
                "The model has no onnx flavor, and converting its scikit-learn model would load that model "
                "(a pickle runs code), which this registration does not allow"
            )
        return _prepare_sklearn_flavor(model_dir, mlmodel, paths)
    flavors = sorted(f for f in mlmodel.flavors if f != PYFUNC_FLAVOR)
    hints = [_EXPORT_HINTS[f] for f in flavors if f in _EXPORT_HINTS]
    loader = (mlmodel.flavor(PYFUNC_FLAVOR) or {}).get("loader_module")
    what = ", ".join(flavors) or f"python_function only (loader {loader})"
    message = f"Cairn serves ONNX models and cannot convert a model with flavor {what}"
    if hints:
        message += f": {hints[0]}"
    else:
        message += ": log it with an onnx flavor (mlflow.onnx.log_model) or register an .onnx file"
    raise RegistrationError(message)


def _read(model_dir: ModelDir, path: str) -> bytes:
    try:
        return model_dir.read(path)
    except KeyError:
        raise RegistrationError(f"The model folder lacks {path}") from None


def _prepare_onnx_flavor(model_dir: ModelDir, mlmodel: MLModel, paths: list[str],
                         load_original: bool) -> PreparedVersion:
    from cairn.engine.models.onnxverify import verify

    conf = mlmodel.flavor(ONNX_FLAVOR) or {}
    onnx_path = str(conf.get("data") or ONNX_FILE)
    if onnx_path not in paths:
        raise RegistrationError(f"The onnx flavor's model file {onnx_path!r} is missing")
    raw = _read(model_dir, onnx_path)
    onnx_bytes, embedded = _embed_external_data(model_dir, onnx_path, raw)
    out_path, mlmodel_bytes = onnx_path, None
    if embedded:
        # Serving reads one self-contained file: keep MLflow's original (with its
        # external tensor files) and point the onnx flavor at the embedded copy.
        out_path = _free_path(paths, posixpath.splitext(onnx_path)[0] + "-embedded.onnx")
        conf = dict(conf, data=out_path)
        mlmodel.flavors = {**mlmodel.flavors, ONNX_FLAVOR: conf}
        mlmodel_bytes = mlmodel.dump().encode()
    graph_sig = _loadable_signature(onnx_bytes)

    model, table = None, None
    if load_original and sklearn_flavor(mlmodel) is not None:
        rows = _example_rows(model_dir, mlmodel)
        if rows is not None:
            model = _load_sklearn(model_dir, mlmodel)
            table = _table(model, rows, mlmodel)
    signature = _signature_with_columns(graph_sig, table, mlmodel)
    verified = 0
    if model is not None and table is not None:
        try:
            verified = verify(onnx_bytes, signature, model, table.head(MAX_VERIFY_ROWS)).rows
        except CairnError as exc:
            raise RegistrationError(
                f"The ONNX model does not match the sklearn model it was logged with: {exc.message}"
            ) from None
    return PreparedVersion(
        onnx=onnx_bytes, onnx_path=out_path, mlmodel=mlmodel_bytes, signature=signature,
        source_flavor=ONNX_FLAVOR, verified_rows=verified,
    )


def _prepare_sklearn_flavor(model_dir: ModelDir, mlmodel: MLModel, paths: list[str]) -> PreparedVersion:
    from cairn.engine.models.onnxconvert import convert_table
    from cairn.engine.models.onnxverify import verify

    model = _load_sklearn(model_dir, mlmodel)
    rows = _example_rows(model_dir, mlmodel)
    if rows is not None:
        table = _table(model, rows, mlmodel)
    else:
        table = synthesize(mlflow_inputs=mlflow_input_columns(mlmodel.signature), model=model)
        if table is None:
            raise RegistrationError(
                f"Cannot convert {type(model).__name__} to ONNX: the model has no input example, "
                "no signature and does not say how many features it takes (n_features_in_)"
            )
    try:
        onnx_bytes, signature = convert_table(model, table)
    except ConversionError as exc:
        raise RegistrationError(f"Conversion to ONNX failed: {exc.message}") from None
    try:
        report = verify(onnx_bytes, signature, model, table.head(MAX_VERIFY_ROWS))
    except CairnError as exc:  # VerificationError, or ONNX Runtime refusing the conversion
        raise RegistrationError(f"The ONNX conversion does not match the original model: {exc.message}") from None
    onnx_path = _free_path(paths, ONNX_FILE)
    add_onnx_flavor(mlmodel, onnx_path)
    return PreparedVersion(
        onnx=onnx_bytes, onnx_path=onnx_path, mlmodel=mlmodel.dump().encode(), signature=signature,
        source_flavor=SKLEARN_FLAVOR, verified_rows=report.rows,
    )


def _load_sklearn(model_dir: ModelDir, mlmodel: MLModel) -> Any:
    try:
        return load_sklearn_model(model_dir, mlmodel)
    except ModelFormatError as exc:
        raise RegistrationError(f"Cannot load the scikit-learn model: {exc.message}") from None


def _example_rows(model_dir: ModelDir, mlmodel: MLModel) -> Any:
    try:
        rows = read_input_example(model_dir, mlmodel)
    except ModelFormatError as exc:
        raise RegistrationError(f"Unreadable input example: {exc.message}") from None
    return rows if rows else None


def _table(model: Any, rows: Any, mlmodel: MLModel) -> TabularSample:
    """The example rows named and typed by the model (feature_names_in_) or, failing
    that, by the MLmodel's column-based signature."""
    columns = [c for c in mlflow_input_columns(mlmodel.signature) or [] if "name" in c and c.get("type") != "tensor"]
    names = getattr(model, "feature_names_in_", None)
    names = [str(x) for x in names] if names is not None else [str(c["name"]) for c in columns] or None
    types = {str(c["name"]): str(c["type"]) for c in columns if isinstance(c.get("type"), str)}
    try:
        return TabularSample.of(rows, names=names, types=types, frame=hasattr(model, "feature_names_in_"))
    except ValueError as exc:
        raise RegistrationError(f"Cannot read the input example rows: {exc}") from None


def _signature_with_columns(sig: OnnxSignature, table: TabularSample | None, mlmodel: MLModel) -> OnnxSignature:
    """The graph's signature, with the table layout when the inputs match the columns
    (from the sample rows, else the MLmodel's column-based signature)."""
    if table is not None:
        columns = [ColumnSpec(n, table.types[n]) for n in table.names]
    else:
        specs = [c for c in mlflow_input_columns(mlmodel.signature) or [] if "name" in c and c.get("type") != "tensor"]
        columns = [ColumnSpec(str(c["name"]), str(c.get("type", "double"))) for c in specs]
    if not columns:
        return sig
    inputs = sig.inputs
    numeric = all(c.type in ("double", "float", "long", "integer", "boolean") for c in columns)
    if (
        len(inputs) == 1 and len(inputs[0].shape) == 2 and is_numeric_type(inputs[0].type)
        and inputs[0].shape[1] in (-1, len(columns)) and numeric and inputs[0].name not in {c.name for c in columns}
    ):
        return OnnxSignature(inputs=inputs, outputs=sig.outputs, columns=columns, layout=MATRIX)
    by_name = {c.name: c for c in columns}
    if len(inputs) == len(columns) and all(t.name in by_name for t in inputs):
        ordered = [by_name[t.name] for t in inputs]
        return OnnxSignature(inputs=inputs, outputs=sig.outputs, columns=ordered, layout=COLUMNS)
    return sig


def _free_path(paths: list[str], wanted: str) -> str:
    if wanted not in paths:
        return wanted
    stem, ext = posixpath.splitext(wanted)
    i = 1
    while f"{stem}-{i}{ext}" in paths:
        i += 1
    return f"{stem}-{i}{ext}"


def _embed_external_data(model_dir: ModelDir, onnx_path: str, raw: bytes) -> tuple[bytes, bool]:
    """The ONNX bytes with tensors stored in external files (mlflow.onnx.save_model's
    default for tensors over 1 KiB) read back into the graph; unchanged when none."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load_model_from_string(raw)
    except Exception as exc:
        raise RegistrationError(f"{onnx_path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    tensors = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    if not tensors:
        return raw, False
    base = posixpath.dirname(onnx_path)
    cache: dict[str, bytes] = {}
    for tensor in tensors:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if not location or location.startswith("/") or ".." in location.split("/"):
            raise RegistrationError(f"{onnx_path} names an external tensor file outside the model folder: {location!r}")
        path = posixpath.join(base, location) if base else location
        if path not in cache:
            cache[path] = _read(model_dir, path)
        data = cache[path]
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else len(data) - offset
        tensor.raw_data = data[offset:offset + length]
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return model.SerializeToString(), True


def _loadable_signature(onnx_bytes: bytes) -> OnnxSignature:
    """The graph's signature, once ONNX Runtime has shown it loads the model."""
    from cairn.engine.models.predictor import OnnxPredictor

    try:
        sig = signature_from_onnx(onnx_bytes)
    except ModelFormatError as exc:
        raise RegistrationError(exc.message) from None
    try:
        OnnxPredictor(onnx_bytes, sig)
    except CairnError as exc:
        raise RegistrationError(exc.message) from None
    return sig


def prepare_onnx_file(onnx_bytes: bytes) -> PreparedVersion:
    """Registering an ONNX file as it is: it must load in ONNX Runtime; the signature
    comes from its graph (layout "tensor")."""
    onnx_bytes = bytes(onnx_bytes)
    if not onnx_bytes:
        raise RegistrationError("The ONNX file is empty")
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:
        raise RegistrationError(f"Not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    if any(uses_external_data(t) for t in _get_all_tensors(model)):
        raise RegistrationError(
            "The ONNX file keeps tensors in external files: register the whole folder, "
            "or save it with save_as_external_data=False"
        )
    sig = _loadable_signature(onnx_bytes)
    return PreparedVersion(
        onnx=onnx_bytes, onnx_path=ONNX_FILE, mlmodel=None, signature=sig, source_flavor=ONNX_FLAVOR,
    )


def mlmodel_for_onnx(onnx_bytes: bytes, signature: OnnxSignature, *, onnx_path: str = ONNX_FILE) -> bytes:
    """A minimal MLmodel for an ONNX file (the onnx flavor, and python_function with
    loader mlflow.onnx), so a directly registered file is an MLflow model directory."""
    del onnx_bytes  # the file is described by its signature; kept for the callers' symmetry
    mlmodel = new_mlmodel()
    mlmodel.flavors = {
        ONNX_FLAVOR: onnx_flavor(onnx_path),
        PYFUNC_FLAVOR: {
            "data": onnx_path,
            "env": dict(PYFUNC_ENV),
            "loader_module": "mlflow.onnx",
            "python_version": platform.python_version(),
        },
    }
    if signature.inputs:
        mlmodel.signature = to_mlflow_signature(signature)
    return mlmodel.dump().encode()


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


__all__ = [
    "PackagedModel",
    "PreparedVersion",
    "environment_files",
    "mlmodel_for_onnx",
    "package_sklearn",
    "prepare_onnx_file",
    "prepare_version",
]
