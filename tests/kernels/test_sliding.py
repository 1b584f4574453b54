"""minicnn.kernels.sliding: the window view, its adjoint fold_windows and padding, against plain loops."""

import numpy as np
import pytest

from minicnn.kernels import sliding

rng = np.random.default_rng(0)


def naive_windows(x, kernel, stride, dilation, out_size):
    """Every window copied out one element at a time."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    n, c = x.shape[:2]
    out = np.zeros((n, c, oh, ow, kh, kw), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    for a in range(kh):
                        for e in range(kw):
                            out[b, ch, i, j, a, e] = x[b, ch, i * sh + a * dh, j * sw + e * dw]
    return out


def fitting_windows(size, k, s, d):
    return (size - d * (k - 1) - 1) // s + 1


# (shape, kernel, stride, dilation)
WINDOW_CASES = [
    ((2, 3, 6, 6), (3, 3), (1, 1), (1, 1)),
    ((2, 2, 7, 8), (2, 2), (2, 2), (1, 1)),
    ((1, 1, 9, 7), (3, 2), (2, 1), (1, 1)),
    ((1, 2, 9, 10), (2, 3), (1, 3), (2, 1)),
    ((2, 1, 11, 9), (3, 3), (3, 2), (2, 3)),
    ((1, 3, 5, 8), (1, 4), (1, 1), (1, 2)),
    ((3, 2, 4, 4), (4, 4), (1, 1), (1, 1)),
    ((1, 1, 8, 8), (2, 2), (4, 5), (1, 1)),
]


@pytest.mark.parametrize("shape,kernel,stride,dilation", WINDOW_CASES)
def test_windows_matches_naive_extraction(shape, kernel, stride, dilation):
    x = rng.standard_normal(shape)
    out_size = tuple(fitting_windows(shape[2 + i], kernel[i], stride[i], dilation[i]) for i in range(2))
    view = sliding.windows(x, kernel, stride, dilation, out_size)
    assert view.shape == shape[:2] + out_size + kernel
    np.testing.assert_array_equal(view, naive_windows(x, kernel, stride, dilation, out_size))


def test_windows_of_a_non_contiguous_input():
    x = rng.standard_normal((3, 2, 12, 10))[::2, :, 1::2, ::-1]
    view = sliding.windows(x, (2, 3), (1, 2), (2, 1), (4, 4))
    np.testing.assert_array_equal(view, naive_windows(x, (2, 3), (1, 2), (2, 1), (4, 4)))


@pytest.mark.parametrize("shape,kernel,stride,dilation", WINDOW_CASES[:4])
def test_windows_is_a_read_only_view_sharing_memory(shape, kernel, stride, dilation):
    x = rng.standard_normal(shape)
    out_size = tuple(fitting_windows(shape[2 + i], kernel[i], stride[i], dilation[i]) for i in range(2))
    view = sliding.windows(x, kernel, stride, dilation, out_size)
    assert np.shares_memory(view, x)
    assert not view.flags.writeable
    x[0, 0, 0, 0] = 1234.5
    assert view[0, 0, 0, 0, 0, 0] == 1234.5


@pytest.mark.parametrize("out_size", [(4, 3), (3, 4), (5, 5)])
def test_windows_refuses_windows_that_do_not_fit(out_size):
    x = np.zeros((1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"do not fit in \(5, 5\)"):
        sliding.windows(x, (3, 3), (1, 1), (1, 1), out_size)


@pytest.mark.parametrize("shape,kernel,stride,dilation", WINDOW_CASES)
def test_fold_windows_is_the_adjoint_of_windows(shape, kernel, stride, dilation):
    x = rng.standard_normal(shape)
    out_size = tuple(fitting_windows(shape[2 + i], kernel[i], stride[i], dilation[i]) for i in range(2))
    c = rng.standard_normal(shape[:2] + out_size + kernel)
    back = sliding.fold_windows(c.transpose(4, 5, 0, 1, 2, 3), shape, stride, dilation)  # kernel axes first
    assert back.shape == shape
    lhs = np.sum(sliding.windows(x, kernel, stride, dilation, out_size) * c)
    rhs = np.sum(x * back)
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_fold_windows_counts_how_many_windows_cover_each_position():
    # cols: (kH, kW, N, C, oH, oW). 1x4 input, 1x2 windows at stride 1: the inner positions sit
    # in two windows, the ends in one.
    ones = np.ones((1, 2, 1, 1, 1, 3))
    np.testing.assert_array_equal(sliding.fold_windows(ones, (1, 1, 1, 4), (1, 1), (1, 1)), [[[[1, 2, 2, 1]]]])
    # 1x7 input, 1x2 windows at stride 3: positions 2, 5 and 6 are never read, so they get nothing.
    np.testing.assert_array_equal(
        sliding.fold_windows(np.ones((1, 2, 1, 1, 1, 2)), (1, 1, 1, 7), (1, 3), (1, 1)), [[[[1, 1, 0, 1, 1, 0, 0]]]]
    )
    # dilation 2: window (0, 2), then (1, 3) -> every position of 1x4 once.
    np.testing.assert_array_equal(
        sliding.fold_windows(np.ones((1, 2, 1, 1, 1, 2)), (1, 1, 1, 4), (1, 1), (1, 2)), [[[[1, 1, 1, 1]]]]
    )


def test_fold_windows_places_each_kernel_offset():
    # one 2x2 window at the origin of a 3x3 input, kernel values 1..4: they land where they were read
    cols = np.arange(1.0, 5.0).reshape(2, 2, 1, 1, 1, 1)
    np.testing.assert_array_equal(sliding.fold_windows(cols, (1, 1, 3, 3), (1, 1), (1, 1))[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    # the same window dilated by 2 spreads to the corners
    np.testing.assert_array_equal(sliding.fold_windows(cols, (1, 1, 3, 3), (1, 1), (2, 2))[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


@pytest.mark.parametrize("pads", [(1, 2, 0, 3), (0, 0, 2, 1), (3, 0, 0, 0), (0, 1, 1, 0), (2, 2, 2, 2)])
def test_pad2d_unpad2d_round_trip(pads):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    top, bottom, left, right = pads
    padded = sliding.pad2d(x, pads, value=-7.0)
    assert padded.shape == (2, 3, 4 + top + bottom, 5 + left + right)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, :, top : top + 4, left : left + 5], x)
    border = np.ones(padded.shape, dtype=bool)
    border[:, :, top : top + 4, left : left + 5] = False
    assert np.all(padded[border] == -7.0)
    assert border.sum() == padded.size - x.size
    np.testing.assert_array_equal(sliding.unpad2d(padded, pads), x)


def test_pad2d_defaults_to_zeros():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    expected = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 2, 3, 0]], dtype=float)
    np.testing.assert_array_equal(sliding.pad2d(x, (2, 0, 1, 1))[0, 0], expected)


def test_pad2d_without_padding_returns_the_input_and_unpad2d_is_a_view():
    x = rng.standard_normal((1, 2, 3, 3))
    assert sliding.pad2d(x, (0, 0, 0, 0)) is x
    np.testing.assert_array_equal(sliding.unpad2d(x, (0, 0, 0, 0)), x)
    padded = sliding.pad2d(x, (1, 0, 2, 1))
    assert np.shares_memory(sliding.unpad2d(padded, (1, 0, 2, 1)), padded)
