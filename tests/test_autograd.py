"""The engine: graph recording, topological backward, freeing, no_grad, devices, debug mode."""

import contextlib
import logging
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.autograd import Function


def test_tensor_defaults_to_float32_for_python_numbers():
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor(3.5).dtype == np.float32
    assert mc.tensor([1, 2]).dtype.kind == "i"


def test_tensor_keeps_numpy_dtype_and_copies():
    data = np.arange(4.0)
    t = mc.tensor(data)
    assert t.dtype == np.float64
    data[0] = 100.0
    assert t.numpy()[0] == 0.0


def test_tensor_explicit_dtype():
    assert mc.tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_tensor_properties():
    t = mc.tensor(np.zeros((2, 3, 4)), requires_grad=True)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.numel() == 24 and len(t) == 2
    assert t.device == mc.device("cpu") and str(t.device) == "cpu"
    assert t.requires_grad and t.is_leaf and t.grad is None


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        mc.tensor([1, 2], requires_grad=True)


def test_item_and_its_error():
    assert mc.tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match="one element"):
        mc.tensor([1.0, 2.0]).item()


def test_backward_of_a_product_and_sum():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = mc.tensor([4.0, 5.0, 6.0], requires_grad=True)
    (x * y + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 6.0, 7.0])
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 2.0, 3.0])


def test_diamond_graph_adds_both_paths():
    # z = a*b + a*c with b = a^2, c = 3a: dz/da = b + a*2a + c + 3a = 3a^2 + 6a
    a = mc.tensor(2.0, requires_grad=True)
    b = a * a
    c = a * 3.0
    (a * b + a * c).backward()
    assert a.grad.item() == pytest.approx(3 * 4 + 6 * 2)


def test_same_input_used_twice():
    x = mc.tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.item() == 6.0


