"""Moving tensors and modules between the CPU and the GPU, and the error for mixing devices."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.backend import cupy_module, gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

CPU, GPU = mc.device("cpu"), mc.device("cuda:0")


def test_cuda_names_gpu_0():
    assert mc.device("cuda") == GPU == mc.Device("cuda", 0) and str(GPU) == "cuda:0"
    assert mc.gpu_available("cuda:0")


def test_tensor_to_the_gpu_and_back(rng):
    values = rng.standard_normal((3, 5)).astype(np.float32)
    x = mc.tensor(values)
    on_gpu = x.to("cuda")
    assert on_gpu.device == GPU and type(on_gpu.data).__module__.split(".")[0] == "cupy"
    assert on_gpu.to("cuda:0") is on_gpu and on_gpu.dtype == np.float32
    assert np.array_equal(on_gpu.numpy(), values)
    back = on_gpu.to("cpu")
    assert back.device == CPU and isinstance(back.data, np.ndarray) and np.array_equal(back.data, values)
    made_there = mc.tensor(values, requires_grad=True, device="cuda:0")
    assert made_there.device == GPU and made_there.requires_grad and np.array_equal(made_there.numpy(), values)


def test_gradient_returns_to_the_source_device(rng):
    values = rng.standard_normal((4, 3))
    x = mc.tensor(values, requires_grad=True)
    (x.to("cuda") ** 2).sum().backward()
    assert x.grad.device == CPU
    np.testing.assert_allclose(x.grad.numpy(), 2 * values, rtol=1e-12)


def test_a_gpu_that_does_not_exist_is_a_clear_error():
    count = cupy_module().cuda.runtime.getDeviceCount()
    with pytest.raises(mc.DeviceError, match=f"cuda:{count}' does not exist"):
        mc.tensor([1.0], device=f"cuda:{count}")


def test_module_to_moves_parameters_and_buffers_in_place(rng):
    """The same Parameter objects end up on the GPU (an optimizer built before the move keeps
    working); state_dict still hands back the same NumPy arrays; the forward pass runs there."""
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 7))
    parameters, state = list(model.parameters()), model.state_dict()
    assert model.to("cuda") is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in parameters]
    assert all(p.device == GPU for p in model.parameters()) and all(b.device == GPU for b in model.buffers())
    for name, value in model.state_dict().items():
        assert isinstance(value, np.ndarray) and np.array_equal(value, state[name]), name
    out = model(mc.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), device="cuda"))
    assert out.device == GPU and out.shape == (2, 7)
    model.to("cpu")
    assert all(t.device == CPU for t in [*model.parameters(), *model.buffers()])


MIXED = {
    # name of the op in the error: (op, shape of the first input, shape of the second)
    "Add": (lambda a, b: a + b, (2, 3), (2, 3)),
    "MatMul": (lambda a, b: a @ b, (2, 3), (3, 4)),
    "Linear": (F.linear, (2, 3), (4, 3)),
    "Conv2d": (F.conv2d, (1, 2, 5, 5), (3, 2, 3, 3)),
    "Cat": (lambda a, b: F.cat([a, b]), (2, 3), (2, 3)),
}


@pytest.mark.parametrize("first_on_gpu", [False, True], ids=["cpu_then_gpu", "gpu_then_cpu"])
@pytest.mark.parametrize("name", MIXED)
def test_mixing_devices_names_the_op_and_both_devices(name, first_on_gpu, rng):
    op, a_shape, b_shape = MIXED[name]
    a = mc.tensor(rng.standard_normal(a_shape).astype(np.float32), device="cuda" if first_on_gpu else "cpu")
    b = mc.tensor(rng.standard_normal(b_shape).astype(np.float32), device="cpu" if first_on_gpu else "cuda")
    devices = r"\(cuda:0 and cpu\)" if first_on_gpu else r"\(cpu and cuda:0\)"
    with pytest.raises(mc.DeviceError, match=f"{name}: inputs are on different devices {devices}"):
        op(a, b)
