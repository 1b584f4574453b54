"""Ops that move values without computing new ones, on the GPU against the CPU: reshape, permute,
transpose, flatten, indexing (whose gradient must add up repeated indices), cat and pad."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

REARRANGEMENTS = {
    "reshape": lambda x: x.reshape(6, -1),
    "permute": lambda x: x.permute(2, 0, 3, 1),
    "transpose": lambda x: x.transpose(1, 3),
    "T": lambda x: x.T,
    "flatten": lambda x: F.flatten(x),
    "flatten_middle": lambda x: F.flatten(x, 1, 2),
}


@pytest.mark.parametrize("op", REARRANGEMENTS.values(), ids=REARRANGEMENTS.keys())
def test_rearrangement(op, dtype, rng, same_on_gpu):
    same_on_gpu(op, [rng.standard_normal((2, 3, 5, 7))], dtype, rng)


BASIC_INDICES = {
    "int": 1,
    "negative_int": -1,
    "slice_step": (slice(None), slice(0, 5, 2)),
    "int_and_slice": (1, slice(1, None)),
    "ellipsis_none": (Ellipsis, None, 0),
}


@pytest.mark.parametrize("index", BASIC_INDICES.values(), ids=BASIC_INDICES.keys())
def test_basic_indexing(index, dtype, rng, same_on_gpu):
    same_on_gpu(lambda x: x[index], [rng.standard_normal((3, 5, 7))], dtype, rng)


ARRAY_INDICES = {
    # id: (index arrays, how the test applies them); the arrays travel to the GPU as tensors
    "repeats": ([np.array([0, 2, 0, 0, 1])], lambda x, i: x[i]),
    "axis1_repeats": ([np.array([4, 4, 1, 4])], lambda x, i: x[:, i]),
    "two_arrays_repeats": ([np.array([0, 1, 1, 0]), np.array([2, 2, 0, 2])], lambda x, i, j: x[i, j]),
    "2d_repeats": ([np.array([[0, 0], [2, 0]])], lambda x, i: x[i]),
    "negative": ([np.array([-1, 0, -1])], lambda x, i: x[i]),
    "bool_mask": ([np.array([True, False, True])], lambda x, m: x[m]),
}


@pytest.mark.parametrize("arrays, apply", ARRAY_INDICES.values(), ids=ARRAY_INDICES.keys())
def test_array_indexing(arrays, apply, dtype, rng, same_on_gpu):
    same_on_gpu(apply, [rng.standard_normal((3, 5, 7)), *arrays], dtype, rng, "sum")


@pytest.mark.parametrize(
    "shapes, dim",
    [([(2, 3, 5), (2, 1, 5), (2, 7, 5)], 1), ([(2, 3), (5, 3)], 0), ([(2, 3, 1), (2, 3, 4)], -1)],
    ids=["dim1_three", "dim0", "last"],
)
def test_cat(shapes, dim, dtype, rng, same_on_gpu):
    same_on_gpu(lambda *a: F.cat(a, dim), [rng.standard_normal(s) for s in shapes], dtype, rng)


@pytest.mark.parametrize(
    "shape, widths, value",
    [((3, 5), (1, 2), 0.0), ((2, 3, 5, 7), (1, 2, 3, 0), 0.0), ((2, 3, 4, 5), (0, 1, 2, 1, 1, 0), -1.5)],
    ids=["last_axis", "width_then_height", "three_axes_value"],
)
def test_pad(shape, widths, value, dtype, rng, same_on_gpu):
    same_on_gpu(lambda x: F.pad(x, widths, value), [rng.standard_normal(shape)], dtype, rng)
