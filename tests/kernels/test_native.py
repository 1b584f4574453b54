"""minicnn.kernels.native: the C kernels against the NumPy kernels, their build and cache, and the
fallback when they cannot be built.

The reference is the same op with the C kernels switched off (as MINICNN_NATIVE=0 does: im2col +
BLAS, offset-slab pooling), which
the functional tests check against PyTorch and finite differences; here every layer shape that
stresses the C code's blocking (channels not a multiple of its block, rows not a multiple of its
strip, padding beyond the kernel, one image) must agree with it in float64 to rounding.
"""

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import Tensor
from minicnn.backend import CPU
from minicnn.functional.sizes import conv_output_size
from minicnn.optim import SGD
from minicnn.kernels import cpu, native
from minicnn.kernels.reference import ReferenceBackend
from minicnn.kernels.window import Window

pytestmark = pytest.mark.skipif(native.library(np.float64) is None, reason="no C compiler builds the C kernels")


@pytest.fixture
def rebuild(monkeypatch, tmp_path):
    """Load the C kernels afresh, from an empty cache in tmp_path, and again as before afterwards."""
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path))
    native._load.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    native._load.cache_clear()


@pytest.fixture
def c_calls(monkeypatch):
    """The names of the C kernels called from here on, in order (native's functions, spied on)."""
    calls = []
    for name in ("conv_forward", "conv_weight_grad", "momentum_step"):
        monkeypatch.setattr(native, name, _spy(calls, name, getattr(native, name)))
    return calls


def _spy(calls: list, name: str, function):
    def spied(*args, **kwargs):
        calls.append(name)
        return function(*args, **kwargs)

    return spied


def conv_and_grads(x, weight, bias, padding, activation, stride=1):
    """(y, gx, gw, gb) of conv2d under a fixed random output gradient."""
    xt, wt = Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True)
    bt = None if bias is None else Tensor(bias, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride=stride, padding=padding, activation=activation)
    g = np.random.default_rng(1).standard_normal(y.shape)
    (y * Tensor(g)).sum().backward()
    return y.data, xt.grad.data, wt.grad.data, None if bt is None else bt.grad.data


def test_minicnn_native_0_keeps_to_the_numpy_kernels(monkeypatch):
    """The switch the comparisons below rely on: MINICNN_NATIVE=0 when the process starts, or
    native.enabled() patched to False in this one."""
    code = "import numpy as np; from minicnn.kernels import native; print(native.library(np.float64))"
    env = {**os.environ, "MINICNN_NATIVE": "0"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["None"]
    assert native.library(np.float64) is not None
    monkeypatch.setattr(native, "enabled", lambda: False)
    assert native.library(np.float64) is None


# (x shape, weight shape, padding)
CONV_CASES = [
    ((4, 1, 28, 28), (6, 1, 5, 5), 2),  # LeNet C1: 6 filters, one and a half blocks of 4
    ((3, 6, 14, 14), (16, 6, 5, 5), 0),  # LeNet C3
    ((2, 16, 8, 8), (16, 16, 3, 3), 1),  # ResNet 3x3
    ((1, 3, 7, 11), (5, 3, 3, 3), 1),  # one image, non-square, 5 filters
    ((2, 2, 9, 6), (3, 2, 2, 4), "same"),  # even kernel: one more zero at the bottom and right
    ((1, 2, 5, 7), (3, 2, 3, 2), "same"),  # kernel width 2: no zero on the left, one on the right
    ((2, 3, 6, 5), (7, 3, 3, 2), (4, 3)),  # padding beyond the kernel: zero rows of g cropped away
    ((2, 4, 5, 5), (9, 4, 1, 1), 0),  # 1x1
    ((1, 2, 12, 12), (3, 2, 7, 7), 3),  # 7x7
    ((2, 1, 3, 40), (2, 1, 3, 3), "full"),  # rows longer than a strip
    ((2, 3, 9, 9), (8, 3, 3, 3), 1),  # 8 filters: one 8-channel block
    ((2, 4, 6, 6), (32, 4, 3, 3), 1),  # 32 filters: lanes over channels in float64 too
]


@pytest.mark.parametrize("x_shape, w_shape, padding", CONV_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_matches_numpy_kernels(monkeypatch, c_calls, rng, x_shape, w_shape, padding, activation, with_bias):
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0]) if with_bias else None
    ours = conv_and_grads(x, weight, bias, padding, activation)
    assert c_calls[0] == "conv_forward" and "conv_weight_grad" in c_calls
    monkeypatch.setattr(native, "enabled", lambda: False)
    c_calls.clear()
    reference = conv_and_grads(x, weight, bias, padding, activation)
    assert c_calls == []
    for name, got, want in zip(("y", "gx", "gw", "gb"), ours, reference):
        if want is None:
            assert got is None
            continue
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def test_conv_float32_and_a_float64_weight(rng):
    """float32 in float32 arithmetic, to float32 rounding; a float64 weight is cast to x's dtype."""
    x = rng.standard_normal((8, 6, 14, 14)).astype(np.float32)
    weight = rng.standard_normal((16, 6, 5, 5))
    y = F.conv2d(Tensor(x), Tensor(weight), activation="relu").data
    assert y.dtype == np.float32
    exact = F.conv2d(Tensor(x.astype(np.float64)), Tensor(weight.astype(np.float32).astype(np.float64)),
                     activation="relu").data
    np.testing.assert_allclose(y, exact, rtol=1e-5, atol=1e-4)


