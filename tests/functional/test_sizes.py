"""minicnn.functional.sizes: output-size arithmetic against hand-counted windows."""

import numpy as np
import pytest

from minicnn.functional.sizes import conv_output_size, pair, pool_output_size


# (size, kernel, stride, pad_total, dilation, expected), each counted by hand:
# the window starts are 0, s, 2s, ... while start + dilation*(kernel-1) <= size + pad_total - 1.
@pytest.mark.parametrize(
    "size,kernel,stride,pad_total,dilation,expected",
    [
        (5, 3, 1, 0, 1, 3),  # starts 0, 1, 2
        (5, 3, 1, 2, 1, 5),  # 'same' for a 3-kernel
        (5, 3, 1, 4, 1, 7),  # 'full': M + K - 1
        (32, 5, 1, 0, 1, 28),  # the tutorial's 32x32 image under a 5x5 filter
        (7, 3, 2, 0, 1, 3),  # starts 0, 2, 4
        (8, 3, 2, 0, 1, 3),  # starts 0, 2, 4 (6 would end at 8, outside)
        (7, 3, 2, 2, 1, 4),  # padded length 9: starts 0, 2, 4, 6
        (10, 3, 1, 0, 2, 6),  # dilated span 5: starts 0..5
        (10, 3, 3, 1, 2, 3),  # padded 11, span 5: starts 0, 3, 6 (ends at 10); 9 would end at 13
        (4, 4, 1, 0, 1, 1),  # kernel exactly the input
        (4, 2, 5, 0, 1, 1),  # stride longer than the input
        (6, 4, 1, 3, 1, 6),  # 'same' for an even kernel: 3 pads in total
        (3, 5, 1, 0, 1, -1),  # does not fit: callers must check for < 1
    ],
)
def test_conv_output_size(size, kernel, stride, pad_total, dilation, expected):
    assert conv_output_size(size, kernel, stride, pad_total, dilation) == expected


# (size, kernel, stride, padding, ceil_mode, expected)
@pytest.mark.parametrize(
    "size,kernel,stride,padding,ceil_mode,expected",
    [
        (4, 2, 2, 0, False, 2),  # the tutorial's 4x4 -> 2x2
        (4, 2, 2, 0, True, 2),  # exact fit: ceil adds nothing
        (256, 2, 2, 0, False, 128),  # the tutorial's 256 -> 128
        (28, 2, 2, 0, False, 14),  # LeNet S2
        (5, 2, 2, 0, False, 2),  # starts 0, 2; index 4 is left out
        (5, 2, 2, 0, True, 3),  # ceil keeps the partial window starting at 4 (inside the input)
        (6, 3, 2, 1, False, 3),  # padded -1..6: starts -1, 1, 3
        (6, 3, 2, 1, True, 4),  # plus the partial window starting at 5 (inside the input)
        (7, 3, 2, 1, True, 4),  # starts -1, 1, 3, 5 all fit: same as floor
        (7, 3, 2, 1, False, 4),
        # starts -1, 1, 3 fit; ceil would add a 4th starting at 5, which is the right padding
        # (input 0..4, padding at 5): such a window is dropped.
        (5, 2, 2, 1, True, 3),
        (5, 2, 2, 1, False, 3),
        # input 0..3, padding -1 and 4: starts -1, 2; a third would start at 5, past everything.
        (4, 2, 3, 1, True, 2),
        # input 0..5, padding -2, -1 and 6, 7: starts -2, 1, 4 fit; the 4th would start at 7 (right padding).
        (6, 3, 3, 2, True, 3),
        # input 0..9, padding -2, -1 and 10, 11: starts -2, 1, 4, 7 fit; ceil's extra window would
        # start at 10, in the right padding, so it is dropped too.
        (10, 4, 3, 2, True, 4),
    ],
)
def test_pool_output_size(size, kernel, stride, padding, ceil_mode, expected):
    assert pool_output_size(size, kernel, stride, padding, ceil_mode) == expected


def test_ceil_mode_keeps_a_window_that_starts_in_the_left_padding():
    # input 0, padding -1 and 1, kernel 2, stride 2: the window at -1 covers (-1, 0) and is kept;
    # the one at 1 starts in the right padding and is dropped.
    assert pool_output_size(1, 2, 2, 1, True) == 1
    assert pool_output_size(1, 2, 2, 1, False) == 1


@pytest.mark.parametrize("value,expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([4, 1], (4, 1)), (0, (0, 0))])
def test_pair_accepts_an_int_or_two(value, expected):
    result = pair(value)
    assert result == expected
    assert isinstance(result, tuple)


@pytest.mark.parametrize("value", [np.int64(3), (np.int32(2), np.int64(5))])
def test_pair_accepts_numpy_integers(value):
    # Sizes often come out of NumPy arithmetic; PyTorch accepts them as well.
    assert pair(value) == ((3, 3) if np.ndim(value) == 0 else (2, 5))


@pytest.mark.parametrize("value", [1.5, (1, 2, 3), (1,), [], "3", (1, 2.0), None, ((1, 2), 3)])
def test_pair_rejects_anything_else_naming_the_argument(value):
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints, got"):
        pair(value, "kernel_size")


def test_pair_error_shows_the_value():
    with pytest.raises(ValueError, match=r"got \(1, 2, 3\)"):
        pair((1, 2, 3))
