"""Sessions of served versions: CPU loading, the provider a session really runs on and
why, GPU requested where CUDA does not load, unload and reload (scale-to-zero), whether a
model can be batched, and the provider report `cairn doctor` prints."""
from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestRegressor

from cairn.app.serving import runtime
from cairn.app.serving.batcher import Batcher
from cairn.app.serving.runtime import CPU_EP, CUDA_EP, ServedModel, cuda_status, provider_report
from cairn.engine.errors import CairnError


@pytest.fixture(scope="module")
def rf():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    model = RandomForestRegressor(n_estimators=8, max_depth=4, random_state=0).fit(X, X[:, 0] - X[:, 1])
    return to_onnx(model, X[:1]).SerializeToString(), X


def tensor_model(node, in_shape, out_shape) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "t", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_cpu_load_runs_like_onnxruntime(rf):
    onnx_bytes, X = rf
    served = ServedModel.load(onnx_bytes, workload_type="cpu", name="rf/1")
    assert served.loaded and served.loads == 1
    assert served.provider == CPU_EP and served.provider_reason == "CPU workload"
    assert served.workload_type == "CPU"
    opts = served.predictor.session.get_session_options()
    assert opts.intra_op_num_threads == 1  # live serving: one thread per session
    ref = ort.InferenceSession(onnx_bytes, providers=[CPU_EP]).run(None, {"X": X})
    np.testing.assert_allclose(served.run({"X": X})["variable"], ref[0], rtol=1e-5, atol=1e-6)
    assert served.signature.input_names() == ["X"]


def test_unknown_workload_type_and_unreadable_model(rf):
    with pytest.raises(ValueError, match="CPU or GPU"):
        ServedModel(rf[0], workload_type="TPU")
    with pytest.raises(CairnError):
        ServedModel.load(b"not an onnx model")


def test_gpu_requested_without_cuda_falls_back_with_reason(rf):
    onnx_bytes, X = rf
    ok, why = cuda_status()
    served = ServedModel.load(onnx_bytes, workload_type="GPU")
    if ok:  # a machine where CUDA really loads
        assert served.provider == CUDA_EP and "CUDA provider loaded" in served.provider_reason
        return
    assert served.provider == CPU_EP
    assert served.provider_reason == why
    assert served.provider_reason.startswith(("CUDA provider failed to load: ", "this ONNX Runtime build"))
    assert len(served.provider_reason) > len("CUDA provider failed to load: ")
    np.testing.assert_allclose(
        served.run({"X": X[:4]})["variable"], ServedModel.load(onnx_bytes).run({"X": X[:4]})["variable"]
    )


def test_cuda_probe_keeps_the_terminal_clean(monkeypatch, capfd):
    monkeypatch.setattr(runtime, "_cuda_verdict", None)  # probe again, in this test
    ok, why = cuda_status()
    out, err = capfd.readouterr()
    assert "onnxruntime" not in out + err and "EP Error" not in out + err
    assert ok or why
    assert cuda_status() == (ok, why)  # remembered, not probed again


def test_unload_and_reload_once_for_concurrent_callers(rf):
    onnx_bytes, X = rf
    reads = []

    def source():  # read again on each load: an unloaded model keeps no bytes
        reads.append(1)
        return onnx_bytes

    served = ServedModel.load(source)
    expected = served.run({"X": X[:3]})
    served.unload()
    assert not served.loaded and served.loads == 1
    start = threading.Barrier(8)
    results = []

    def caller():
        start.wait()
        results.append(served.run({"X": X[:3]}))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 8 and served.loaded
    assert served.loads == 2 and len(reads) == 2  # eight callers, one load
    for got in results:
        np.testing.assert_array_equal(got["variable"], expected["variable"])
    assert served.ensure_loaded() is served.ensure_loaded()


def test_scale_to_zero_behind_a_batcher(rf):
    onnx_bytes, X = rf
    served = ServedModel.load(onnx_bytes)
    batcher = Batcher(served.run, max_workers=2)
    first = batcher.submit_sync({"X": X[:2]}, 2)
    served.unload()  # the endpoint went idle
    again = batcher.submit_sync({"X": X[:2]}, 2)  # the worker reloads it
    batcher.close()
    np.testing.assert_array_equal(first["variable"], again["variable"])
    assert served.loads == 2


def test_batchable_from_the_graph(rf):
    assert ServedModel.load(rf[0]).batchable is True
    fixed = tensor_model(helper.make_node("Relu", ["x"], ["y"]), [1, 3], [1, 3])
    assert ServedModel.load(fixed).batchable is False
    total = tensor_model(helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0), [None, 3], [])
    served = ServedModel.load(total)
    assert served.batchable is None  # a rank-0 output or an unknown shape: found out at run time
    batcher = Batcher(served.run, batchable=served.batchable, max_workers=1)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert float(batcher.submit_sync({"x": x}, 2)["y"]) == 15.0
    batcher.close()


def test_provider_report():
    report = provider_report()
    assert [p for p, _, _ in report] == [CUDA_EP, "TensorrtExecutionProvider", CPU_EP]
    by_name = {p: (ok, detail) for p, ok, detail in report}
    assert by_name[CPU_EP] == (True, "loads")
    assert by_name[CUDA_EP][0] == cuda_status()[0]
    for provider, ok, detail in report:
        assert detail and (ok or "loads" not in detail.split(":")[0]), (provider, detail)


# What ONNX Runtime prints when a provider does not load, as seen on real machines.
MISSING_LIBRARY = (
    "\x1b[1;31m2026-01-01 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "/x/libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: "
    "No such file or directory\n\x1b[m\n"
)
NO_DEVICE = (
    "[E:onnxruntime:Default, cuda_call.cc:123 CudaCall] CUDA failure 100: no CUDA-capable device "
    "is detected ; GPU=0 ; hostname=h ; file=x.cc ; line=280 ; expr=cudaSetDevice(info_.device_id);\n"
)
FALLBACK_BANNER = (  # raised by the provider, then ORT's Python fallback prints this
    "*************** EP Error ***************\nEP Error /onnxruntime_src/onnxruntime/python/"
    "onnxruntime_pybind_state.cc:729 void onnxruntime::python::RegisterTensorRTPluginsAsCustomOps("
    "PySessionOptions&, const onnxruntime::ProviderOptions&) Please install TensorRT libraries.\n"
    " when using ['TensorrtExecutionProvider']\nFalling back to ['CPUExecutionProvider'] and retrying.\n"
)


@pytest.mark.parametrize(
    ("printed", "reason"),
    [
        (MISSING_LIBRARY, "libcudnn.so.9: cannot open shared object file: No such file or directory"),
        (NO_DEVICE, "CUDA failure 100: no CUDA-capable device is detected"),
        (FALLBACK_BANNER, "Please install TensorRT libraries."),
        ("", "the session came up on CPU (ONNX Runtime gave no reason)"),
    ],
)
def test_reasons_in_onnxruntimes_words(printed, reason):
    assert runtime._reason(printed) == reason