# Shapes that take each float32 path of the C code: lanes over positions with 6- or 4-channel
# blocks, lanes over output channels (C_out a multiple of 32 forward, of 16 for the weight
# gradient), kernels spelled out (3x3, 5x5) or not (7x7, 1x3), rows not a whole number of tiles.
FLOAT32_CASES = [
    ((4, 3, 10, 10), (6, 3, 5, 5), 2),
    ((4, 6, 14, 14), (16, 6, 5, 5), 0),
    ((3, 8, 9, 9), (32, 8, 3, 3), 1),
    ((2, 16, 6, 5), (64, 16, 3, 3), 1),
    ((2, 4, 11, 11), (32, 4, 7, 7), 3),
    ((2, 5, 7, 12), (16, 5, 1, 3), (0, 1)),
]


@pytest.mark.parametrize("x_shape, w_shape, padding", FLOAT32_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv_float32_paths(rng, x_shape, w_shape, padding, activation):
    """float32 in float32 arithmetic against the float64 NumPy kernels on the same values."""
    x, weight = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    ours = conv_and_grads(x, weight, bias, padding, activation)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "enabled", lambda: False)
        exact = conv_and_grads(*(a.astype(np.float64) for a in (x, weight, bias)), padding, activation)
    for name, got, want in zip(("y", "gx", "gw", "gb"), ours, exact):
        assert got.dtype == np.float32, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=name)


# (stride, kernel width, output channels, groups, dilation, dtype, whether the C convolution takes it)
C_CONV_CHOICES = {
    "stride_1": (1, 3, 6, 1, 1, np.float32, True),
    "resnet_downsampling": (2, 3, 32, 1, 1, np.float32, True),
    "strided_float64_two_vectors": (2, 3, 16, 1, 1, np.float64, True),
    "strided_one_vector": (2, 3, 16, 1, 1, np.float32, False),
    "strided_7_wide": (2, 7, 32, 1, 1, np.float32, False),
    "grouped": (1, 3, 6, 2, 1, np.float32, False),
    "dilated": (1, 3, 6, 1, 2, np.float32, False),
    "int64": (1, 3, 6, 1, 1, np.int64, False),
}


