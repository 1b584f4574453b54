"""Arithmetic, matrix products and reductions: values against NumPy, gradients against finite differences."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.functional.math import cast, unbroadcast
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


REDUCTIONS = [("sum", np.sum), ("mean", np.mean), ("max", np.max), ("min", np.min)]


@pytest.mark.parametrize("name, reference", REDUCTIONS, ids=[name for name, _ in REDUCTIONS])
@pytest.mark.parametrize("dim", [None, 0, -1, 2, (0, 2), (-1, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("spelling", ["torch", "numpy", "function"])
def test_reductions_take_dim_or_axis_and_keepdim_or_keepdims(name, reference, dim, keepdim, spelling):
    x = rng.permutation(24).reshape(2, 3, 4) / 7.0  # distinct values: max and min have a gradient
    if spelling == "torch":
        reduce = lambda t: getattr(t, name)(dim=dim, keepdim=keepdim)  # noqa: E731
    elif spelling == "numpy":
        reduce = lambda t: getattr(t, name)(axis=dim, keepdims=keepdim)  # noqa: E731
    else:
        reduce = lambda t: getattr(F, name)(t, dim, keepdim)  # noqa: E731
    np.testing.assert_allclose(reduce(mc.tensor(x)).numpy(), reference(x, axis=dim, keepdims=keepdim))
    gradcheck(reduce, [x])


def test_mean_over_axis_as_numpy_users_write_it():
    x = mc.tensor([[1.0, 2.0], [3.0, 5.0]])
    assert x.mean(axis=1).numpy().tolist() == [1.5, 4.0]
    assert x.sum(axis=0, keepdims=True).numpy().tolist() == [[4.0, 7.0]]


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "argmax", "argmin"])
def test_both_names_of_one_argument_are_refused(name):
    x = mc.tensor(rand(2, 3))
    with pytest.raises(TypeError, match=rf"{name}: got dim=1 and axis=0, two names for one argument"):
        getattr(x, name)(dim=1, axis=0)
    with pytest.raises(TypeError, match=rf"{name}: got keepdim=True and keepdims=False"):
        getattr(x, name)(1, keepdim=True, keepdims=False)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "argmax", "argmin"])
def test_a_dim_out_of_range_is_an_index_error_naming_the_shape(name):
    with pytest.raises(IndexError, match=r"dim 3 is out of range for a tensor of shape \(2, 3, 4\): use -3..2"):
        getattr(mc.tensor(rand(2, 3, 4)), name)(3)


def test_a_dim_named_twice_or_not_a_whole_number_is_refused():
    x = mc.tensor(rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"Sum: dim \(1, -2\) names one dimension twice"):
        x.sum((1, -2))
    with pytest.raises(TypeError, match="dim must be an int or a tuple of ints, got 1.5"):
        x.mean(1.5)
    with pytest.raises(TypeError, match="argmax: dim must be one int or None"):
        x.argmax((0, 1))


def test_a_0d_tensor_reduces_over_dim_0_or_minus_1_as_in_pytorch():
    x = mc.tensor(2.5, requires_grad=True)
    assert x.sum(0).item() == x.max(-1, keepdim=True).item() == x.min(0).item() == 2.5
    assert x.argmax(0).item() == 0
    x.mean(-1).backward()
    assert x.grad.item() == 1.0


def test_min_gradient_goes_to_the_first_minimum():
    x = mc.tensor([[1.0, 0.0, 0.0], [2.0, 2.0, 5.0]], requires_grad=True)
    x.min(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("name", ["max", "min"])
def test_tied_gradient_along_a_dim_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    values = np.array([[3.0, 3.0, 1.0, 3.0], [1.0, 0.0, 1.0, 0.0]])
    ours = mc.tensor(values, requires_grad=True)
    getattr(ours, name)(dim=1).sum().backward()
    theirs = torch.tensor(values, requires_grad=True)
    getattr(theirs, name)(dim=1).values.sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_tied_gradient_over_the_whole_tensor_goes_to_one_element_unlike_pytorch():
    """The difference Max's docstring states: PyTorch's max() splits a tie evenly."""
    torch = pytest.importorskip("torch")
    values = np.array([2.0, 1.0, 2.0])
    ours, theirs = mc.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    ours.max().backward()
    theirs.max().backward()
    assert ours.grad.numpy().tolist() == [1.0, 0.0, 0.0] and theirs.grad.tolist() == [0.5, 0.0, 0.5]


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_and_argmin_match_numpy_with_either_spelling(name, dim, keepdim):
    x = rng.integers(0, 3, (4, 5)).astype(np.float32)  # many ties: the first position wins
    expected = getattr(np, name)(x, axis=dim, keepdims=keepdim) if dim is not None else getattr(np, name)(x)
    for result in (getattr(mc.tensor(x), name)(dim=dim, keepdim=keepdim),
                   getattr(mc.tensor(x), name)(axis=dim, keepdims=keepdim),
                   getattr(F, name)(mc.tensor(x), dim, keepdim)):
        assert result.dtype == np.int64 and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)


def test_argmax_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = rng.integers(0, 3, (4, 5)).astype(np.float32)
    for dim, keepdim in [(0, False), (1, True), (-1, False)]:
        expected = torch.argmax(torch.tensor(x), dim=dim, keepdim=keepdim)
        np.testing.assert_array_equal(mc.tensor(x).argmax(dim, keepdim).numpy(), expected.numpy())
    assert mc.tensor(x).argmax().item() == torch.argmax(torch.tensor(x)).item()


def test_cast_between_floating_dtypes_sends_the_gradient_back_in_the_input_dtype():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = cast(x, np.float64)
    assert y.dtype == np.float64 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.numpy().tolist() == [2.0, 4.0]
    assert cast(x, np.float32) is x


def test_cast_to_an_integer_dtype_leaves_the_graph():
    y = cast(mc.tensor([1.7, -2.2], requires_grad=True), np.int64)
    assert y.dtype == np.int64 and not y.requires_grad and y.numpy().tolist() == [1, -2]


def test_mean_of_float32_stays_float32():
    assert mc.tensor([1.0, 2.0]).mean().dtype == np.float32


def test_unbroadcast_sums_expanded_axes():
    g = np.ones((2, 3, 4))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(unbroadcast(g, ()), np.array(24.0))
    assert unbroadcast(g, (2, 3, 4)) is g
