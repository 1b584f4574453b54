"""The factories and dtype names: shapes, dtypes, devices, gradients, seeded draws, and their errors."""

import sys

import numpy as np
import pytest

import minicnn as mc
from minicnn import creation
from minicnn.backend import CounterStream, gpu_available


@pytest.mark.parametrize("make, value", [(mc.zeros, 0.0), (mc.ones, 1.0)])
def test_zeros_and_ones_take_the_shape_either_way_and_default_to_float32(make, value):
    for t in (make(2, 3), make((2, 3)), make([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == mc.device("cpu")
        assert (t.numpy() == value).all() and not t.requires_grad
    assert make(4, dtype=mc.float64).dtype == np.float64 and make(4, dtype="int64").dtype == np.int64
    assert make().shape == () and make(0, 3).shape == (0, 3)


def test_full_takes_its_dtype_from_the_value_as_in_pytorch():
    assert mc.full((2, 2), 7).dtype == np.int64 and mc.full((2, 2), 7).numpy().tolist() == [[7, 7], [7, 7]]
    assert mc.full((3,), 0.5).dtype == np.float32 and mc.full(3, 0.5).shape == (3,)
    assert mc.full((1,), True).dtype == np.bool_
    assert mc.full((2,), 7, dtype=mc.float64).dtype == np.float64


def test_a_factory_made_leaf_collects_gradients():
    w = mc.zeros(3, requires_grad=True)
    assert w.is_leaf and w.requires_grad
    (w * mc.tensor([1.0, 2.0, 3.0]) + mc.ones(3, requires_grad=True)).sum().backward()
    assert w.grad.numpy().tolist() == [1.0, 2.0, 3.0]


def test_only_floating_point_factories_may_require_gradients():
    with pytest.raises(TypeError, match="arange: only floating-point tensors can require gradients, not int64"):
        mc.arange(3, requires_grad=True)
    with pytest.raises(TypeError, match="full: only floating-point"):
        mc.full((2,), 1, requires_grad=True)


@pytest.mark.parametrize("size", [(2, -1), (2.5,), ((2, "3"),), (True,)])
def test_a_bad_size_names_the_factory_and_how_to_write_one(size):
    with pytest.raises(ValueError, match=r"zeros: sizes must be whole numbers >= 0, as in zeros\(2, 3\)"):
        mc.zeros(*size)


def test_a_bad_dtype_names_the_factory_and_the_dtypes_it_takes():
    with pytest.raises(TypeError, match="ones: 'f32' is not a dtype minicnn knows: use mc.float32, mc.float64"):
        mc.ones(2, dtype="f32")
    with pytest.raises(TypeError, match="randn: draws float32 or float64 values, not int64"):
        mc.randn(2, dtype=mc.int64)


def test_rand_and_randn_draw_from_the_cpu_generator_that_manual_seed_seeds():
    mc.manual_seed(5)
    uniform, normal = mc.rand(3, 4), mc.randn((2, 3), dtype=mc.float64)
    reference = np.random.default_rng(5)
    np.testing.assert_array_equal(uniform.numpy(), reference.random((3, 4), dtype=np.float32))
    np.testing.assert_array_equal(normal.numpy(), reference.standard_normal((2, 3)))
    assert uniform.dtype == np.float32 and normal.dtype == np.float64
    mc.manual_seed(5)
    assert np.array_equal(mc.rand(3, 4).numpy(), uniform.numpy())
    mc.manual_seed(6)
    assert not np.array_equal(mc.rand(3, 4).numpy(), uniform.numpy())


class ScriptedStream:
    """A GPU stream's interface (`random(shape, dtype)`) that hands out given uniforms in turn."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def random(self, shape, dtype):
        return np.broadcast_to(np.asarray(self.draws.pop(0), dtype=dtype), shape)


def test_randn_on_a_gpu_stream_is_box_muller_of_two_uniforms():
    # u1 = 1 - r1 = e^-0.5 gives sqrt(-2 ln u1) = 1; then cos(2 pi u2) is 1, 0 and -1 for u2 = 0, 1/4, 1/2.
    stream = ScriptedStream(1 - np.exp(-0.5), [0.0, 0.25, 0.5])
    values = creation.standard_normal(stream, (3,), np.float32)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, [1.0, 0.0, -1.0], atol=1e-7)


def test_box_muller_draws_are_standard_normal():
    """A CounterStream as on a GPU, its uniforms from NumPy (no GPU here): the moments, and the
    share within one standard deviation, of 200,000 draws."""
    stream = CounterStream(mc.device("cuda"), seed=0)
    stream._uniform = lambda key, shape, dtype: np.random.default_rng(key).random(shape, dtype=dtype)
    z = creation.standard_normal(stream, (200_000,), np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.005
    assert stream.draws == 2


def test_arange_is_int64_for_whole_numbers_and_float32_otherwise():
    assert mc.arange(5).numpy().tolist() == [0, 1, 2, 3, 4] and mc.arange(5).dtype == np.int64
    assert mc.arange(2, 8, 3).numpy().tolist() == [2, 5] and mc.arange(5, 0, -2).numpy().tolist() == [5, 3, 1]
    steps = mc.arange(0, 1, 0.1)
    assert steps.dtype == np.float32 and steps.shape == (10,)
    np.testing.assert_array_equal(steps.numpy(), (np.arange(10) / 10).astype(np.float32))
    assert mc.arange(3, dtype=mc.float64).dtype == np.float64 and mc.arange(3.0).dtype == np.float32
    assert mc.arange(0).shape == (0,)


def test_arange_refuses_a_step_that_never_arrives():
    with pytest.raises(ValueError, match="arange: step must not be zero"):
        mc.arange(0, 3, 0)
    with pytest.raises(ValueError, match="arange: a step of -1 never goes from 0 to 3: flip its sign"):
        mc.arange(0, 3, -1)


def test_zeros_like_and_ones_like_follow_their_model_unless_told():
    model = mc.tensor(np.full((2, 3), 7.0))
    zeros, ones = mc.zeros_like(model), mc.ones_like(model.numpy(), dtype=mc.float32)
    assert zeros.shape == ones.shape == (2, 3) and zeros.dtype == np.float64 and ones.dtype == np.float32
    assert (zeros.numpy() == 0).all() and (ones.numpy() == 1).all() and zeros.device == model.device
    assert mc.ones_like(model, requires_grad=True).requires_grad


@pytest.mark.parametrize("make", [lambda: mc.zeros(2, device="cuda"), lambda: mc.rand(2, device="cuda"),
                                  lambda: mc.randn(2, device="cuda:0"), lambda: mc.arange(3, device="cuda")],
                         ids=["zeros", "rand", "randn", "arange"])
def test_a_gpu_that_is_not_there_is_a_clear_device_error(make, monkeypatch):
    if gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(mc.DeviceError, match="no usable CUDA GPU|CuPy is not installed"):
        make()
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    mc.manual_seed(0)  # a fresh GPU stream, which has not tried CuPy yet
    with pytest.raises(mc.DeviceError, match="CuPy is not installed"):
        make()


def test_an_unknown_device_is_a_device_error():
    with pytest.raises(mc.DeviceError, match="unknown device 'tpu'"):
        mc.ones(2, device="tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")
def test_factories_on_the_gpu():
    mc.manual_seed(1)
    uniform, normal = mc.rand(1000, device="cuda"), mc.randn(100_000, device="cuda", dtype=mc.float64)
    assert uniform.device == normal.device == mc.device("cuda:0") and uniform.dtype == np.float32
    assert 0 <= uniform.numpy().min() and uniform.numpy().max() < 1
    assert abs(normal.numpy().mean()) < 0.02 and abs(normal.numpy().std() - 1) < 0.02
    mc.manual_seed(1)
    assert np.array_equal(mc.rand(1000, device="cuda").numpy(), uniform.numpy())
    assert mc.zeros(2, 3, device="cuda").device == mc.device("cuda:0")
    assert mc.arange(4, device="cuda").numpy().tolist() == [0, 1, 2, 3]
    assert mc.zeros_like(uniform).device == mc.device("cuda:0")
