"""The ONNX Runtime session of one served version, and which providers really load here.

`ServedModel.load(onnx, signature, workload_type)` opens one session (one intra-op
thread, no spinning: engine.models.predictor.session_options) that all of the version's batcher
workers share; ORT's `run` is thread-safe, so a session per worker would only multiply
memory. A GPU workload gets CUDAExecutionProvider when it REALLY loads: ORT falls back
to CPU silently when the CUDA libraries or the device are missing, so the truth is
`session.get_providers()`, never `get_available_providers()` (which only lists what the
wheel was built with). When it falls back, `provider_reason` says why, in ORT's words.

ORT reports a provider that fails to load only by printing (C++ log lines on stderr, a
Python banner on stdout), not by raising. To have the reason, and a clean terminal, the
first GPU load of the process probes CUDA once with a tiny model while capturing both
file descriptors; the verdict is kept (libraries do not appear while a process runs), so
a scale-to-zero reload does not pay for it or print anything.

Scale-to-zero: `unload()` drops the session; `run()` (the batcher's run_fn, so in a
worker thread, off the event loop) loads it again on the next request, once however many
callers arrive together.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cairn.engine.models.predictor import OnnxPredictor
from cairn.engine.models.signature import OnnxSignature

CPU, GPU = "CPU", "GPU"
CUDA_EP, TRT_EP, CPU_EP = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"

OnnxSource = bytes | Callable[[], bytes]


class ServedModel:
    """A served version's session. Attributes for `cairn doctor` and /metrics:
    `provider` (the provider the session runs on; None until loaded), `provider_reason`
    (why that one), `workload_type`, `loads` (how many times it was loaded),
    `last_used` (time.monotonic() of the last run)."""

    def __init__(
        self,
        source: OnnxSource,
        signature: OnnxSignature | None = None,
        workload_type: str = CPU,
        name: str = "",
    ):
        workload_type = (workload_type or CPU).upper()
        if workload_type not in (CPU, GPU):
            raise ValueError(f"workload_type must be CPU or GPU, got {workload_type!r}")
        # A callable source is read again on each reload, so an unloaded model holds no
        # copy of its bytes; plain bytes are kept.
        self._source = source
        self._signature = signature
        self.workload_type = workload_type
        self.name = name
        self.provider: str | None = None
        self.provider_reason = ""
        self.loads = 0
        self.last_used = time.monotonic()
        self._predictor: OnnxPredictor | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: OnnxSource,
        signature: OnnxSignature | None = None,
        workload_type: str = CPU,
        name: str = "",
    ) -> ServedModel:
        """A ServedModel with its session open. Raises CairnError (400) when ONNX Runtime
        cannot load the model."""
        model = cls(source, signature, workload_type, name)
        model.ensure_loaded()
        return model

    # -- loading -------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    def ensure_loaded(self) -> OnnxPredictor:
        predictor = self._predictor
        if predictor is not None:
            return predictor
        with self._load_lock:  # concurrent callers: the first loads, the rest wait for it
            if self._predictor is None:
                self._predictor = self._open()
                self.loads += 1
            return self._predictor

    def unload(self) -> None:
        """Drop the session (runs in flight keep their reference and finish)."""
        with self._load_lock:
            self._predictor = None

    def _open(self) -> OnnxPredictor:
        data = self._source() if callable(self._source) else self._source
        if self.workload_type == GPU:
            ok, reason = cuda_status()
            if ok:
                try:
                    # TF32 matmuls (ORT's CUDA default on Ampere and later) drift ~1e-3
                    # from the CPU answer the registry verified; serve full float32.
                    cuda = (CUDA_EP, {"use_tf32": "0"})
                    predictor = OnnxPredictor(data, self._signature, providers=[cuda, CPU_EP])
                except Exception as exc:  # noqa: BLE001 (any CUDA failure: serve on CPU, say why)
                    reason = f"CUDA provider failed for this model: {exc}"
                else:
                    if CUDA_EP in predictor.providers:
                        self.provider, self.provider_reason = CUDA_EP, "GPU workload: CUDA provider loaded"
                        return predictor
                    reason = "CUDA provider did not load for this model (ONNX Runtime fell back to CPU)"
            predictor = OnnxPredictor(data, self._signature)
            self.provider, self.provider_reason = predictor.providers[0], reason
            return predictor
        predictor = OnnxPredictor(data, self._signature)
        self.provider, self.provider_reason = predictor.providers[0], "CPU workload"
        return predictor

    # -- running -------------------------------------------------------------------------

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """All outputs for these feeds (the Batcher's run_fn); loads the session first if
        it was unloaded. Raises CairnError (400) when the model rejects the input."""
        predictor = self._predictor or self.ensure_loaded()
        self.last_used = time.monotonic()
        return predictor.run(feeds)

    @property
    def predictor(self) -> OnnxPredictor:
        """The loaded predictor (loading it if needed): its `feeds(data)` turns request
        data into this model's inputs, per the signature."""
        return self.ensure_loaded()

    @property
    def signature(self) -> OnnxSignature:
        if self._signature is None:
            self._signature = self.ensure_loaded().signature
        return self._signature

    @property
    def batchable(self) -> bool | None:
        """Whether requests can be concatenated along axis 0 and outputs split by row:
        True when every input and output has a dynamic first dimension (or is a ZipMap's
        per-row sequence), False when one has a fixed first dimension or is a scalar,
        None when the graph does not say (the Batcher then finds out on its first batch)."""
        sig = self.signature
        verdict: bool | None = True
        for spec in [*sig.inputs, *sig.outputs]:
            if spec.type == "sequence":
                continue
            if spec.type == "map" or not spec.shape:
                verdict = None  # a rank-0 tensor or one without shape information
            elif spec.shape[0] != -1:
                return False
        return verdict


# -- which providers really load ------------------------------------------------------

_cuda_lock = threading.Lock()
_cuda_verdict: tuple[bool, str] | None = None


def cuda_status() -> tuple[bool, str]:
    """(True, "") when a CUDA session really loads in this process, else (False, why).
    Probed once per process, quietly."""
    global _cuda_verdict
    with _cuda_lock:
        if _cuda_verdict is None:
            _cuda_verdict = _probe(CUDA_EP)
        return _cuda_verdict


def provider_report() -> list[tuple[str, bool, str]]:
    """(provider, loads, detail) for CUDA, TensorRT and CPU: whether a session on a tiny
    model really runs on it here and, when not, ONNX Runtime's reason. For `cairn doctor`."""
    report = []
    for provider in (CUDA_EP, TRT_EP, CPU_EP):
        if provider == CUDA_EP:
            ok, why = cuda_status()
        else:
            ok, why = _probe(provider)
        report.append((provider, ok, "loads" if ok else why))
    return report


def _probe(provider: str) -> tuple[bool, str]:
    import onnxruntime as ort

    from cairn.engine.models.predictor import session_options

    name = {CUDA_EP: "CUDA", TRT_EP: "TensorRT"}.get(provider, "CPU")
    if provider not in ort.get_available_providers():
        return False, f"this ONNX Runtime build ({ort.__version__}) has no {name} provider"
    if provider != CPU_EP:
        _preload_pip_cuda()
    with _captured() as text:
        try:
            session = ort.InferenceSession(_tiny_model(), session_options(), providers=[provider])
            session.run(None, {"x": np.ones((1, 2), np.float32)})
            providers = session.get_providers()
        except Exception as exc:  # noqa: BLE001 (a provider that fails is the answer sought)
            providers, error = [], str(exc)
        else:
            error = ""
    if provider in providers:
        return True, ""
    return False, f"{name} provider failed to load: {_reason(text.getvalue() + error)}"


def _preload_pip_cuda() -> None:
    """CUDA and cuDNN installed as pip wheels (onnxruntime-gpu[cuda,cudnn]) are not on
    the loader's path: ORT's preload_dlls loads them from site-packages when present."""
    import importlib.util

    import onnxruntime as ort

    if importlib.util.find_spec("nvidia") is None or not hasattr(ort, "preload_dlls"):
        return
    with _captured(), contextlib.suppress(Exception):
        ort.preload_dlls()


def _tiny_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ORT_LINE = re.compile(r"\[[EWIV]:onnxruntime:|EP Error|when using \[|Falling back to|^\*+( EP Error \*+)?$|^\s*$")


@contextlib.contextmanager
def _captured():
    """Collect what is printed meanwhile, by Python and by native code (file descriptors
    1 and 2), into the StringIO yielded. Lines that are not ONNX Runtime's (another
    thread's log line) are written back afterwards, so nothing else is lost."""
    text = io.StringIO()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # no descriptors to redirect (an embedded interpreter)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield text
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield text
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            native = _ANSI.sub("", tmp.read().decode("utf-8", "replace"))
            python = text.getvalue()
            text.seek(0)
            text.truncate()
            text.write(native + python)
            others = [ln for ln in (native + python).splitlines(True) if not _ORT_LINE.search(ln)]
            if others:
                with contextlib.suppress(Exception):
                    sys.stderr.write("".join(others))


_REASONS = (
    re.compile(r"Failed to load library \S+ with error: (.+)"),  # a missing .so
    re.compile(r"(CUDA failure \d+: [^;\n]+)"),  # no device, a driver too old
    re.compile(r"^EP Error:? (.+?)\s+(?:when )?using \[", re.DOTALL | re.MULTILINE),  # raised, then ORT's own fallback
    re.compile(r"\[E:onnxruntime:[^\]]*\] (.+)"),
)


def _reason(text: str) -> str:
    text = _ANSI.sub("", text)
    for pattern in _REASONS:
        found = pattern.search(text)
        if found:
            reason = found.group(1).strip()
            break
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        reason = lines[-1] if lines else "the session came up on CPU (ONNX Runtime gave no reason)"
    reason = re.sub(r"^/onnxruntime_src/\S+ (?:[^(]*\([^)]*\) )?", "", reason)  # ORT's source line
    return reason[:300]


__all__ = ["CPU", "GPU", "ServedModel", "cuda_status", "provider_report"]
