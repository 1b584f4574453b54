"""minicnn's functional ops against PyTorch, forward values and gradients.

PyTorch is an independent reference here, not a dependency: without it this whole file is skipped.
Each case builds random inputs from a fresh seeded generator, runs the same computation in both
frameworks, and compares the output and the gradient of L = Σ u * output (u random) with respect to
every floating-point input. Every case runs in float32 and float64.
"""

from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import minicnn as mc  # noqa: E402
import minicnn.functional as F  # noqa: E402

TOLERANCES = {
    np.float32: {"default": dict(rtol=1e-4, atol=1e-5), "conv": dict(rtol=2e-4, atol=1e-4)},
    np.float64: {"default": dict(rtol=1e-10, atol=1e-10), "conv": dict(rtol=1e-10, atol=1e-10)},
}


def check(mc_fn, torch_fn, inputs, dtype, rng, tol="default"):
    """Run mc_fn and torch_fn on the same inputs; compare outputs and every floating input's gradient.

    inputs: NumPy arrays (floating ones are cast to `dtype` and differentiated; integer ones are
    passed as they are) or other values, given unchanged to both functions.
    """
    tolerance = TOLERANCES[dtype][tol]
    inputs = [a.astype(dtype) if _is_float(a) else a for a in inputs]
    mc_args = [mc.tensor(a, requires_grad=True) if _is_float(a) else a for a in inputs]
    torch_args = [
        torch.tensor(a, requires_grad=_is_float(a)) if isinstance(a, np.ndarray) else a for a in inputs
    ]
    out, expected = mc_fn(*mc_args), torch_fn(*torch_args)

    assert out.shape == tuple(expected.shape), f"output shape {out.shape}, torch {tuple(expected.shape)}"
    assert out.dtype == dtype, f"output dtype {out.dtype}, inputs {np.dtype(dtype)}"
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **tolerance, err_msg="forward")

    weights = rng.standard_normal(out.shape).astype(dtype)
    out.backward(weights)
    expected.backward(torch.from_numpy(weights))
    for i, (mine, theirs) in enumerate(zip(mc_args, torch_args)):
        if not _is_float(inputs[i]):
            continue
        reference = np.zeros(inputs[i].shape, dtype) if theirs.grad is None else theirs.grad.numpy()
        got = np.zeros(inputs[i].shape, dtype) if mine.grad is None else mine.grad.numpy()
        assert got.dtype == dtype, f"gradient of input {i} has dtype {got.dtype}"
        np.testing.assert_allclose(got, reference, **tolerance, err_msg=f"gradient of input {i}")


