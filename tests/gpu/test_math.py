"""Elementwise arithmetic with broadcasting, matrix products, the linear layer and the reductions
(sum, mean, max over any axes) on the GPU against the CPU, forward and backward."""

from __future__ import annotations

import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}
BROADCAST_SHAPES = {
    "same": ((5, 7), (5, 7)),
    "row": ((5, 7), (7,)),
    "3d_and_column": ((2, 5, 7), (5, 1)),
    "left_smaller": ((1, 7), (3, 5, 7)),
}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES.values(), ids=BROADCAST_SHAPES.keys())
@pytest.mark.parametrize("op", BINARY_OPS.values(), ids=BINARY_OPS.keys())
def test_binary_operator_broadcasting(op, shapes, dtype, rng, same_on_gpu):
    """Left operands in [0.5, 2) (bases of a power with a tensor exponent); right ones kept away from
    zero, so division stays well conditioned."""
    a_shape, b_shape = shapes
    b = rng.uniform(0.5, 2.0, b_shape) * rng.choice([-1.0, 1.0], b_shape)
    same_on_gpu(op, [rng.uniform(0.5, 2.0, a_shape), b], dtype, rng, "sum")


UNARY_OPS = {
    "add_scalar": lambda a: a + 2.0,
    "rsub": lambda a: 3 - a,
    "rmul": lambda a: 0.5 * a,
    "rdiv": lambda a: 2.0 / a,
    "square": lambda a: a**2,
    "sqrt": lambda a: a**0.5,
    "rpow": lambda a: 2.0**a,
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
}


@pytest.mark.parametrize("op", UNARY_OPS.values(), ids=UNARY_OPS.keys())
def test_unary_and_scalar_operators(op, dtype, rng, same_on_gpu):
    same_on_gpu(op, [rng.uniform(0.5, 2.0, (3, 5, 7))], dtype, rng)


MATMUL_SHAPES = {
    "matrix": ((5, 33), (33, 7)),
    "vector_matrix": ((33,), (33, 7)),
    "matrix_vector": ((5, 33), (33,)),
    "batch_batch": ((2, 5, 33), (2, 33, 7)),
    "broadcast_batch": ((2, 1, 5, 13), (3, 13, 7)),
}


@pytest.mark.parametrize("shapes", MATMUL_SHAPES.values(), ids=MATMUL_SHAPES.keys())
def test_matmul(shapes, dtype, rng, same_on_gpu):
    same_on_gpu(lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes], dtype, rng, "sum")


@pytest.mark.parametrize(
    "x_shape, w_shape, with_bias",
    [((5, 33), (7, 33), True), ((2, 3, 33), (7, 33), False), ((1, 400), (120, 400), True)],
    ids=["2d_bias", "3d_no_bias", "lenet_fc_batch1"],
)
def test_linear(x_shape, w_shape, with_bias, dtype, rng, same_on_gpu):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if with_bias:
        inputs.append(rng.standard_normal(w_shape[0]))
    same_on_gpu(F.linear, inputs, dtype, rng, "sum")


@pytest.mark.parametrize(
    "dim, keepdim", [(None, False), (0, False), (-1, False), ((1, 2), True), ((0, 3), False)],
    ids=["all", "dim0", "last", "dims12_keepdim", "dims03"],
)
@pytest.mark.parametrize("reduction", [F.sum, F.mean, F.max], ids=["sum", "mean", "max"])
def test_reduction(reduction, dim, keepdim, dtype, rng, distinct_values, same_on_gpu):
    """Distinct values, so max has one maximum per slice for its gradient to go to."""
    same_on_gpu(lambda x: reduction(x, dim, keepdim), [distinct_values((3, 5, 7, 4))], dtype, rng, "sum")


def test_chained_expression(dtype, rng, same_on_gpu):
    """Several ops sharing inputs, so gradients from different paths add up on the GPU as well."""

    def fn(x, w, b):
        h = F.tanh(x @ w + b)
        return (h * x[:, :3]).sum(-1) / (1.0 + (x**2).mean(-1)) - 0.5 * h.max(-1)

    inputs = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)]
    same_on_gpu(fn, inputs, dtype, rng, "sum")