@pytest.mark.parametrize("stride, kernel_width, out_channels, groups, dilation, dtype, taken", C_CONV_CHOICES.values(),
                         ids=C_CONV_CHOICES.keys())
def test_which_layers_take_the_c_convolution(c_calls, rng, stride, kernel_width, out_channels, groups, dilation, dtype,
                                             taken):
    x = rng.integers(-3, 4, (2, 4, 9, 9)).astype(dtype)
    weight = rng.integers(-3, 4, (out_channels, 4 // groups, 3, kernel_width)).astype(dtype)
    out_size = [conv_output_size(9, k, stride, 2, dilation) for k in (3, kernel_width)]
    window = Window.over(x.shape, (3, kernel_width), (stride, stride), (dilation, dilation), (1, 1, 1, 1), out_size)
    y = CPU.kernels.conv2d(x, weight, None, window, groups, None)
    assert c_calls == (["conv_forward"] if taken else [])
    np.testing.assert_array_equal(y, ReferenceBackend(np).conv2d(x, weight, None, window, groups, None))


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((3, 16, 32, 32), (32, 16, 3, 3), 2, 1),  # ResNet-20's downsampling layers
    ((2, 8, 9, 7), (64, 8, 3, 3), 2, 1),  # odd sizes: the last input row and column are never read
    ((2, 4, 11, 10), (32, 4, 5, 5), (3, 2), 2),
    ((2, 6, 8, 8), (32, 6, 1, 1), 2, 0),  # a projection shortcut
])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_strided_conv_matches_numpy_kernels(monkeypatch, rng, dtype_name, x_shape, w_shape, stride, padding,
                                            activation):
    x, weight = rng.standard_normal(x_shape).astype(dtype_name), rng.standard_normal(w_shape).astype(dtype_name)
    bias = rng.standard_normal(w_shape[0]).astype(dtype_name)
    ours = conv_and_grads(x, weight, bias, padding, activation, stride)
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = conv_and_grads(x, weight, bias, padding, activation, stride)
    tolerance = 1e-12 if dtype_name == "float64" else 1e-4
    for name, got, want in zip(("y", "gx", "gw", "gb"), ours, reference):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max(), err_msg=name)


def test_only_bias_gradient(rng):
    """A frozen weight: the bias gradient alone, masked by the fused ReLU."""
    x, weight, bias = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    bt = Tensor(bias, requires_grad=True)
    y = F.conv2d(Tensor(x), Tensor(weight), bt, padding=1, activation="relu")
    y.sum().backward()
    np.testing.assert_allclose(bt.grad.data, (y.data > 0).sum(axis=(0, 2, 3)), rtol=1e-12)


