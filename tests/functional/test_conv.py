"""minicnn.functional.conv: conv2d, convolve and correlate.

References: the tutorial's hand-worked examples (docs/en/tutorial.md), a naive loop convolution written here in
float64, numpy.convolve/correlate and scipy.signal.convolve2d/correlate2d, and finite differences
(minicnn.testing.gradcheck).
"""

import numpy as np
import pytest
import scipy.signal

import minicnn as mc
import minicnn.functional as F
from minicnn.testing import gradcheck

rng = np.random.default_rng(20240601)


def t(array, requires_grad=False):
    return mc.tensor(np.asarray(array), requires_grad=requires_grad)


# --- the independent reference -------------------------------------------------------------------


def reference_pads(padding, kernel, dilation):
    """(top, bottom, left, right) for a padding spec, following PyTorch: 'same' pads d*(k-1) in
    total with the odd one out at the bottom/right; 'full' pads d*(k-1) on every side."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding in ("same", "full"):
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        if padding == "full":
            return (th, th, tw, tw)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


def reference_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation one output element at a time; positions outside the image read as 0."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    n, c, h, wd = x.shape
    c_out, c_group, kh, kw = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out_per_group = c_out // groups
    y = np.zeros((n, c_out, oh, ow))
    for image in range(n):
        for o in range(c_out):
            first_channel = (o // out_per_group) * c_group
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if b is None else float(b[o])
                    for ci in range(c_group):
                        for a in range(kh):
                            for e in range(kw):
                                row = i * stride[0] + a * dilation[0] - top
                                col = j * stride[1] + e * dilation[1] - left
                                if 0 <= row < h and 0 <= col < wd:
                                    total += x[image, first_channel + ci, row, col] * w[o, ci, a, e]
                    y[image, o, i, j] = total
    return y


def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# --- the tutorial's worked examples (docs/en/tutorial.md §1-2) ------------------------------------------------------------------


def test_seed_1d_convolution_valid_and_same():
    f = t([0.0, 1.0, 2.0, -1.0, 3.0])
    g = t([1.0, 1.0, 0.0])
    np.testing.assert_array_equal(F.convolve(f, g, "valid").numpy(), [3, 1, 2])
    np.testing.assert_array_equal(F.convolve(f, g, "same").numpy(), [1, 3, 1, 2, 3])


def test_seed_1d_convolution_full_and_mode_sizes():
    # full by hand: c[n] = sum_k f[k] g[n-k] = [0, 0+1, 0+1+2, 0+2-1, 0-1+3, 0+3, 0]
    f = t([0.0, 1.0, 2.0, -1.0, 3.0])
    g = t([1.0, 1.0, 0.0])
    np.testing.assert_array_equal(F.convolve(f, g, "full").numpy(), [0, 1, 3, 1, 2, 3, 0])
    # the tutorial's table (§2): valid M-K+1, same M, full M+K-1
    assert [F.convolve(f, g, m).shape for m in ("valid", "same", "full")] == [(3,), (5,), (7,)]


def test_seed_convolution_flips_the_kernel_and_correlation_does_not():
    # (f * g)[m] = sum_i f[m - i] g[i] flips g; deep learning's correlation slides g as it is.
    f = t([0.0, 1.0, 2.0, -1.0, 3.0])
    g = t([1.0, 1.0, 0.0])
    # windows [0,1,2], [1,2,-1], [2,-1,3] times [1,1,0]
    np.testing.assert_array_equal(F.correlate(f, g, "valid").numpy(), [1, 3, 1])


def test_seed_2d_mode_sizes():
    image = t(rng.standard_normal((6, 7)))
    kernel = t(rng.standard_normal((3, 3)))
    assert F.convolve(image, kernel, "valid").shape == (6 - 3 + 1, 7 - 3 + 1)
    assert F.convolve(image, kernel, "same").shape == (6, 7)
    assert F.convolve(image, kernel, "full").shape == (6 + 3 - 1, 7 + 3 - 1)


VERTICAL_EDGE = np.array([[-1.0, 0.0, 1.0]] * 3)


def test_seed_vertical_edge_kernel_on_a_thick_bright_bar_gives_zero():
    patch = np.array([[10.0, 20.0, 10.0]] * 3)
    # by hand, row by row: 10*-1 + 20*0 + 10*1 = 0, three times, summed: 0
    assert F.correlate(t(patch), t(VERTICAL_EDGE), "valid").numpy().tolist() == [[0.0]]
    y = F.conv2d(t(patch.reshape(1, 1, 3, 3)), t(VERTICAL_EDGE.reshape(1, 1, 3, 3)))
    assert y.shape == (1, 1, 1, 1)
    assert y.numpy().item() == 0.0


def test_seed_vertical_edge_kernel_is_brighter_where_it_matches():
    # dark (10) on the left, bright (50) on the right: the edge sits between columns 2 and 3.
    image = np.array([[10.0, 10.0, 10.0, 50.0, 50.0, 50.0]] * 5)
    y = F.conv2d(t(image.reshape(1, 1, 5, 6)), t(VERTICAL_EDGE.reshape(1, 1, 3, 3))).numpy()[0, 0]
    # each window over the edge: 3 rows of (-10 + 50) = 120; flat windows: 0
    np.testing.assert_array_equal(y, [[0.0, 120.0, 120.0, 0.0]] * 3)
    step = np.array([[10.0, 10.0, 50.0, 50.0]] * 3)
    assert F.correlate(t(step), t(VERTICAL_EDGE), "valid").numpy().tolist() == [[120.0, 120.0]]
    # the opposite edge (bright to dark) is the opposite of a match
    assert F.correlate(t(step[:, ::-1].copy()), t(VERTICAL_EDGE), "valid").numpy().tolist() == [[-120.0, -120.0]]


def test_seed_multichannel_filter_sums_over_rgb():
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)  # a 32x32x3 image
    w = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)  # one 5x5x3 filter
    y = F.conv2d(t(x), t(w))
    assert y.shape == (1, 1, 28, 28)
    # "compute on R, G and B separately, then add the three results"
    per_channel = sum(F.conv2d(t(x[:, c : c + 1]), t(w[:, c : c + 1])).numpy() for c in range(3))
    np.testing.assert_allclose(y.numpy(), per_channel, rtol=1e-5, atol=1e-4)
    i, j = 7, 19
    np.testing.assert_allclose(y.numpy()[0, 0, i, j], np.sum(x[0, :, i : i + 5, j : j + 5] * w[0]), rtol=1e-5)


def test_seed_many_filters_give_many_output_channels():
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 3, 5, 5)).astype(np.float32)
    y = F.conv2d(t(x), t(w))
    assert y.shape == (1, 32, 28, 28)
    for k in (0, 13, 31):  # each feature map is its own filter's scan of the image
        np.testing.assert_allclose(y.numpy()[:, k : k + 1], F.conv2d(t(x), t(w[k : k + 1])).numpy(), rtol=1e-5, atol=1e-5)


def test_seed_lenet_convolution_shapes():
    c1 = F.conv2d(t(np.zeros((1, 1, 32, 32), np.float32)), t(np.zeros((6, 1, 5, 5), np.float32)))
    assert c1.shape == (1, 6, 28, 28)
    c3 = F.conv2d(t(np.zeros((1, 6, 14, 14), np.float32)), t(np.zeros((16, 6, 5, 5), np.float32)))
    assert c3.shape == (1, 16, 10, 10)


def test_seed_stride_shrinks_and_same_padding_keeps_the_size():
    x = t(rng.standard_normal((1, 1, 8, 8)))
    w = t(rng.standard_normal((1, 1, 3, 3)))
    assert F.conv2d(x, w).shape == (1, 1, 6, 6)
    assert F.conv2d(x, w, stride=2).shape == (1, 1, 3, 3)
    assert F.conv2d(x, w, padding="same").shape == (1, 1, 8, 8)


# --- conv2d forward against the loop reference ---------------------------------------------------

# x shape, weight shape, stride, padding, dilation, groups
FORWARD_CASES = [
    ((2, 3, 7, 6), (5, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 8, 7), (4, 3, 3, 3), 2, 1, 1, 1),
    ((2, 3, 7, 8), (5, 3, 2, 3), (2, 1), (0, 2), 1, 1),
    ((1, 3, 6, 9), (7, 3, 2, 4), 1, "valid", 1, 1),
    ((2, 3, 6, 5), (5, 3, 3, 3), 1, "same", 1, 1),
    ((1, 2, 6, 7), (3, 2, 4, 2), 1, "same", 1, 1),
    ((1, 2, 7, 7), (3, 2, 3, 2), 1, "same", (2, 3), 1),
    ((2, 3, 5, 4), (5, 3, 3, 2), 1, "full", 1, 1),
    ((1, 1, 4, 4), (2, 1, 2, 2), 1, "full", 2, 1),
    ((2, 3, 9, 9), (5, 3, 3, 3), 2, 1, 2, 1),
    ((2, 4, 6, 6), (6, 2, 3, 3), 1, 0, 1, 2),
    ((1, 3, 5, 5), (6, 1, 3, 3), 1, 1, 1, 3),
    ((2, 3, 6, 6), (3, 1, 3, 3), 1, 1, 1, 3),
    ((2, 3, 4, 5), (7, 3, 1, 1), 1, 0, 1, 1),
    ((1, 3, 4, 4), (1, 3, 4, 4), 1, 0, 1, 1),
    ((1, 2, 9, 8), (3, 2, 2, 2), 3, (1, 0), 1, 1),
    ((2, 3, 10, 7), (5, 3, 3, 2), (1, 2), (2, 1), (2, 1), 1),
    ((1, 6, 9, 8), (4, 3, 3, 3), 2, 1, (1, 2), 2),
    ((1, 4, 5, 6), (10, 2, 2, 3), (2, 1), "valid", 1, 2),
]


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", FORWARD_CASES)
def test_conv2d_matches_loop_reference(x_shape, w_shape, stride, padding, dilation, groups, with_bias):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if with_bias else None
    y = F.conv2d(t(x), t(w), None if b is None else t(b), stride=stride, padding=padding, dilation=dilation, groups=groups)
    pads = reference_pads(padding, w_shape[2:], as_pair(dilation))
    expected = reference_conv2d(x, w, b, as_pair(stride), pads, as_pair(dilation), groups)
    assert y.shape == expected.shape
    if padding == "same":
        assert y.shape[2:] == x_shape[2:]
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_conv2d_full_padding_output_size():
    y = F.conv2d(t(np.ones((1, 1, 5, 4))), t(np.ones((1, 1, 3, 2))), padding="full")
    assert y.shape == (1, 1, 5 + 3 - 1, 4 + 2 - 1)
    # corners of a full correlation of ones with ones see one element, the middle all six
    assert y.numpy()[0, 0, 0, 0] == 1.0
    assert y.numpy()[0, 0, 3, 2] == 6.0


def test_conv2d_matches_correlate2d_for_one_channel():
    x = rng.standard_normal((7, 6))
    w = rng.standard_normal((3, 4))
    for padding, mode in (("valid", "valid"), ("full", "full")):
        y = F.conv2d(t(x.reshape(1, 1, 7, 6)), t(w.reshape(1, 1, 3, 4)), padding=padding)
        np.testing.assert_allclose(y.numpy()[0, 0], scipy.signal.correlate2d(x, w, mode), rtol=1e-10, atol=1e-12)


def test_conv2d_keeps_float32():
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    y = F.conv2d(xt, wt, bt, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), reference_conv2d(x, w, b, pads=(1, 1, 1, 1)), rtol=1e-4, atol=1e-4)
    y.sum().backward()
    assert xt.grad.dtype == np.float32 and wt.grad.dtype == np.float32 and bt.grad.dtype == np.float32
    # d(sum y)/d bias = number of output positions per image times the batch
    np.testing.assert_allclose(bt.grad.numpy(), np.full(4, 2 * 6 * 6), rtol=1e-6)


def test_conv2d_default_dtype_from_python_lists_is_float32():
    x = mc.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = mc.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    y = F.conv2d(x, w)
    assert y.dtype == np.float32
    assert y.numpy().tolist() == [[[[1.0 - 4.0]]]]


def test_conv2d_float64_stays_float64():
    x = t(rng.standard_normal((1, 2, 5, 5)), True)
    w = t(rng.standard_normal((3, 2, 3, 3)), True)
    y = F.conv2d(x, w, stride=2, padding=1)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float64 and w.grad.dtype == np.float64


# --- conv2d gradients against finite differences --------------------------------------------------

GRAD_CASES = [
    ((2, 2, 5, 4), (3, 2, 3, 2), 1, 0, 1, 1),
    ((1, 2, 6, 5), (3, 2, 3, 3), 2, 1, 1, 1),
    ((2, 2, 5, 5), (3, 2, 2, 3), (2, 1), (1, 0), 1, 1),
    ((1, 2, 5, 4), (2, 2, 2, 4), 1, "same", 1, 1),
    ((1, 2, 5, 5), (3, 2, 3, 2), 1, "same", (2, 1), 1),
    ((1, 2, 3, 4), (3, 2, 2, 3), 1, "full", 1, 1),
    ((1, 2, 6, 6), (3, 2, 2, 2), 1, 1, (2, 1), 1),
    ((1, 4, 5, 5), (6, 2, 3, 3), 1, 0, 1, 2),
    ((2, 3, 5, 5), (3, 1, 3, 3), 1, 1, 1, 3),
    ((1, 1, 7, 7), (2, 1, 2, 2), 3, 0, 1, 1),
    ((1, 3, 7, 6), (5, 3, 3, 2), (2, 3), (1, 2), (1, 2), 1),
]


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", GRAD_CASES)
def test_conv2d_gradcheck(x_shape, w_shape, stride, padding, dilation, groups, with_bias):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if with_bias:
        inputs.append(rng.standard_normal(w_shape[0]))

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", GRAD_CASES)
def test_conv2d_with_fused_relu_equals_relu_after_conv2d(x_shape, w_shape, stride, padding, dilation, groups):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    fused = [t(a, True) for a in arrays]
    apart = [t(a, True) for a in arrays]
    y_fused = F.conv2d(*fused, activation="relu", **settings)
    y_apart = F.relu(F.conv2d(*apart, **settings))
    np.testing.assert_array_equal(y_fused.numpy(), y_apart.numpy())
    g = rng.standard_normal(y_fused.shape)
    y_fused.backward(t(g))
    y_apart.backward(t(g))
    for a, b in zip(fused, apart):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, activation="relu", **settings), arrays)


def test_conv2d_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        F.conv2d(t(np.ones((1, 1, 3, 3))), t(np.ones((1, 1, 2, 2))), activation="gelu")


def test_conv2d_gradcheck_with_only_one_input_needing_grad():
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    w_const, x_const = t(w), t(x)
    assert gradcheck(lambda x_: F.conv2d(x_, w_const, stride=2, padding=1), [x])
    assert gradcheck(lambda w_: F.conv2d(x_const, w_, stride=2, padding=1), [w])
    assert w_const.grad is None and x_const.grad is None


def test_conv2d_input_gradient_is_zero_where_no_window_reads():
    # 7x7 input, 2x2 kernel, stride 3: rows and columns 2 and 5 and 6 are never read.
    x = t(rng.standard_normal((1, 1, 7, 7)), True)
    w = t(rng.standard_normal((1, 1, 2, 2)))
    F.conv2d(x, w, stride=3).sum().backward()
    unread = [2, 5, 6]
    g = x.grad.numpy()[0, 0]
    assert np.all(g[unread, :] == 0) and np.all(g[:, unread] == 0)
    # every read position sits in exactly one window, so its gradient is the kernel value there
    np.testing.assert_allclose(g[0:2, 3:5], w.numpy()[0, 0])


def conv2d_with_grads(x, w, b, **kwargs):
    """(y, gx, gw, gb) of conv2d for the upstream gradient linspace(-1, 1)."""
    x, w, b = t(x, True), t(w, True), t(b, True)
    y = F.conv2d(x, w, b, **kwargs)
    y.backward(t(np.linspace(-1, 1, y.numpy().size).reshape(y.shape)))
    return y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("kwargs", [dict(dilation=2, padding=2), dict(stride=2, padding=1, groups=2)])
def test_conv2d_in_one_image_slices_equals_the_whole_batch_at_once(monkeypatch, kwargs):
    """The im2col path (dilated, strided and grouped layers) sliced image by image, forward and
    both gradients, against the whole batch in one slice."""
    from minicnn.kernels import reference

    groups = kwargs.get("groups", 1)
    x, w, b = (rng.standard_normal(shape) for shape in [(5, 4, 9, 8), (6, 4 // groups, 3, 3), (6,)])
    monkeypatch.setattr(reference, "CONV_CHUNK_BYTES", 1 << 40)
    whole = conv2d_with_grads(x, w, b, **kwargs)
    monkeypatch.setattr(reference, "CONV_CHUNK_BYTES", 1)
    for name, sliced, expected in zip(["y", "gx", "gw", "gb"], conv2d_with_grads(x, w, b, **kwargs), whole):
        np.testing.assert_allclose(sliced, expected, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("stage", ["forward", "backward"])
def test_conv2d_out_of_memory_names_the_layer_and_a_smaller_batch(monkeypatch, stage):
    from minicnn.functional.conv import ConvolutionMemoryError

    x, w = t(rng.standard_normal((3, 4, 6, 5)), True), t(rng.standard_normal((2, 4, 3, 3)), True)
    original = MemoryError("Unable to allocate 30 GiB")

    def fail(*args):
        raise original

    y = F.conv2d(x, w, dilation=2)  # the im2col path, whose matrices are the large allocations
    cpu = mc.device("cpu").kernels
    monkeypatch.setattr(cpu, "im2col", fail)
    monkeypatch.setattr(cpu, "col2im", fail)
    with pytest.raises(ConvolutionMemoryError,
                       match=rf"conv2d: out of memory on cpu in the {stage} pass of a layer with input \(3, 4, 6, 5\) "
                             r"float64 and weight \(2, 4, 3, 3\): use a smaller batch than 3") as caught:
        F.conv2d(x, w, dilation=2) if stage == "forward" else y.sum().backward()
    assert caught.value.__cause__ is original and isinstance(caught.value, MemoryError)


def test_conv2d_gradients_accumulate_when_an_input_is_used_twice():
    x = t(rng.standard_normal((1, 1, 4, 4)), True)
    w = t(rng.standard_normal((1, 1, 3, 3)), True)
    (F.conv2d(x, w).sum() + F.conv2d(x, w, padding=1).sum()).backward()
    once_x = t(x.numpy(), True)
    once_w = t(w.numpy(), True)
    F.conv2d(once_x, once_w).sum().backward()
    twice_x, twice_w = t(x.numpy(), True), t(w.numpy(), True)
    F.conv2d(twice_x, twice_w, padding=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), once_x.grad.numpy() + twice_x.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), once_w.grad.numpy() + twice_w.grad.numpy(), rtol=1e-6, atol=1e-6)


# --- convolve / correlate against numpy and scipy --------------------------------------------------

MODES = ["full", "valid", "same"]
PAIRS_1D = [(5, 3), (6, 4), (7, 2), (4, 4), (3, 5), (2, 6), (3, 4), (4, 7), (1, 1), (5, 1), (1, 4)]
PAIRS_2D = [
    ((5, 6), (3, 3)),
    ((6, 5), (2, 4)),
    ((4, 4), (4, 4)),
    ((7, 4), (3, 2)),
    ((5, 5), (1, 1)),
    ((3, 4), (5, 6)),  # kernel larger than the input in both directions
    ((2, 3), (4, 3)),  # kernel larger in one, equal in the other
    ((4, 5), (2, 5)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n", PAIRS_1D)
def test_convolve_1d_matches_numpy(m, n, mode):
    a, v = rng.standard_normal(m), rng.standard_normal(n)
    np.testing.assert_allclose(F.convolve(t(a), t(v), mode).numpy(), np.convolve(a, v, mode), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n", PAIRS_1D)
def test_correlate_1d_matches_numpy(m, n, mode):
    # numpy.correlate with the kernel longer than the input swaps the two and reverses the result,
    # so its 'same' window starts at M//2 of 'full', not (M-1)//2: even M tells the two apart.
    a, v = rng.standard_normal(m), rng.standard_normal(n)
    np.testing.assert_allclose(F.correlate(t(a), t(v), mode).numpy(), np.correlate(a, v, mode), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("x_shape,k_shape", PAIRS_2D)
def test_convolve_and_correlate_2d_match_scipy(x_shape, k_shape, mode):
    a, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    got = F.convolve(t(a), t(k), mode).numpy()
    np.testing.assert_allclose(got, scipy.signal.convolve2d(a, k, mode), rtol=1e-10, atol=1e-12)
    got = F.correlate(t(a), t(k), mode).numpy()
    np.testing.assert_allclose(got, scipy.signal.correlate2d(a, k, mode), rtol=1e-10, atol=1e-12)


def test_convolve_keeps_float32():
    a = rng.standard_normal(6).astype(np.float32)
    v = rng.standard_normal(3).astype(np.float32)
    y = F.convolve(t(a), t(v), "same")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), np.convolve(a.astype(np.float64), v.astype(np.float64), "same"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", [F.convolve, F.correlate], ids=["convolve", "correlate"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("x_shape,k_shape", [((6,), (3,)), ((5,), (4,)), ((3,), (5,)), ((4, 5), (3, 2)), ((3, 3), (4, 4))])
def test_convolve_and_correlate_gradcheck(op, mode, x_shape, k_shape):
    assert gradcheck(lambda a, k: op(a, k, mode), [rng.standard_normal(x_shape), rng.standard_normal(k_shape)])


@pytest.mark.parametrize("op", [F.convolve, F.correlate], ids=["convolve", "correlate"])
def test_2d_valid_needs_one_array_to_cover_the_other(op):
    a, k = np.ones((3, 5)), np.ones((4, 2))
    with pytest.raises(ValueError):  # scipy refuses the same shapes
        scipy.signal.convolve2d(a, k, "valid")
    with pytest.raises(ValueError, match=r"'valid' needs one array at least as large.*\(3, 5\) and \(4, 2\)"):
        op(t(a), t(k), "valid")
    assert op(t(a), t(k), "full").shape == (6, 6)


@pytest.mark.parametrize("op", [F.convolve, F.correlate], ids=["convolve", "correlate"])
def test_convolve_and_correlate_errors(op):
    with pytest.raises(ValueError, match=r"mode must be 'full', 'valid' or 'same', got 'half'"):
        op(t(np.ones(4)), t(np.ones(2)), "half")
    with pytest.raises(ValueError, match=r"two 1-D or two 2-D arrays, got shapes \(4,\) and \(2, 2\)"):
        op(t(np.ones(4)), t(np.ones((2, 2))))
    with pytest.raises(ValueError, match=r"got shapes \(1, 2, 2\) and \(1, 2, 2\)"):
        op(t(np.ones((1, 2, 2))), t(np.ones((1, 2, 2))))


# --- conv2d errors --------------------------------------------------------------------------------


def test_conv2d_error_for_a_single_image_suggests_a_batch_axis():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(3, 8, 8\).*batch axis"):
        F.conv2d(t(np.ones((3, 8, 8))), t(np.ones((4, 3, 3, 3))))


def test_conv2d_error_for_a_2d_input_names_its_shape():
    with pytest.raises(ValueError, match=r"got shape \(8, 8\)"):
        F.conv2d(t(np.ones((8, 8))), t(np.ones((1, 1, 3, 3))))


def test_conv2d_error_for_a_bad_weight_shape():
    with pytest.raises(ValueError, match=r"weight must be .* got shape \(3, 3\)"):
        F.conv2d(t(np.ones((1, 1, 8, 8))), t(np.ones((3, 3))))


def test_conv2d_channel_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"3 channels \(shape \(1, 3, 8, 8\)\) but weight \(4, 2, 3, 3\).*expects 2"):
        F.conv2d(t(np.ones((1, 3, 8, 8))), t(np.ones((4, 2, 3, 3))))


def test_conv2d_grouped_channel_mismatch():
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 8\).*\(4, 1, 3, 3\) with groups=2 expects 2"):
        F.conv2d(t(np.ones((1, 4, 8, 8))), t(np.ones((4, 1, 3, 3))), groups=2)


@pytest.mark.parametrize("groups", [0, 3])
def test_conv2d_groups_must_divide_the_output_channels(groups):
    with pytest.raises(ValueError, match=rf"groups={groups} must be positive and divide C_out=4"):
        F.conv2d(t(np.ones((1, 6, 8, 8))), t(np.ones((4, 2, 3, 3))), groups=groups)


def test_conv2d_bias_shape_error():
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
        F.conv2d(t(np.ones((1, 3, 8, 8))), t(np.ones((4, 3, 3, 3))), t(np.ones(3)))


@pytest.mark.parametrize("stride", [2, (1, 2)])
def test_conv2d_same_padding_needs_stride_one(stride):
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        F.conv2d(t(np.ones((1, 1, 8, 8))), t(np.ones((1, 1, 3, 3))), stride=stride, padding="same")


def test_conv2d_kernel_larger_than_the_padded_input():
    x, w = t(np.ones((1, 1, 4, 4))), t(np.ones((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"kernel 5x5 .* larger than the padded input \(4, 4\)"):
        F.conv2d(x, w)
    assert F.conv2d(x, w, padding=1).shape == (1, 1, 2, 2)  # 6x6 padded holds a 5x5 kernel
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        F.conv2d(t(np.ones((1, 1, 8, 8))), t(np.ones((1, 1, 5, 3))), dilation=2)  # spans 9x5


@pytest.mark.parametrize("padding", ["half", "SAME", ""])
def test_conv2d_bad_padding_string(padding):
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, 'valid', 'same' or 'full'"):
        F.conv2d(t(np.ones((1, 1, 5, 5))), t(np.ones((1, 1, 3, 3))), padding=padding)


@pytest.mark.parametrize("padding", [-1, (0, -2)])
def test_conv2d_negative_padding(padding):
    with pytest.raises(ValueError, match=r"padding must be non-negative"):
        F.conv2d(t(np.ones((1, 1, 5, 5))), t(np.ones((1, 1, 3, 3))), padding=padding)


@pytest.mark.parametrize("padding", [(1, 2, 3), 1.5])
def test_conv2d_malformed_padding(padding):
    with pytest.raises(ValueError, match=r"conv2d padding must be an int or a pair of ints"):
        F.conv2d(t(np.ones((1, 1, 5, 5))), t(np.ones((1, 1, 3, 3))), padding=padding)


@pytest.mark.parametrize("kw", [dict(stride=0), dict(stride=(1, 0)), dict(stride=-1), dict(dilation=0), dict(dilation=(0, 1))])
def test_conv2d_stride_and_dilation_must_be_positive(kw):
    with pytest.raises(ValueError, match=r"stride .* and dilation .* must be at least 1"):
        F.conv2d(t(np.ones((1, 1, 5, 5))), t(np.ones((1, 1, 3, 3))), **kw)