def test_gradients_accumulate_across_backward_calls():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_leaf_grads_do_not_alias_each_other():
    a = mc.tensor([1.0], requires_grad=True)
    b = mc.tensor([2.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data += 10.0
    assert b.grad.item() == 1.0


def test_long_chain_needs_no_recursion():
    x = mc.tensor(1.0, requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**5000)


def test_graph_is_freed_after_backward():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_backward_frees_saved_arrays():
    x = mc.tensor(np.ones(3), requires_grad=True)
    y = x * x
    node = y.creator
    assert any(a is not None for a in node.saved)
    y.sum().backward()
    assert node.saved == () and node.parents == ()


def test_nodes_do_not_keep_intermediate_tensors():
    x = mc.tensor(np.ones(3), requires_grad=True)
    hidden = x * 2.0
    y = hidden + 1.0  # add saves nothing
    assert all(not isinstance(p, mc.Tensor) or p is x for p in y.creator.parents)
    assert y.creator.saved == ()


def test_only_needed_gradients_are_computed():
    calls = []

    class Spy(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, g):
            calls.append(self.needs_input_grad)
            return (g if self.needs_input_grad[0] else None, g if self.needs_input_grad[1] else None)

    x = mc.tensor([1.0], requires_grad=True)
    Spy()(x, mc.tensor([2.0])).sum().backward()
    assert calls == [(True, False)]


def test_backward_needs_grad_for_non_scalar():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.array([1.0, -1.0], dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0])


def test_backward_on_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        mc.tensor([1.0]).sum().backward()


def test_wrong_gradient_shape_from_a_function_is_reported():
    class Broken(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return g.sum()

    x = mc.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Broken.backward returned a gradient of shape"):
        Broken()(x).sum().backward()


def test_no_grad_context_and_decorator():
    x = mc.tensor([1.0], requires_grad=True)
    with mc.no_grad():
        y = x * 2.0
        assert not mc.is_grad_enabled()
    assert mc.is_grad_enabled()
    assert not y.requires_grad and y.creator is None

    @mc.no_grad()
    def evaluate(t):
        return t * 3.0

    assert not evaluate(x).requires_grad and mc.is_grad_enabled()


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ValueError):
        with mc.no_grad():
            raise ValueError
    assert mc.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_memory():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.creator is None
    y = x * 2.0
    assert np.shares_memory(y.detach().data, y.data)


def test_numpy_array_on_the_left_defers_to_tensor():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, mc.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_python_scalars_keep_float32():
    x = mc.tensor([1.0, 2.0])
    assert (x * 2.5).dtype == np.float32
    assert (1.0 - x).dtype == np.float32
    assert (x**2).dtype == np.float32


def test_comparisons_are_elementwise_and_not_differentiable():
    x = mc.tensor([1.0, 5.0, 3.0], requires_grad=True)
    assert (x > 2.0).numpy().tolist() == [False, True, True]
    assert (x == 5.0).numpy().tolist() == [False, True, False]
    assert not (x > 2.0).requires_grad
    assert x.argmax().item() == 1
    assert {x: 1}[x] == 1  # still hashable


def test_repr_is_readable():
    text = repr(mc.tensor([1.0, 2.0], requires_grad=True))
    assert text.startswith("tensor([1., 2.]") and "requires_grad=True" in text
    assert "grad_fn=Mul" in repr(mc.tensor([1.0], requires_grad=True) * 2.0)


def test_to_cpu_is_identity():
    x = mc.tensor([1.0])
    assert x.to("cpu") is x


def test_cuda_without_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    with pytest.raises(mc.DeviceError, match="CuPy is not installed"):
        mc.tensor([1.0], device="cuda")


def test_cuda_with_cupy_but_no_gpu_is_a_clear_error():
    pytest.importorskip("cupy")
    if mc.backend.gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(mc.DeviceError, match="no usable CUDA GPU for device 'cuda:0'"):
        mc.tensor([1.0], device="cuda")


class FakeGpuArray(np.ndarray):
    """An array whose type says it is CuPy's, on GPU 1: all that backend.device_of reads."""

    device = SimpleNamespace(id=1)


FakeGpuArray.__module__ = "cupy"


def test_mixing_devices_names_op_and_devices():
    # No GPU here: one tensor holds an array that reports another device.
    x, other = mc.tensor([1.0]), mc.Tensor(np.ones(1).view(FakeGpuArray))
    assert other.device == mc.device("cuda:1")
    with pytest.raises(mc.DeviceError, match=r"Add: inputs are on different devices \(cpu and cuda:1\)"):
        x + other


class Keep(Function):
    """Returns its first input and keeps the array its second input arrived as."""

    def forward(self, x, constant):
        self.constant = constant
        return x


def test_a_constant_already_on_the_gpu_is_used_as_it_is(monkeypatch):
    """Class labels on a GPU go to an op without a trip to the host and back (no GPU here: arrays
    that report GPU 1, and a to_numpy that records any copy)."""
    pytest.importorskip("cupy")  # the op asks CuPy for its array module
    copies = []
    monkeypatch.setattr(mc.backend, "to_numpy", lambda array: copies.append(array) or np.asarray(array))
    x, labels = mc.Tensor(np.ones(2).view(FakeGpuArray)), np.array([0, 1]).view(FakeGpuArray)
    op = Keep()
    op(x, labels)
    assert op.constant is labels and copies == []


def test_debug_level_1_logs_each_op(caplog):
    mc.set_debug(1)
    try:
        with caplog.at_level(logging.DEBUG, logger="minicnn"):
            F.relu(mc.tensor(np.ones((2, 3))))
    finally:
        mc.set_debug(0)
    assert any("ReLU" in r.getMessage() and "(2, 3)" in r.getMessage() for r in caplog.records)


def test_debug_level_2_stops_at_first_nan():
    mc.set_debug(2)
    try:
        x = mc.tensor([1.0, -1.0])
        with pytest.raises(FloatingPointError, match="Log produced NaN"):
            with np.errstate(invalid="ignore"):
                F.log(x)
    finally:
        mc.set_debug(0)


def test_view_is_reshape_with_pytorch_spellings():
    x = mc.tensor(np.arange(6.0), requires_grad=True)
    v = x.view(2, -1)
    assert v.shape == (2, 3) and x.view((3, 2)).shape == (3, 2) and x.view([6]).shape == (6,)
    assert v.numpy().tolist() == [[0, 1, 2], [3, 4, 5]] and np.shares_memory(v.data, x.data)
    (v * mc.tensor([[1.0], [2.0]])).sum().backward()
    assert x.grad.numpy().tolist() == [1, 1, 1, 2, 2, 2]


def test_view_refuses_an_impossible_shape_as_reshape_does():
    x = mc.tensor(np.arange(6.0))
    with pytest.raises(ValueError) as from_reshape:
        x.reshape(4, 2)
    with pytest.raises(ValueError) as from_view:
        x.view(4, 2)
    assert str(from_view.value) == str(from_reshape.value) and "size 6" in str(from_view.value)


def test_size_dim_and_numel_as_in_pytorch():
    x = mc.tensor(np.zeros((2, 3, 4)))
    assert x.size() == (2, 3, 4) and all(type(n) is int for n in x.size())
    assert (x.size(0), x.size(-1), x.size(-3)) == (2, 4, 2)
    assert x.dim() == x.ndim == 3 and x.numel() == 24
    for bad in (3, -4):
        with pytest.raises(IndexError, match=rf"size: dim {bad} is out of range for a tensor of shape \(2, 3, 4\): use -3..2"):
            x.size(bad)


def test_cpu_returns_the_same_tensor_on_the_cpu():
    x = mc.tensor([1.0])
    assert x.cpu() is x


def test_cpu_brings_a_gpu_tensor_back_with_its_gradient(monkeypatch):
    """No GPU here: arrays that report GPU 1, a `get` that copies them to the host, and a stand-in
    for CuPy that brings the gradient back to "GPU 1"."""
    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(Device=lambda index: contextlib.nullcontext()),
                                asarray=lambda array: np.asarray(array).view(FakeGpuArray))
    monkeypatch.setattr(mc.backend, "check_cuda_device", lambda target: fake_cupy)
    monkeypatch.setattr(FakeGpuArray, "get", lambda self: np.asarray(self).copy(), raising=False)
    x = mc.Tensor(np.array([1.0, 2.0]).view(FakeGpuArray), requires_grad=True)
    back = x.cpu()
    assert back.device == mc.device("cpu") and back.numpy().tolist() == [1.0, 2.0]
    (back * 3.0).sum().backward()
    assert x.grad.device == mc.device("cuda:1") and x.grad.numpy().tolist() == [3.0, 3.0]


def test_dtype_names_are_numpy_dtypes_and_every_dtype_argument_takes_them():
    assert mc.float32 is np.float32 and mc.float64 is np.float64 and mc.int64 is np.int64 and mc.uint8 is np.uint8
    assert mc.tensor([1, 2], dtype=mc.float64).dtype == mc.float64
    assert mc.tensor([1.5], dtype=mc.uint8).dtype == np.uint8
    assert mc.tensor([1.0]).to(mc.float64).dtype == np.float64


def test_to_changes_dtype_and_device_by_position_or_keyword():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    assert x.to(mc.float32) is x and x.to("cpu", mc.float32) is x and x.to(device="cpu") is x
    y = x.to("cpu", mc.float64)
    assert y.dtype == np.float64 and x.to(dtype=mc.float64).dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.numpy().tolist() == [2.0, 4.0]
    assert x.to(mc.int64).numpy().tolist() == [1, 2]
    with pytest.raises(TypeError, match="to: two dtypes given"):
        x.to(mc.float64, mc.float32)
    with pytest.raises(TypeError, match="to: 'complex-ish' is not a dtype minicnn knows"):
        x.to(dtype="complex-ish")