# (x shape, kernel, stride, padding, ceil_mode)
POOL_CASES = [
    ((3, 6, 28, 28), 2, 2, 0, False),  # LeNet
    ((2, 3, 13, 13), 3, 2, 1, False),  # ResNet's stem pool, odd size
    ((2, 2, 7, 9), 2, 2, 0, True),  # ceil mode: the last windows overhang the input
    ((1, 1, 40, 37), (3, 2), (2, 3), (1, 0), True),  # more windows per row than lanes
    ((2, 3, 5, 5), 2, 1, 1, False),  # overlapping windows
    # 2x2 windows, stride 2, no padding: the kernel that reads pairs of lanes
    ((2, 3, 10, 10), 2, 2, 0, False),  # LeNet's second pool: 5x5 outputs, stores stop at each plane's end
    ((1, 2, 9, 33), 2, 2, 0, False),  # odd height and width: a last row and column no window reads
    ((3, 2, 6, 70), 2, 2, 0, False),  # 35 windows per row: whole vectors and a partial one
    ((1, 1, 2, 2), 2, 2, 0, False),  # one window, at the very end of the input
    ((4, 1, 3, 5), 2, 2, 0, False),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf in the test's own sum
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", POOL_CASES)
def test_max_pool_matches_numpy_kernels(monkeypatch, rng, dtype, shape, kernel, stride, padding, ceil_mode):
    # small integers make ties; a NaN and an infinity or two test the "first NaN wins" rule
    x = rng.integers(-3, 4, shape).astype(dtype)
    x.flat[rng.choice(x.size, 3, replace=False)] = [np.nan, -np.inf, np.inf]

    def pool_and_grad():
        xt = Tensor(x, requires_grad=True)
        y = F.max_pool2d(xt, kernel, stride, padding, ceil_mode=ceil_mode)
        (y * Tensor(np.arange(y.data.size, dtype=dtype).reshape(y.shape))).sum().backward()
        return y.data, xt.grad.data

    ours = pool_and_grad()
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = pool_and_grad()
    np.testing.assert_array_equal(ours[0], reference[0])  # the same cell wins: exact
    np.testing.assert_array_equal(ours[1], reference[1])


def test_max_pool_gradient_writes_every_cell_whatever_the_memory_held(rng, dtype):
    """The gradient array is allocated uninitialized: the three cells of each 2x2 window that
    lose, and the last odd row and column that no window reads, must come out 0 even where it
    reuses memory full of NaN."""
    shape = (2, 3, 9, 33)
    window = Window.over(shape, (2, 2), (2, 2), (1, 1), (0, 0, 0, 0), (4, 16))
    _, argmax = native.max_pool(rng.standard_normal(shape).astype(dtype), window)
    g = np.ones(argmax.shape, dtype)
    for _ in range(3):  # freed just before, the NaN block is what malloc hands out next
        del_me = np.full(shape, np.nan, dtype)
        del del_me
        gx = native.max_pool_backward(g, argmax, window)
        assert np.isfinite(gx).all()
        np.testing.assert_array_equal(gx[:, :, 8, :], 0)
        np.testing.assert_array_equal(gx[:, :, :, 32], 0)
        np.testing.assert_array_equal(gx[:, :, :8, :32].reshape(2, 3, 4, 2, 16, 2).sum(axis=(3, 5)), 1)


def norm_and_grads(x, training, affine, dtype):
    """(y, running mean, running var, gx, gw, gb) of batch_norm under a fixed output gradient."""
    channels = x.shape[1]
    running_mean, running_var = np.full(channels, 0.5), np.full(channels, 2.0)
    weight = Tensor(np.linspace(0.5, 2, channels).astype(dtype), requires_grad=True) if affine else None
    bias = Tensor(np.linspace(-1, 1, channels).astype(dtype), requires_grad=True) if affine else None
    xt = Tensor(x, requires_grad=True)
    y = F.batch_norm(xt, running_mean, running_var, weight, bias, training=training)
    (y * Tensor(np.random.default_rng(2).standard_normal(y.shape).astype(dtype))).sum().backward()
    grads = (xt.grad.data,) + ((weight.grad.data, bias.grad.data) if affine else (None, None))
    return (y.data, running_mean, running_var) + grads


@pytest.mark.parametrize("shape", [(8, 3), (4, 5, 7, 5), (2, 3, 4, 6, 5), (3, 16, 32, 32)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_numpy_kernels(monkeypatch, rng, dtype, shape, training, affine):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    ours = norm_and_grads(x, training, affine, dtype)
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = norm_and_grads(x, training, affine, dtype)
    tolerance = 1e-10 if dtype == np.float64 else 2e-4
    for name, got, want in zip(("y", "running_mean", "running_var", "gx", "gw", "gb"), ours, reference):
        if want is None:
            continue
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * max(1.0, np.abs(want).max()),
                                   err_msg=name)


@pytest.mark.parametrize("size", [5, 16 * 16384 * 4 + 3])  # under one vector; over four blocks (threads)
def test_relu_matches_numpy_kernels(monkeypatch, rng, dtype, size):
    x = rng.standard_normal(size).astype(dtype)
    x[:4] = [np.nan, -0.0, np.inf, -np.inf]
    g = rng.standard_normal(size).astype(dtype)
    g[4] = np.nan  # where y = 0 the gradient is 0 even so

    def run():
        xt = Tensor(x, requires_grad=True)
        y = F.relu(xt)
        y.backward(Tensor(g))
        return y.data, xt.grad.data

    ours = run()
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = run()
    np.testing.assert_array_equal(ours[0], reference[0])
    np.testing.assert_array_equal(ours[1], reference[1])
    assert ours[1][4] == 0 or x[4] > 0


@pytest.mark.parametrize("size", [6, 16 * 16384 * 4 + 5])  # a bias; a layer's weights over four blocks (threads)
@pytest.mark.parametrize("dampening", [0.0, 0.25])
def test_sgd_momentum_step_matches_numpy(monkeypatch, c_calls, rng, dtype, size, dampening):
    """SGD's momentum update in one C pass: parameter and buffer as NumPy's in-place steps give
    them (to rounding: the C pass may fuse a multiply and an add). The first step only copies the
    gradient into the buffer; the next ones take the C pass."""
    start, grad = rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)

    def train():
        param = Tensor(start.copy(), requires_grad=True)
        optimizer = SGD([param], lr=0.05, momentum=0.9, dampening=dampening)
        for _ in range(4):
            param.grad = Tensor(grad.copy())
            optimizer.step()
        return param.data, optimizer.state[param]["momentum_buffer"]

    ours = train()
    assert c_calls == ["momentum_step"] * 3
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = train()
    assert c_calls == ["momentum_step"] * 3
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


def test_add_of_large_arrays_is_exact_and_small_or_broadcast_ones_keep_to_numpy(rng, dtype):
    a, b = rng.standard_normal((2, 3, 150, 150)).astype(dtype), rng.standard_normal((2, 3, 150, 150)).astype(dtype)
    assert a.size >= cpu.C_ADD_MIN_SIZE
    np.testing.assert_array_equal(CPU.kernels.add(a, b), a + b)  # one rounding per element either way
    np.testing.assert_array_equal(CPU.kernels.add(a, b[:, :1]), a + b[:, :1])  # broadcast: NumPy's
    np.testing.assert_array_equal(CPU.kernels.add(a[:, :, ::2], b[:, :, ::2]), a[:, :, ::2] + b[:, :, ::2])


def test_gradients_meeting_at_one_input_add_up(rng, dtype):
    """A residual connection: y = relu(x) + x, so x's gradient is the sum of two paths."""
    x = Tensor(rng.standard_normal((2, 4, 100, 100)).astype(dtype), requires_grad=True)
    (F.relu(x) + x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, (x.data > 0).astype(dtype) + 1)


def test_weight_gradient_ignores_what_earlier_calls_left_in_scratch_memory(monkeypatch, rng):
    """A batch whose last group of images is smaller than the rest reads a little past its planes:
    that memory must be zeroed, not whatever the thread's buffer held (here NaN from a call before)."""
    F.conv2d(Tensor(np.full((4, 4, 28, 28), np.nan, np.float32)), Tensor(np.ones((6, 4, 5, 5), np.float32)))
    x, weight = rng.standard_normal((3, 1, 28, 28)).astype(np.float32), rng.standard_normal((6, 1, 5, 5)).astype(np.float32)

    def weight_grad():  # LeNet's first layer: the images need no gradient, so only the weight's is computed
        wt = Tensor(weight, requires_grad=True)
        F.conv2d(Tensor(x), wt, padding=2, activation="relu").sum().backward()
        return wt.grad.data

    ours = weight_grad()
    monkeypatch.setattr(native, "enabled", lambda: False)
    reference = weight_grad()
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_an_empty_batch_has_zero_gradients(rng):
    weight = Tensor(rng.standard_normal((6, 1, 5, 5)).astype(np.float32), requires_grad=True)
    F.conv2d(Tensor(np.zeros((0, 1, 28, 28), np.float32)), weight, padding=2, activation="relu").sum().backward()
    np.testing.assert_array_equal(weight.grad.data, 0)


def test_relu_of_a_scalar_keeps_its_shape():
    x = Tensor(np.array(-1.5, np.float32), requires_grad=True)
    y = F.relu(x)
    y.backward()
    assert y.shape == () and y.data == 0 and x.grad.data == 0


def test_mixed_dtypes_take_the_forward_pass_dtype(rng):
    """A float16 ReLU output meeting a float32 gradient, and a frozen float16 weight on float32
    images: the C kernels only ever see one dtype."""
    x16 = Tensor(rng.standard_normal((2, 3)).astype(np.float16), requires_grad=True)
    (F.relu(x16) * Tensor(np.ones((2, 3), np.float32))).sum().backward()
    np.testing.assert_array_equal(x16.grad.data, (x16.data > 0).astype(np.float16))
    x = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    weight = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float16))
    F.conv2d(x, weight, padding=1).sum().backward()
    assert x.grad.dtype == np.float32 and np.isfinite(x.grad.data).all()