def _is_float(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def distinct(rng, *shape):
    """Values with no ties (a shuffled grid of multiples of 1/8, exact in float32), so every max is unique."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) / 8).reshape(shape)


# ---------------------------------------------------------------- convolution

CONV_CASES = {
    # id: (x shape, weight shape, bias?, keyword arguments for both frameworks)
    "basic": ((2, 3, 8, 8), (4, 3, 3, 3), True, {}),
    "no_bias": ((2, 3, 8, 8), (4, 3, 3, 3), False, {}),
    "batch1": ((1, 2, 6, 7), (3, 2, 3, 3), True, {}),
    "stride2": ((2, 3, 9, 9), (4, 3, 3, 3), True, dict(stride=2)),
    "stride2_pad1": ((2, 3, 8, 8), (4, 3, 3, 3), True, dict(stride=2, padding=1)),
    "stride_pair_pad_pair": ((2, 2, 9, 8), (3, 2, 3, 3), True, dict(stride=(2, 1), padding=(1, 2))),
    "stride3_k2_skips_pixels": ((2, 2, 8, 8), (3, 2, 2, 2), True, dict(stride=3)),
    "pad_valid": ((2, 3, 7, 6), (4, 3, 3, 2), True, dict(padding="valid")),
    "pad_same_odd": ((2, 3, 7, 6), (4, 3, 3, 5), True, dict(padding="same")),
    "pad_same_even_kernel": ((2, 2, 7, 6), (3, 2, 2, 4), True, dict(padding="same")),
    "pad_same_dilated": ((2, 2, 9, 9), (3, 2, 3, 2), True, dict(padding="same", dilation=(2, 3))),
    "dilation2": ((2, 2, 10, 9), (3, 2, 3, 3), True, dict(dilation=2)),
    "dilation_pair_pad_stride": ((2, 2, 11, 10), (3, 2, 3, 2), True, dict(dilation=(2, 1), padding=1, stride=2)),
    "non_square_kernel": ((2, 3, 8, 9), (4, 3, 2, 5), True, dict(padding=(1, 2))),
    "kernel_1x1": ((2, 5, 4, 4), (3, 5, 1, 1), True, {}),
    "kernel_covers_input": ((2, 2, 3, 4), (3, 2, 3, 4), True, {}),
    "groups2": ((2, 4, 7, 7), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    "groups3_stride2": ((2, 6, 8, 8), (3, 2, 3, 3), False, dict(groups=3, stride=2)),
    "depthwise": ((2, 4, 7, 7), (4, 1, 3, 3), True, dict(groups=4, padding=1)),
    "depthwise_multiplier2": ((2, 3, 7, 6), (6, 1, 3, 3), True, dict(groups=3, stride=2, dilation=2)),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("x_shape, w_shape, with_bias, kwargs", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d(x_shape, w_shape, with_bias, kwargs, dtype, rng):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if with_bias:
        inputs.append(rng.standard_normal(w_shape[0]))
    check(lambda *a: F.conv2d(*a, **kwargs), lambda *a: TF.conv2d(*a, **kwargs), inputs, dtype, rng, "conv")


@pytest.mark.parametrize(
    "w_shape, dilation", [((4, 3, 3, 3), 1), ((4, 3, 2, 4), 1), ((2, 3, 3, 2), (2, 3))],
    ids=["k3", "k2x4", "k3x2_dilated"],
)
def test_conv2d_full_padding(w_shape, dilation, dtype, rng):
    """padding='full' is minicnn's own: dilation*(k-1) zeros on every side, which torch gets explicitly."""
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    explicit = (d[0] * (w_shape[2] - 1), d[1] * (w_shape[3] - 1))
    inputs = [rng.standard_normal((2, 3, 6, 5)), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    check(
        lambda *a: F.conv2d(*a, padding="full", dilation=dilation),
        lambda *a: TF.conv2d(*a, padding=explicit, dilation=dilation),
        inputs, dtype, rng, "conv",
    )


# ---------------------------------------------------------------- pooling

POOL_CASES = {
    # id: (input shape, kernel_size, stride, padding, ceil_mode)
    "k2": ((2, 3, 8, 8), 2, None, 0, False),
    "k2_odd_input": ((2, 3, 7, 9), 2, None, 0, False),
    "k3_s2": ((2, 2, 9, 9), 3, 2, 0, False),
    "k3_s2_p1": ((2, 2, 8, 8), 3, 2, 1, False),
    "k3_s1_p1": ((1, 2, 5, 6), 3, 1, 1, False),
    "k2x3_s1x2": ((2, 2, 7, 8), (2, 3), (1, 2), 0, False),
    "k3x2_p1x0": ((2, 2, 7, 6), (3, 2), (2, 2), (1, 0), False),
    "k3_s2_ceil": ((2, 2, 8, 8), 3, 2, 0, True),
    "k3_s2_p1_ceil": ((2, 2, 8, 8), 3, 2, 1, True),
    "k2_ceil_odd_input": ((2, 2, 7, 5), 2, None, 0, True),
    "k3_s3_p1_ceil_drops_last": ((2, 2, 5, 5), 3, 3, 1, True),
    "k2_s3_gaps": ((2, 2, 8, 7), 2, 3, 0, False),
    "k2_s3_gaps_ceil": ((2, 2, 8, 7), 2, 3, 1, True),
}


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d(shape, kernel, stride, padding, ceil_mode, dtype, rng):
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    check(lambda x: F.max_pool2d(x, **kwargs), lambda x: TF.max_pool2d(x, **kwargs), [distinct(rng, *shape)], dtype, rng)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["count_pad", "exclude_pad"])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_avg_pool2d(shape, kernel, stride, padding, ceil_mode, count_include_pad, dtype, rng):
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    check(lambda x: F.avg_pool2d(x, **kwargs), lambda x: TF.avg_pool2d(x, **kwargs), [rng.standard_normal(shape)], dtype, rng)


@pytest.mark.parametrize(
    "shape, output_size",
    [((2, 3, 8, 8), (4, 4)), ((2, 3, 8, 8), 1), ((2, 2, 7, 9), (3, 4)), ((2, 2, 5, 6), (5, 6)),
     ((2, 2, 3, 4), (5, 7)), ((2, 2, 10, 7), (None, 3)), ((1, 2, 11, 13), (4, 5))],
    ids=["divides", "global", "uneven", "identity", "upsample", "none_keeps_height", "uneven_batch1"],
)
def test_adaptive_avg_pool2d(shape, output_size, dtype, rng):
    check(
        lambda x: F.adaptive_avg_pool2d(x, output_size), lambda x: TF.adaptive_avg_pool2d(x, output_size),
        [rng.standard_normal(shape)], dtype, rng,
    )


# ---------------------------------------------------------------- activations

@pytest.mark.parametrize(
    "mc_fn, torch_fn",
    [(F.relu, TF.relu), (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh)],
    ids=["relu", "sigmoid", "tanh"],
)
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["unit", "large"])
def test_elementwise_activation(mc_fn, torch_fn, scale, dtype, rng):
    check(mc_fn, torch_fn, [scale * rng.standard_normal((3, 4, 5))], dtype, rng)


