"""max_pool2d, avg_pool2d, adaptive_avg_pool2d against the tutorial's worked examples (docs/en/tutorial.md §7) and naive loops.

The references below are written from PyTorch's documented rules, one output cell at a time, and share
no code with minicnn: output size (floor, or ceil keeping a last window that starts inside the input or
its left padding), -inf padding for max, and the average's divisor (cells inside the padded input, or
only the real input with count_include_pad=False; never the ceil_mode overhang past the padding).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.testing import gradcheck


def reference_output_size(size, kernel, stride, padding, ceil_mode):
    if ceil_mode:
        out = math.ceil((size + 2 * padding - kernel) / stride) + 1
        if (out - 1) * stride >= size + padding:  # a last window may not start in the right padding
            out -= 1
        return out
    return (size + 2 * padding - kernel) // stride + 1


def reference_pool(x, kernel, stride, padding, ceil_mode=False, mode="max", count_include_pad=True):
    """x: (N, C, H, W) NumPy array; kernel, stride, padding: pairs. One window at a time."""
    n_images, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = reference_output_size(height, kh, sh, ph, ceil_mode)
    ow = reference_output_size(width, kw, sw, pw, ceil_mode)
    out = np.empty((n_images, channels, oh, ow))
    for n in range(n_images):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    top, left = i * sh - ph, j * sw - pw
                    cells = [
                        float(x[n, c, r, q])
                        for r in range(top, top + kh)
                        for q in range(left, left + kw)
                        if 0 <= r < height and 0 <= q < width
                    ]
                    if mode == "max":
                        out[n, c, i, j] = max(cells)  # padding is -inf: only real cells compete
                        continue
                    if count_include_pad:
                        rows = min(top + kh, height + ph) - top
                        cols = min(left + kw, width + pw) - left
                    else:
                        rows = min(top + kh, height) - max(top, 0)
                        cols = min(left + kw, width) - max(left, 0)
                    out[n, c, i, j] = sum(cells) / (rows * cols)
    return out


def as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


# (N, C, H, W), kernel_size, stride, padding, ceil_mode
POOL_CASES = [
    ((2, 3, 4, 4), 2, None, 0, False),  # the tutorial's 2x2 / stride 2
    ((1, 1, 5, 5), 2, None, 0, False),  # odd size: the last row and column are dropped
    ((1, 2, 5, 7), (2, 3), None, 0, False),  # non-square kernel, stride defaults to it
    ((2, 1, 7, 7), 3, 2, 0, False),  # AlexNet's overlapping 3x3 / stride 2
    ((1, 2, 7, 6), 3, 2, 1, False),  # overlapping with padding
    ((1, 1, 6, 5), 3, 1, 1, False),  # stride 1, "same" size
    ((1, 1, 6, 9), (3, 2), (2, 1), (1, 0), False),  # everything non-square
    ((1, 1, 5, 5), 2, 2, 0, True),  # ceil_mode keeps a partial last window
    ((1, 2, 5, 5), 2, 2, 1, True),  # ceil_mode window that would start in the padding is dropped
    ((1, 1, 3, 4), 3, 3, 1, True),  # ceil_mode window that overhangs past the padding
    ((2, 1, 6, 7), 3, 2, 1, True),
    ((1, 1, 9, 8), (4, 3), (3, 2), (2, 1), True),
    ((1, 1, 1, 1), 1, None, 0, False),  # a single pixel
]


def case_id(case):
    shape, kernel, stride, padding, ceil_mode = case
    return f"{shape[2]}x{shape[3]}-k{kernel}-s{stride}-p{padding}-{'ceil' if ceil_mode else 'floor'}"


# --- the tutorial's examples (docs/en/tutorial.md §7) --------------------------------------------------------------------------

@pytest.mark.parametrize("window, expected", [([[1, 2], [3, 4]], 4.0), ([[5, 6], [7, 8]], 8.0), ([[20, 5], [3, 15]], 20.0)])
def test_seed_2x2_max_pooling_keeps_the_largest_value(window, expected):
    x = mc.tensor([[window]])
    y = F.max_pool2d(x, 2)
    assert y.shape == (1, 1, 1, 1)
    assert y.item() == expected


def test_seed_2x2_average_pooling_is_the_mean():
    y = F.avg_pool2d(mc.tensor([[[[20.0, 5.0], [3.0, 15.0]]]]), 2)
    assert y.shape == (1, 1, 1, 1)
    assert y.item() == pytest.approx((20 + 5 + 3 + 15) / 4) == pytest.approx(10.75)


GRID = np.arange(1.0, 17.0).reshape(4, 4)  # the tutorial's 4x4 grid 1..16
SEED_WINDOWS = [[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]]


def test_seed_4x4_grid_max_pooled_2x2_stride_2():
    y = F.max_pool2d(mc.tensor(GRID[None, None], dtype="float32"), 2, stride=2)
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[6, 8], [14, 16]])
    np.testing.assert_array_equal(y.numpy()[0, 0].ravel(), [max(w) for w in SEED_WINDOWS])


def test_seed_4x4_grid_average_pooled_2x2_stride_2():
    y = F.avg_pool2d(mc.tensor(GRID[None, None], dtype="float32"), 2, stride=2)
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(y.numpy()[0, 0].ravel(), [sum(w) / 4 for w in SEED_WINDOWS])
    np.testing.assert_allclose(y.numpy()[0, 0], [[3.5, 5.5], [11.5, 13.5]])


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_seed_2x2_stride_2_halves_each_side(pool):
    x = np.random.default_rng(0).standard_normal((1, 2, 256, 256)).astype(np.float32)
    y = pool(mc.tensor(x), 2)
    assert y.shape == (1, 2, 128, 128)
    blocks = x.reshape(1, 2, 128, 2, 128, 2)
    expected = blocks.max(axis=(3, 5)) if pool is F.max_pool2d else blocks.mean(axis=(3, 5))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


# --- forward against the naive reference ----------------------------------------------------------

@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_max_pool2d_matches_naive_reference(case):
    shape, kernel, stride, padding, ceil_mode = case
    x = np.random.default_rng(1).standard_normal(shape)
    y = F.max_pool2d(mc.tensor(x), kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    expected = reference_pool(x, as_pair(kernel), as_pair(stride if stride is not None else kernel), as_pair(padding), ceil_mode, "max")
    assert y.shape == expected.shape
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), expected)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avg_pool2d_matches_naive_reference(case, count_include_pad):
    shape, kernel, stride, padding, ceil_mode = case
    x = np.random.default_rng(2).standard_normal(shape)
    y = F.avg_pool2d(mc.tensor(x), kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                     count_include_pad=count_include_pad)
    expected = reference_pool(x, as_pair(kernel), as_pair(stride if stride is not None else kernel), as_pair(padding),
                              ceil_mode, "avg", count_include_pad)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_pool_keeps_float32():
    x = mc.tensor(np.ones((1, 1, 4, 4), dtype=np.float32))
    assert F.max_pool2d(x, 2).dtype == np.float32
    assert F.avg_pool2d(x, 2, padding=1).dtype == np.float32
    assert F.adaptive_avg_pool2d(x, 3).dtype == np.float32


def test_avg_pool2d_divisor_hand_values():
    """2x2 input of ones, 3x3 window, padding 1, stride 2: one window, 4 real cells of 9 padded
    cells; with count_include_pad=False the divisor is 4."""
    x = mc.tensor(np.ones((1, 1, 2, 2)))
    assert F.avg_pool2d(x, 3, stride=2, padding=1).numpy().ravel().tolist() == pytest.approx([4 / 9])
    assert F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False).numpy().ravel().tolist() == pytest.approx([1.0])


def test_ceil_mode_overhang_is_not_counted_in_the_divisor():
    """Length 3, kernel 3, stride 3, padding 1, ceil_mode: windows cover [-1, 2) and [2, 5); the second
    holds one real cell (index 2), one padding cell (3) and one overhang cell (4): divisor 2, not 3."""
    x = mc.tensor(np.array([[[[1.0, 2.0, 6.0]]]]))
    y = F.avg_pool2d(x, (1, 3), stride=(1, 3), padding=(0, 1), ceil_mode=True)
    np.testing.assert_allclose(y.numpy().ravel(), [(1 + 2) / 3, 6 / 2])
    y = F.avg_pool2d(x, (1, 3), stride=(1, 3), padding=(0, 1), ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y.numpy().ravel(), [(1 + 2) / 2, 6 / 1])


def test_max_pool2d_padding_is_never_chosen():
    x = mc.tensor(-np.arange(1.0, 10.0).reshape(1, 1, 3, 3))  # all negative: zero padding would win
    y = F.max_pool2d(x, 2, stride=2, padding=1)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[-1, -2], [-4, -5]])


# --- gradients ------------------------------------------------------------------------------------

def distinct_values(shape, seed=0):
    """No ties anywhere, values 0.1 apart: finite differences never swap the maximum."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0).astype(np.float64)