def test_an_unwritable_cache_warns_and_falls_back(rebuild, monkeypatch):
    blocker = rebuild / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(blocker))
    with pytest.warns(native.NativeBuildWarning, match="were not built"):
        assert native.library(np.float32) is None


def test_builds_once_into_the_cache(rebuild):
    lib = native.library(np.float32)
    built = sorted(rebuild.glob("native/minicnn-*.so"))
    assert lib is not None and [p.name.split("-")[1] for p in built] == ["float"]
    stamp = built[0].stat().st_mtime_ns
    native._load.cache_clear()
    assert native.library(np.float32) is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded from the cache, not rebuilt
    assert not list(rebuild.glob("native/tmp*"))  # no scratch left behind


def test_a_source_change_builds_anew(rebuild, monkeypatch):
    native.library(np.float32)
    monkeypatch.setattr(native, "FLAG_SETS", tuple((*flags, "-DMINICNN_TEST_FLAG") for flags in native.FLAG_SETS))
    native._load.cache_clear()
    native.library(np.float32)
    assert len(list(rebuild.glob("native/minicnn-float-*.so"))) == 2


def test_no_compiler_warns_once_and_falls_back(rebuild, monkeypatch, rng):
    x, weight = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((3, 1, 3, 3))
    expected = F.conv2d(Tensor(x), Tensor(weight), padding=1).data
    native._load.cache_clear()
    monkeypatch.setenv("CC", str(rebuild / "no-such-compiler"))
    with pytest.warns(native.NativeBuildWarning, match="were not built .*no-such-compiler.*NumPy kernels"):
        assert native.library(np.float64) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning comes once
        y = F.conv2d(Tensor(x), Tensor(weight), padding=1).data
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_a_compiler_that_fails_is_reported(rebuild, monkeypatch):
    broken = rebuild / "cc"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo broken 1.0 && exit 0\necho 'cc: fatal error: no' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(native.NativeBuildWarning, match="cc: fatal error: no"):
        assert native.library(np.float32) is None


def test_minicnn_native_0_keeps_to_numpy(monkeypatch):
    monkeypatch.setattr(native, "enabled", lambda: False)
    assert native.library(np.float32) is None


@pytest.mark.parametrize("real", sorted(set(native.REALS.values())))
def test_sources_compile_without_warnings(tmp_path, real):
    compiler = shutil.which("gcc") or shutil.which("cc")
    command = [compiler, *native.FLAG_SETS[0], "-Wall", "-Wextra", "-Werror", "-Wno-psabi", f"-DREAL={real}",
               *(str(native.SOURCE_DIR / s) for s in native.SOURCES), "-lm", "-o", str(tmp_path / "k.so")]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