@pytest.mark.parametrize("dim", [0, 1, -1, 2], ids=["dim0", "dim1", "dim-1", "dim2"])
@pytest.mark.parametrize(
    "mc_fn, torch_fn", [(F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax)], ids=["softmax", "log_softmax"]
)
@pytest.mark.parametrize("scale", [1.0, 100.0], ids=["unit", "large_logits"])
def test_softmax_family(mc_fn, torch_fn, dim, scale, dtype, rng):
    check(lambda x: mc_fn(x, dim=dim), lambda x: torch_fn(x, dim=dim), [scale * rng.standard_normal((3, 4, 5))], dtype, rng)


# ---------------------------------------------------------------- linear, dropout

@pytest.mark.parametrize(
    "x_shape, with_bias",
    [((5, 4), True), ((5, 4), False), ((2, 5, 4), True), ((2, 3, 5, 4), False), ((4,), True)],
    ids=["2d_bias", "2d_no_bias", "3d_bias", "4d_no_bias", "1d_bias"],
)
def test_linear(x_shape, with_bias, dtype, rng):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal((3, 4))]
    if with_bias:
        inputs.append(rng.standard_normal(3))
    check(F.linear, TF.linear, inputs, dtype, rng)


@pytest.mark.parametrize("p, training", [(0.0, True), (0.0, False), (0.5, False), (0.9, False)],
                         ids=["p0_train", "p0_eval", "p0.5_eval", "p0.9_eval"])
def test_dropout_identity(p, training, dtype, rng):
    """Random masks differ between frameworks; only the deterministic cases can match."""
    check(lambda x: F.dropout(x, p, training), lambda x: TF.dropout(x, p, training), [rng.standard_normal((4, 6))], dtype, rng)


# ---------------------------------------------------------------- shape ops

