"""minicnn.kernels.reference's own building blocks against hand-computed layouts. (Every kernel of the
interface is compared across backends in test_backends.py; the window views it is built from are
tested in test_sliding.py.)"""

import numpy as np
import pytest

from minicnn.kernels import reference

rng = np.random.default_rng(0)


@pytest.mark.parametrize("n", [1, 3])
def test_conv_epilogue_lays_out_adds_bias_and_leaves_its_input_alone(n):
    """(C_out, N*oH*oW) -> (N, C_out, oH, oW); with one image the layout already matches, which
    must still give a new array rather than add the bias into the caller's product."""
    cm = rng.standard_normal((4, n * 6))
    before = cm.copy()
    bias = rng.standard_normal(4)
    y = reference.ReferenceBackend().conv_epilogue(cm, (n, 4, 2, 3), bias, "relu")
    expected = np.maximum(cm.reshape(4, n, 2, 3).transpose(1, 0, 2, 3) + bias[None, :, None, None], 0)
    np.testing.assert_array_equal(y, expected)
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(cm, before)
