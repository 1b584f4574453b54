"""Arithmetic, matrix products and reductions: values against NumPy, gradients against finite differences."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.functional.math import unbroadcast
from minicnn.testing import gradcheck

rng = np.random.default_rng(0)


def rand(*shape):
    return rng.standard_normal(shape)


BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 2))]


@pytest.mark.parametrize("a_shape, b_shape", BROADCAST_PAIRS)
@pytest.mark.parametrize(
    "op, reference",
    [(F.add, np.add), (F.sub, np.subtract), (F.mul, np.multiply), (F.div, np.divide)],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_ops_broadcast_like_numpy(op, reference, a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape) + 3.0
    np.testing.assert_allclose(op(mc.tensor(a), mc.tensor(b)).numpy(), reference(a, b))
    gradcheck(op, [a, b])


def test_operators_match_functions():
    a, b = rand(2, 3), rand(2, 3) + 3.0
    ta, tb = mc.tensor(a), mc.tensor(b)
    for result, expected in [
        (ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (ta / tb, a / b), (-ta, -a),
        (2.0 + ta, 2 + a), (2.0 - ta, 2 - a), (2.0 * ta, 2 * a), (2.0 / tb, 2 / b), (tb**2, b**2),
    ]:
        np.testing.assert_allclose(result.numpy(), expected)


def test_pow_gradients_in_base_and_exponent():
    base, exponent = np.abs(rand(3, 2)) + 0.5, rand(3, 2)
    gradcheck(F.pow, [base, exponent])
    gradcheck(lambda x: x**3, [rand(4)])
    gradcheck(lambda x: 2.0**x, [rand(4)])


def test_exp_and_log():
    x = rand(5)
    np.testing.assert_allclose(F.exp(mc.tensor(x)).numpy(), np.exp(x))
    np.testing.assert_allclose(F.log(mc.tensor(np.abs(x) + 1)).numpy(), np.log(np.abs(x) + 1))
    gradcheck(F.exp, [x])
    gradcheck(F.log, [np.abs(x) + 0.5])


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))],
)
def test_matmul_shapes_values_and_gradients(a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape)
    np.testing.assert_allclose((mc.tensor(a) @ mc.tensor(b)).numpy(), a @ b)
    gradcheck(F.matmul, [a, b])


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_is_x_times_w_transposed_plus_b(x_shape, with_bias):
    x, w, b = rand(*x_shape), rand(3, 4), rand(3)
    out = F.linear(mc.tensor(x), mc.tensor(w), mc.tensor(b) if with_bias else None)
    np.testing.assert_allclose(out.numpy(), x @ w.T + (b if with_bias else 0))
    if with_bias:
        gradcheck(F.linear, [x, w, b])
    else:
        gradcheck(F.linear, [x, w])


def test_linear_feature_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"5 features .* expects 4"):
        F.linear(mc.tensor(rand(2, 5)), mc.tensor(rand(3, 4)))


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_and_mean(dim, keepdim):
    x = rand(2, 3, 4)
    np.testing.assert_allclose(mc.tensor(x).sum(dim, keepdim).numpy(), x.sum(axis=dim, keepdims=keepdim))
    np.testing.assert_allclose(mc.tensor(x).mean(dim, keepdim).numpy(), x.mean(axis=dim, keepdims=keepdim))
    gradcheck(lambda t: t.sum(dim, keepdim), [x])
    gradcheck(lambda t: t.mean(dim, keepdim), [x])


@pytest.mark.parametrize("dim", [None, 0, 2, (1, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_values_and_gradient(dim, keepdim):
    x = rng.permutation(24).reshape(2, 3, 4) / 7.0  # distinct values: finite differences are valid
    np.testing.assert_allclose(mc.tensor(x).max(dim, keepdim).numpy(), x.max(axis=dim, keepdims=keepdim))
    gradcheck(lambda t: t.max(dim, keepdim), [x])


def test_max_gradient_goes_to_the_first_maximum():
    x = mc.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    x.max(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_mean_of_float32_stays_float32():
    assert mc.tensor([1.0, 2.0]).mean().dtype == np.float32


def test_unbroadcast_sums_expanded_axes():
    g = np.ones((2, 3, 4))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(unbroadcast(g, ()), np.array(24.0))
    assert unbroadcast(g, (2, 3, 4)) is g