@pytest.mark.parametrize(
    "shape, widths, value",
    [((3, 5), (1, 2), 0.0), ((2, 3, 4, 5), (1, 2, 3, 0), 0.0), ((2, 3, 4, 5), (0, 1, 2, 1, 1, 0), 0.5),
     ((2, 3, 4), (2, 0, 0, 0, 1, 3), -1.5)],
    ids=["last_axis", "width_then_height", "three_axes_value", "all_axes"],
)
def test_pad(shape, widths, value, dtype, rng):
    check(lambda x: F.pad(x, widths, value), lambda x: TF.pad(x, widths, value=value), [rng.standard_normal(shape)], dtype, rng)


@pytest.mark.parametrize(
    "shapes, dim",
    [([(2, 3), (4, 3)], 0), ([(2, 3, 4), (2, 1, 4), (2, 5, 4)], 1), ([(2, 3, 1), (2, 3, 4)], -1), ([(3, 2)], 0)],
    ids=["dim0", "dim1_three", "dim-1", "single"],
)
def test_cat(shapes, dim, dtype, rng):
    inputs = [rng.standard_normal(s) for s in shapes]
    check(lambda *a: F.cat(a, dim), lambda *a: torch.cat(a, dim), inputs, dtype, rng)


@pytest.mark.parametrize("start, end", [(0, -1), (1, -1), (1, 2), (2, 3), (0, 0)],
                         ids=["all", "from1", "middle", "last_two", "none"])
def test_flatten(start, end, dtype, rng):
    check(lambda x: F.flatten(x, start, end), lambda x: torch.flatten(x, start, end), [rng.standard_normal((2, 3, 4, 5))], dtype, rng)


def test_flatten_method_default_is_all_dims(dtype, rng):
    check(lambda x: x.flatten(), lambda x: x.flatten(), [rng.standard_normal((2, 3, 4))], dtype, rng)


@pytest.mark.parametrize(
    "mc_fn, torch_fn",
    [
        (lambda x: x.reshape(6, 4), lambda x: x.reshape(6, 4)),
        (lambda x: x.reshape((4, -1)), lambda x: x.reshape((4, -1))),
        (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
        (lambda x: x.transpose(-1, -2), lambda x: x.transpose(-1, -2)),
        (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
        (lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    ],
    ids=["reshape", "reshape_minus1", "transpose", "transpose_negative", "permute", "T"],
)
def test_reshape_transpose(mc_fn, torch_fn, dtype, rng):
    check(mc_fn, torch_fn, [rng.standard_normal((2, 3, 4))], dtype, rng)


INDICES = {
    "int": 1,
    "negative_int": -1,
    "slice_step": (slice(None), slice(0, 4, 2)),
    "int_and_slice": (1, slice(1, None)),
    "ellipsis_none": (Ellipsis, None, 0),
    "array_repeats": np.array([0, 2, 0, 0, 1]),
    "array_axis1_repeats": (slice(None), np.array([3, 3, 1, 3])),
    "two_arrays_repeats": (np.array([0, 1, 1, 0]), np.array([2, 2, 0, 2])),
    "array_2d_repeats": np.array([[0, 0], [2, 0]]),
    "array_negative": np.array([-1, 0, -1]),
    "bool_mask": np.array([True, False, True]),
}


def _torch_index(index):
    """The same index for torch: NumPy arrays become tensors (torch reads nested lists differently)."""
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return torch.from_numpy(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("index", INDICES.values(), ids=INDICES.keys())
def test_indexing(index, dtype, rng):
    torch_index = _torch_index(index)
    check(lambda x: x[index], lambda x: x[torch_index], [rng.standard_normal((3, 4, 5))], dtype, rng)


# ---------------------------------------------------------------- losses

@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["unit", "large_logits"])
@pytest.mark.parametrize("n, classes", [(6, 5), (1, 3), (8, 2)], ids=["6x5", "batch1", "binary"])
def test_cross_entropy(n, classes, scale, dtype, rng):
    target = rng.integers(0, classes, size=n)
    check(F.cross_entropy, TF.cross_entropy, [scale * rng.standard_normal((n, classes)), target], dtype, rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, dtype, rng):
    check(
        lambda a, b: F.mse_loss(a, b, reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction),
        [rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))], dtype, rng,
    )


# ---------------------------------------------------------------- normalisation

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 3, 5, 6)], ids=["2d", "3d", "4d"])
def test_batch_norm(shape, training, affine, dtype, rng):
    """Outputs, gradients, and the running statistics after one call (momentum 0.1), which both update in place."""
    channels = shape[1]
    running = [rng.standard_normal(channels).astype(dtype), rng.uniform(0.5, 2.0, channels).astype(dtype)]
    mc_running = [r.copy() for r in running]
    torch_running = [torch.tensor(r) for r in running]
    inputs = [2.0 * rng.standard_normal(shape) + 0.5]
    if affine:
        inputs += [rng.standard_normal(channels), rng.standard_normal(channels)]
    check(
        lambda *a: F.batch_norm(a[0], *mc_running, *a[1:], training=training, momentum=0.1, eps=1e-5),
        lambda *a: TF.batch_norm(a[0], *torch_running, *a[1:], training=training, momentum=0.1, eps=1e-5),
        inputs, dtype, rng,
    )
    for name, mine, theirs in zip(("running_mean", "running_var"), mc_running, torch_running):
        np.testing.assert_allclose(mine, theirs.numpy(), **TOLERANCES[dtype]["default"], err_msg=name)


