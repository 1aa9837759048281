"""The CUDA provider, on a machine where it really loads a session (skipped elsewhere,
with ONNX Runtime's reason): an MLP exported to ONNX runs on CUDA, gives the CPU's
answer within 1e-4, and batching forms multi-row batches on it. The throughput gain is
printed (run on a GPU machine with `pytest -m gpu -s`), not asserted: speed is proven in
bench/, never by a timed assertion in a test."""
from __future__ import annotations

import asyncio
import time
import warnings

import numpy as np
import pytest

from cairn.app.serving.batcher import Batcher
from cairn.app.serving.runtime import CPU_EP, CUDA_EP, ServedModel, cuda_status

pytestmark = pytest.mark.gpu

N_FEATURES = 64
REQUESTS = 2000  # single-row requests per throughput run
CONCURRENCY = 64


@pytest.fixture(scope="module", autouse=True)
def cuda():
    ok, why = cuda_status()
    if not ok:
        pytest.skip(f"CUDAExecutionProvider does not load here: {why}")


@pytest.fixture(scope="module")
def mlp():
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(7)
    X = rng.normal(size=(1000, N_FEATURES)).astype(np.float32)
    y = np.tanh(X[:, :8].sum(axis=1)) + 0.1 * X[:, 8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPRegressor(hidden_layer_sizes=(512, 512, 256), max_iter=3, random_state=0).fit(X, y)
    return to_onnx(model, X[:1]).SerializeToString(), X


def test_mlp_runs_on_cuda_and_matches_cpu(mlp):
    onnx_bytes, X = mlp
    gpu = ServedModel.load(onnx_bytes, workload_type="GPU")
    cpu = ServedModel.load(onnx_bytes)
    assert gpu.provider == CUDA_EP, gpu.provider_reason
    assert gpu.predictor.session.get_providers()[0] == CUDA_EP
    assert cpu.provider == CPU_EP
    name = gpu.predictor.output_names[0]
    on_gpu, on_cpu = gpu.run({"X": X})[name], cpu.run({"X": X})[name]
    diff = float(np.max(np.abs(on_gpu - on_cpu)))
    print(f"\nMLP {N_FEATURES}-512-512-256-1 on {len(X)} rows: max |CUDA - CPU| = {diff:.2e}")
    assert diff <= 1e-4


def _throughput(served: ServedModel, X: np.ndarray, max_batch_rows: int) -> tuple[float, dict]:
    batcher = Batcher(served.run, max_batch_rows=max_batch_rows, name=f"mlp-b{max_batch_rows}")
    rows = [{"X": X[i % len(X):i % len(X) + 1]} for i in range(REQUESTS)]

    async def client(k: int) -> None:
        for i in range(k, REQUESTS, CONCURRENCY):
            await batcher.submit(rows[i], 1)

    async def main() -> float:
        await batcher.submit(rows[0], 1)  # warm up
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(CONCURRENCY))), 120)
        return time.perf_counter() - start

    try:
        elapsed = asyncio.run(main())
    finally:
        batcher.close()
    return REQUESTS / elapsed, batcher.stats()


def test_batching_forms_batches_on_cuda(mlp):
    onnx_bytes, X = mlp
    gpu = ServedModel.load(onnx_bytes, workload_type="GPU")
    assert gpu.provider == CUDA_EP, gpu.provider_reason
    gpu.run({"X": X[:64]})  # CUDA kernels and cuBLAS handles up before timing
    unbatched, _ = _throughput(gpu, X, max_batch_rows=1)
    batched, stats = _throughput(gpu, X, max_batch_rows=64)
    mean_batch = stats["rows"] / max(stats["batches"], 1)
    print(
        f"\nMLP on CUDA, {REQUESTS} single-row requests at concurrency {CONCURRENCY}: "
        f"unbatched {unbatched:,.0f} req/s, batched {batched:,.0f} req/s "
        f"({batched / unbatched:.1f}x, mean batch {mean_batch:.1f} rows, workers {stats['workers']})"
    )
    assert stats["max_batch_requests"] > 1