GRAD_CASES = [
    ((2, 2, 4, 4), 2, None, 0, False),
    ((1, 1, 7, 7), 3, 2, 0, False),
    ((1, 2, 5, 6), 3, 2, 1, True),
    ((1, 1, 5, 7), (2, 3), (1, 2), (1, 1), False),
    ((1, 1, 5, 5), 2, 2, 1, True),
    ((1, 1, 4, 5), 3, 3, 1, True),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
def test_max_pool2d_gradcheck(case):
    shape, kernel, stride, padding, ceil_mode = case
    gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding, ceil_mode), [distinct_values(shape)])


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
def test_avg_pool2d_gradcheck(case, count_include_pad):
    shape, kernel, stride, padding, ceil_mode = case
    x = np.random.default_rng(3).standard_normal(shape)
    gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad), [x])


def test_max_pool2d_gradient_goes_to_the_maximum_hand_values():
    x = mc.tensor([[[[20.0, 5.0], [3.0, 15.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 0], [0, 0]])


def test_max_pool2d_overlapping_windows_accumulate_gradient():
    """3x3 stride 1 over 4x4: the maximum at (2, 2) sits in all four windows, so it collects 4."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2, 2] = 5.0
    x[0, 0] += np.arange(16).reshape(4, 4) * 1e-3  # break ties elsewhere
    t = mc.tensor(x, requires_grad=True)
    F.max_pool2d(t, 3, stride=1).sum().backward()
    expected = np.zeros((4, 4))
    expected[2, 2] = 4
    np.testing.assert_array_equal(t.grad.numpy()[0, 0], expected)


# --- ties and NaN ---------------------------------------------------------------------------------

def test_max_pool2d_tie_gradient_goes_to_first_element_in_row_major_order():
    x = mc.tensor(np.full((1, 1, 4, 4), 7.0), requires_grad=True)
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 2, 2), 7.0))
    y.sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1  # the top-left cell of each window
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_max_pool2d_partial_tie_goes_to_first_maximum():
    """Maximum 5 at (0, 1) and (1, 0): row-major order reaches (0, 1) first."""
    x = mc.tensor([[[[1.0, 5.0], [5.0, 2.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 1], [0, 0]])


def test_max_pool2d_nan_propagates():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan  # in the top-left window only
    y = F.max_pool2d(mc.tensor(x), 2).numpy()[0, 0]
    assert np.isnan(y[0, 0])
    np.testing.assert_array_equal(y.ravel()[1:], [7, 13, 15])


def test_avg_pool2d_nan_propagates():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 3, 3] = np.nan
    y = F.avg_pool2d(mc.tensor(x), 2).numpy()[0, 0]
    assert np.isnan(y[1, 1])
    assert not np.isnan(y.ravel()[:3]).any()


# --- adaptive average pooling ---------------------------------------------------------------------

def reference_adaptive_avg_pool2d(x, out_h, out_w):
    """Cell (i, j) averages rows floor(i*H/oH) .. ceil((i+1)*H/oH) - 1 and likewise for columns."""
    n_images, channels, height, width = x.shape
    out = np.empty((n_images, channels, out_h, out_w))
    for i in range(out_h):
        r0, r1 = math.floor(i * height / out_h), math.ceil((i + 1) * height / out_h)
        for j in range(out_w):
            c0, c1 = math.floor(j * width / out_w), math.ceil((j + 1) * width / out_w)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


ADAPTIVE_CASES = [
    ((2, 3, 6, 6), (3, 3), (3, 3)),  # divides: plain 2x2 pooling
    ((1, 2, 7, 9), (4, 5), (4, 5)),  # does not divide: overlapping bins
    ((1, 1, 5, 3), (2, 2), (2, 2)),
    ((1, 1, 3, 4), (5, 6), (5, 6)),  # larger than the input: bins repeat cells
    ((1, 2, 6, 5), (None, 2), (6, 2)),  # None keeps that side
    ((1, 1, 7, 5), (3, None), (3, 5)),
    ((2, 2, 5, 7), 3, (3, 3)),  # an int means a square grid
    ((1, 1, 4, 6), None, (4, 6)),  # None alone keeps both sides
    ((2, 3, 5, 7), (1, 1), (1, 1)),  # global pooling
]


@pytest.mark.parametrize("shape, output_size, expected_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_naive_bins(shape, output_size, expected_size):
    x = np.random.default_rng(4).standard_normal(shape)
    y = F.adaptive_avg_pool2d(mc.tensor(x), output_size)
    assert y.shape == shape[:2] + expected_size
    np.testing.assert_allclose(y.numpy(), reference_adaptive_avg_pool2d(x, *expected_size), rtol=1e-12, atol=1e-12)


def test_adaptive_avg_pool2d_hand_bins():
    """Length 5 into 3 bins: [0, 2), [1, 4), [3, 5)."""
    x = mc.tensor(np.array([[[[1.0, 2.0, 3.0, 4.0, 10.0]]]]))
    y = F.adaptive_avg_pool2d(x, (1, 3))
    np.testing.assert_allclose(y.numpy().ravel(), [1.5, 3.0, 7.0])


def test_adaptive_avg_pool2d_global_equals_mean_over_height_and_width():
    x = np.random.default_rng(5).standard_normal((3, 4, 7, 5))
    y = F.adaptive_avg_pool2d(mc.tensor(x), (1, 1))
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)


def test_adaptive_avg_pool2d_divisible_equals_avg_pool2d():
    x = np.random.default_rng(6).standard_normal((2, 2, 8, 6))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(mc.tensor(x), (4, 3)).numpy(),
                               reference_pool(x, (2, 2), (2, 2), (0, 0), mode="avg"), rtol=1e-12)


@pytest.mark.parametrize("shape, output_size", [
    ((1, 2, 6, 6), (3, 3)),
    ((1, 1, 7, 5), (3, 2)),
    ((2, 1, 3, 4), (5, 6)),
    ((1, 2, 5, 4), (None, 3)),
    ((2, 3, 4, 5), (1, 1)),
])
def test_adaptive_avg_pool2d_gradcheck(shape, output_size):
    x = np.random.default_rng(7).standard_normal(shape)
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, output_size), [x])


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool, name", [(F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")])
@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (1, 1, 1, 4, 4)])
def test_pool_rejects_wrong_ndim(pool, name, shape):
    with pytest.raises(ValueError, match=rf"{name}.*\(N, C, H, W\)"):
        pool(mc.tensor(np.zeros(shape)), 2)


@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4)])
def test_adaptive_avg_pool2d_rejects_wrong_ndim(shape):
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d.*\(N, C, H, W\)"):
        F.adaptive_avg_pool2d(mc.tensor(np.zeros(shape)), 1)


@pytest.mark.parametrize("pool, name", [(F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")])
@pytest.mark.parametrize("kernel, padding", [(2, 2), (3, 2), ((3, 2), (1, 2))])
def test_pool_rejects_padding_over_half_the_kernel(pool, name, kernel, padding):
    with pytest.raises(ValueError, match=rf"{name}.*half the kernel"):
        pool(mc.tensor(np.zeros((1, 1, 8, 8))), kernel, padding=padding)


def test_pool_accepts_padding_of_exactly_half_the_kernel():
    x = np.random.default_rng(8).standard_normal((1, 1, 4, 4))
    y = F.max_pool2d(mc.tensor(x), 2, padding=1)
    np.testing.assert_array_equal(y.numpy(), reference_pool(x, (2, 2), (2, 2), (1, 1)))


@pytest.mark.parametrize("pool, name", [(F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")])
@pytest.mark.parametrize("shape, kernel, padding", [((1, 1, 3, 3), 5, 0), ((1, 1, 8, 2), 3, 0), ((1, 1, 2, 2), 5, 1)])
def test_pool_rejects_kernel_larger_than_input(pool, name, shape, kernel, padding):
    with pytest.raises(ValueError, match=rf"{name}.*larger than the input"):
        pool(mc.tensor(np.zeros(shape)), kernel, padding=padding)


@pytest.mark.parametrize("output_size", [0, (0, 2), (2, -1)])
def test_adaptive_avg_pool2d_rejects_non_positive_size(output_size):
    with pytest.raises(ValueError, match="adaptive_avg_pool2d"):
        F.adaptive_avg_pool2d(mc.tensor(np.zeros((1, 1, 4, 4))), output_size)


def test_ceil_mode_keeps_a_window_larger_than_the_input():
    # PyTorch's rule: a 1x1 map pooled 2x2/2 with ceil_mode has one window, holding the one value
    x = mc.tensor(np.array([[[[3.5]]]], dtype=np.float32))
    assert F.max_pool2d(x, 2, 2, ceil_mode=True).numpy().tolist() == [[[[3.5]]]]
    assert F.avg_pool2d(x, 2, 2, ceil_mode=True).numpy().tolist() == [[[[3.5]]]]
    with pytest.raises(ValueError, match="larger than the input"):
        F.max_pool2d(x, 2, 2)