def test_batch_norm_training_without_running_stats(dtype, rng):
    check(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
        [rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(3), rng.standard_normal(3)], dtype, rng,
    )


@pytest.mark.parametrize(
    "size, alpha, beta, k",
    [(5, 1e-4, 0.75, 2.0), (5, 0.5, 0.75, 1.0), (4, 0.5, 0.75, 1.0), (2, 0.8, 0.5, 1.5), (1, 0.3, 1.0, 1.0),
     (9, 0.5, 0.75, 1.0)],
    ids=["alexnet_size5", "size5", "size4_even", "size2_even", "size1", "size9_wider_than_channels"],
)
@pytest.mark.parametrize("shape", [(2, 7, 3, 4), (2, 6, 5)], ids=["4d", "3d"])
def test_local_response_norm(shape, size, alpha, beta, k, dtype, rng):
    check(
        lambda x: F.local_response_norm(x, size, alpha, beta, k),
        lambda x: TF.local_response_norm(x, size, alpha, beta, k),
        [rng.standard_normal(shape)], dtype, rng,
    )


# ---------------------------------------------------------------- Tensor operators

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}
BROADCAST_SHAPES = {
    "same": ((3, 4), (3, 4)),
    "row": ((3, 4), (4,)),
    "column_and_row": ((3, 1), (1, 4)),
    "3d_and_2d": ((2, 3, 4), (3, 1)),
    "scalar_shaped": ((2, 3), ()),
    "left_smaller": ((1, 4), (2, 3, 4)),
}


def _positive(rng, shape):
    """Values in [0.5, 2): safe as divisors and as bases of a power with a tensor exponent."""
    return rng.uniform(0.5, 2.0, shape)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES.values(), ids=BROADCAST_SHAPES.keys())
@pytest.mark.parametrize("op", BINARY_OPS.values(), ids=BINARY_OPS.keys())
def test_binary_operator_broadcasting(op, shapes, dtype, rng):
    a_shape, b_shape = shapes
    check(op, op, [_positive(rng, a_shape), rng.standard_normal(b_shape) + (2.5 if op is BINARY_OPS["div"] else 0)],
          dtype, rng)


