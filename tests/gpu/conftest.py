"""Fixtures of the GPU suite (`pytest -m gpu`): every op run on CuPy against the same op on NumPy.

The CPU path is the reference: it is itself checked against PyTorch and finite differences in
tests/functional, so a difference here is a GPU bug. Every GPU test runs with the CUDA kernels'
output buffers filled with NaN beforehand (`poison_outputs`), so an element a kernel never writes
shows up as NaN rather than as whatever the allocator handed back (often the right answer from the
previous test).

Each test module marks itself `gpu` and skips where `gpu_available()` is False; CuPy and the CUDA
kernels are imported only when a GPU test runs. Under MINICNN_REQUIRE_GPU=1 (benchmarks/gpu_check.sh)
no usable GPU fails the session at its start instead, and any skipped test fails it at the end
(tests/conftest.py).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import minicnn as mc
from minicnn.backend import gpu_available, to_numpy

CPU, GPU = mc.device("cpu"), mc.device("cuda")

# (rtol, atol as a fraction of the reference's largest magnitude, or of 1 when every value is
# smaller: then intermediate values of order 1, such as a softmax's sum or the upstream gradient,
# set the rounding error), per dtype and kind of op. "elementwise" ops differ by a few ulps at
# most. "sum" ops (convolution, products, reductions, normalisation) add their terms in another
# order on the GPU (cuBLAS, tree reductions, kernels that accumulate differently), which in
# float32 moves each result by a few ulps of the largest.
TOLERANCES = {
    np.float32: {"elementwise": (1e-5, 1e-6), "sum": (1e-5, 2e-5)},
    np.float64: {"elementwise": (1e-10, 1e-10), "sum": (1e-10, 1e-10)},
}


@pytest.fixture
def distinct_values(rng):
    """`distinct_values(shape)`: a shuffled grid of multiples of 1/8 (exact in float32) with no two
    equal, so every maximum is unique and its gradient has one place to go."""

    def draw(shape) -> np.ndarray:
        n = int(np.prod(shape))
        return ((rng.permutation(n) - n / 2) / 8).reshape(shape)

    return draw


@pytest.fixture(autouse=True)
def poisoned_outputs():
    """Every output buffer the CUDA kernels allocate starts as NaN for the whole test. Without a GPU
    the test itself skips, or in the required mode the session never starts: nothing to poison."""
    if not gpu_available():
        yield
        return
    cuda_kernels = importlib.import_module("minicnn.kernels.cuda")
    with cuda_kernels.poison_outputs():
        yield


@pytest.fixture
def same_on_gpu():
    """The comparison every op test makes; see `compare_devices`."""
    return compare_devices


@pytest.fixture
def close_to_cpu():
    """`close_to_cpu(gpu_value, cpu_value, dtype, kind, what)` for results beyond an op's output and
    gradients (running statistics, say); see `assert_close`."""
    return assert_close


def compare_devices(fn, inputs, dtype, rng, kind: str = "elementwise", reference=None):
    """Run `fn` on the GPU and `reference` (default: `fn`) on the CPU with the same inputs; compare the
    outputs and the gradients of L = sum(u * output), u random, with respect to every floating input.

    inputs: NumPy arrays (floating ones are cast to `dtype` and differentiated; integer and boolean
    ones become constant tensors on each device) or other values, passed unchanged.
    kind: "elementwise" or "sum", the tolerance class (TOLERANCES).
    Also checks that the output and gradients live on the GPU, that no NaN appears where the CPU
    has a number (an element a kernel never wrote), and that no op wrote into its inputs.
    Returns the GPU output.
    """
    inputs = [a.astype(dtype) if _is_float(a) else a for a in inputs]
    cpu_args, cpu_out = _run(reference or fn, inputs, CPU)
    gpu_args, gpu_out = _run(fn, inputs, GPU)
    assert gpu_out.device == GPU, f"the output is on {gpu_out.device}, not on the GPU"
    assert gpu_out.dtype == cpu_out.dtype, f"output dtype {gpu_out.dtype} on the GPU, {cpu_out.dtype} on the CPU"
    assert_close(gpu_out, cpu_out, dtype, kind, "forward")

    if cpu_out.requires_grad:
        weights = np.asarray(rng.standard_normal(cpu_out.shape), dtype=cpu_out.dtype)
        cpu_out.backward(mc.tensor(weights))
        gpu_out.backward(mc.tensor(weights, device=GPU))
        for i, (on_cpu, on_gpu) in enumerate(zip(cpu_args, gpu_args)):
            if not (isinstance(on_cpu, mc.Tensor) and on_cpu.requires_grad):
                continue
            if on_cpu.grad is None:
                assert on_gpu.grad is None, f"input {i} has a gradient on the GPU only"
                continue
            assert on_gpu.grad is not None, f"input {i} has no gradient on the GPU"
            assert on_gpu.grad.device == GPU, f"the gradient of input {i} is on {on_gpu.grad.device}"
            assert on_gpu.grad.dtype == on_cpu.grad.dtype, f"gradient of input {i}: dtype {on_gpu.grad.dtype}"
            assert_close(on_gpu.grad, on_cpu.grad, dtype, kind, f"gradient of input {i}")

    for i, (original, arg) in enumerate(zip(inputs, gpu_args)):
        if isinstance(original, np.ndarray):
            assert np.array_equal(to_numpy(arg.data), original, equal_nan=True), f"input {i} was changed on the GPU"
    return gpu_out


def assert_close(actual, expected, dtype, kind: str, what: str) -> None:
    """actual (GPU) against expected (CPU), Tensors or arrays, within TOLERANCES[dtype][kind]."""
    actual = to_numpy(actual.data if isinstance(actual, mc.Tensor) else actual)
    expected = to_numpy(expected.data if isinstance(expected, mc.Tensor) else expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} on the GPU, {expected.shape} on the CPU"
    if actual.dtype.kind == "f":
        stray = np.isnan(actual) & ~np.isnan(expected)
        assert not stray.any(), (
            f"{what}: {int(stray.sum())} NaN where the CPU has numbers, the first at {tuple(np.argwhere(stray)[0])}: "
            "elements the kernel never wrote"
        )
    rtol, relative_atol = TOLERANCES[np.dtype(dtype).type][kind]
    finite = np.abs(expected[np.isfinite(expected)]) if expected.dtype.kind == "f" else np.abs(expected)
    scale = max(float(finite.max()) if finite.size else 0.0, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=relative_atol * scale, err_msg=what)


def _run(fn, inputs, where):
    args = [mc.tensor(a, requires_grad=_is_float(a), device=where) if isinstance(a, np.ndarray) else a for a in inputs]
    return args, fn(*args)


def _is_float(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"