SCALAR_OPS = {
    "add_scalar": lambda a: a + 2.0,
    "radd": lambda a: 2.0 + a,
    "rsub": lambda a: 3 - a,
    "rmul": lambda a: 0.5 * a,
    "div_scalar": lambda a: a / 4.0,
    "rdiv": lambda a: 2.0 / a,
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "sqrt": lambda a: a**0.5,
    "rpow": lambda a: 2.0**a,
    "neg": lambda a: -a,
}


@pytest.mark.parametrize("op", SCALAR_OPS.values(), ids=SCALAR_OPS.keys())
def test_operator_with_python_number(op, dtype, rng):
    check(op, op, [_positive(rng, (3, 4))], dtype, rng)


@pytest.mark.parametrize("op", [lambda a: a**2, lambda a: a**3, lambda a: -a], ids=["square", "cube", "neg"])
def test_operator_negative_inputs(op, dtype, rng):
    check(op, op, [rng.standard_normal((3, 4))], dtype, rng)


MATMUL_SHAPES = {
    "matrix": ((3, 4), (4, 5)),
    "vector_matrix": ((4,), (4, 5)),
    "matrix_vector": ((3, 4), (4,)),
    "vector_vector": ((4,), (4,)),
    "batch_matrix": ((2, 3, 4), (4, 5)),
    "batch_batch": ((2, 3, 4), (2, 4, 5)),
    "matrix_batch": ((3, 4), (2, 4, 5)),
    "broadcast_batch": ((2, 1, 3, 4), (5, 4, 2)),
    "batch_vector": ((2, 3, 4), (4,)),
}


@pytest.mark.parametrize("shapes", MATMUL_SHAPES.values(), ids=MATMUL_SHAPES.keys())
def test_matmul(shapes, dtype, rng):
    check(lambda a, b: a @ b, lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes], dtype, rng)


def test_matmul_with_constant_array(dtype, rng):
    """A NumPy array on the left defers to Tensor.__rmatmul__; only the Tensor gets a gradient."""
    constant = rng.standard_normal((3, 4)).astype(dtype)
    check(lambda b: constant @ b, lambda b: torch.from_numpy(constant) @ b, [rng.standard_normal((4, 2))], dtype, rng)


REDUCTION_DIMS = {
    "all": (None, False),
    "dim0": (0, False),
    "dim1_keepdim": (1, True),
    "dim-1": (-1, False),
    "dims02": ((0, 2), False),
    "dims12_keepdim": ((1, 2), True),
    "negative_dims_keepdim": ((-1, -3), True),
}


@pytest.mark.parametrize("dim, keepdim", REDUCTION_DIMS.values(), ids=REDUCTION_DIMS.keys())
@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_reduction(reduction, dim, keepdim, dtype, rng):
    def mc_fn(x):
        return getattr(x, reduction)() if dim is None else getattr(x, reduction)(dim, keepdim)

    def torch_fn(x):
        if dim is None:
            return getattr(x, reduction)()
        if reduction == "max":
            return torch.amax(x, dim, keepdim)
        return getattr(x, reduction)(dim, keepdim)

    check(mc_fn, torch_fn, [distinct(rng, 3, 4, 5)], dtype, rng)


def test_max_matches_torch_max_values(dtype, rng):
    check(lambda x: x.max(1, True), lambda x: x.max(1, keepdim=True).values, [distinct(rng, 4, 6)], dtype, rng)


def test_chained_expression(dtype, rng):
    """Several ops sharing inputs, so gradients from different paths must add up."""

    def mc_fn(x, w, b):
        h = F.tanh(x @ w + b)
        return (h * x[:, :3]).sum(-1) / (1.0 + (x**2).mean(-1)) - 0.5 * h.max(-1)

    def torch_fn(x, w, b):
        h = torch.tanh(x @ w + b)
        return (h * x[:, :3]).sum(-1) / (1.0 + (x**2).mean(-1)) - 0.5 * h.amax(-1)

    check(mc_fn, torch_fn, [rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)], dtype, rng)
