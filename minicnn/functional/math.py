"""Elementwise arithmetic, matrix products, reductions and dtype casts, with NumPy broadcasting.

Each op is a Function plus a one-line function. Binary ops broadcast like NumPy; their backward
sums the gradient back to each input's shape (`unbroadcast`). Reductions take PyTorch's `dim` and
`keepdim` or NumPy's `axis` and `keepdims`, so the habits of either work.
"""

from __future__ import annotations

import numpy as np

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module
from minicnn.functional.shape import inverse_permutation
from minicnn.kernels import kernels_for


def unbroadcast(grad, shape: tuple):
    """Sum `grad` down to `shape`: the backward of broadcasting an array of `shape` up to grad's."""
    shape = tuple(shape)
    if tuple(grad.shape) == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return kernels_for(a).add(a, b)

    def backward(self, g):
        a_shape, b_shape = self.shapes
        return (
            unbroadcast(g, a_shape) if self.needs_input_grad[0] else None,
            unbroadcast(g, b_shape) if self.needs_input_grad[1] else None,
        )


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        a_shape, b_shape = self.shapes
        return (
            unbroadcast(g, a_shape) if self.needs_input_grad[0] else None,
            unbroadcast(-g, b_shape) if self.needs_input_grad[1] else None,
        )


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(
            b if self.needs_input_grad[0] else None, a if self.needs_input_grad[1] else None
        )
        self.shapes = (a.shape, b.shape)
        return a * b

    def backward(self, g):
        b, a = self.saved
        a_shape, b_shape = self.shapes
        return (
            unbroadcast(g * b, a_shape) if self.needs_input_grad[0] else None,
            unbroadcast(g * a, b_shape) if self.needs_input_grad[1] else None,
        )


class Div(Function):
    def forward(self, a, b):
        y = a / b
        self.save_for_backward(b, y if self.needs_input_grad[1] else None)
        self.shapes = (a.shape, b.shape)
        return y

    def backward(self, g):
        b, y = self.saved
        a_shape, b_shape = self.shapes
        return (
            unbroadcast(g / b, a_shape) if self.needs_input_grad[0] else None,
            unbroadcast(-g * y / b, b_shape) if self.needs_input_grad[1] else None,
        )


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    """a ** b; the gradient for b needs a > 0 (it uses log a)."""

    def forward(self, a, b):
        y = a**b
        self.save_for_backward(a, b, y)
        self.shapes = (a.shape, b.shape)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        a, b, y = self.saved
        a_shape, b_shape = self.shapes
        return (
            unbroadcast(g * b * a ** (b - 1), a_shape) if self.needs_input_grad[0] else None,
            unbroadcast(g * y * xp.log(a), b_shape) if self.needs_input_grad[1] else None,
        )


class Exp(Function):
    def forward(self, a):
        y = get_array_module(a).exp(a)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * y


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).log(a)

    def backward(self, g):
        (a,) = self.saved
        return g / a


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands are vectors, leading dimensions broadcast."""

    def forward(self, a, b):
        self.save_for_backward(
            b if self.needs_input_grad[0] else None, a if self.needs_input_grad[1] else None
        )
        self.shapes = (a.shape, b.shape)
        return a @ b

    def backward(self, g):
        xp = get_array_module(g)
        b, a = self.saved
        a_shape, b_shape = self.shapes
        # Promote vectors to matrices so one rule covers every case, then drop the added axes.
        g2 = g
        if len(b_shape) == 1:
            g2 = xp.expand_dims(g2, -1)
        if len(a_shape) == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if self.needs_input_grad[0]:
            b2 = b.reshape(-1, 1) if b.ndim == 1 else b
            ga = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), (1,) + a_shape if len(a_shape) == 1 else a_shape)
            ga = ga.reshape(a_shape)
        if self.needs_input_grad[1]:
            a2 = a.reshape(1, -1) if a.ndim == 1 else a
            gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b_shape + (1,) if len(b_shape) == 1 else b_shape)
            gb = gb.reshape(b_shape)
        return ga, gb


class Linear(Function):
    """y = x W^T + b, the fully connected layer.

    x: (N, *, in_features), weight: (out_features, in_features), bias: (out_features,) or None
    -> y: (N, *, out_features).
    """

    def forward(self, x, weight, bias=None):
        self.save_for_backward(
            weight if self.needs_input_grad[0] else None, x if self.needs_input_grad[1] else None
        )
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        weight, x = self.saved
        gx = g @ weight if self.needs_input_grad[0] else None
        gw = gb = None
        if self.needs_input_grad[1]:
            gw = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = g.reshape(-1, g.shape[-1]).sum(axis=0)
        return gx, gw, gb


def _reduction_args(name: str, dim, axis, keepdim, keepdims) -> tuple:
    """(dim, keepdim) from PyTorch's spelling (`dim`, `keepdim`) or NumPy's (`axis`, `keepdims`).

    Each pair is one argument under two names, so giving both names is refused rather than one
    silently winning.
    """
    if dim is not None and axis is not None:
        raise TypeError(f"{name}: got dim={dim!r} and axis={axis!r}, two names for one argument: give one")
    if keepdim is not None and keepdims is not None:
        raise TypeError(f"{name}: got keepdim={keepdim!r} and keepdims={keepdims!r}, two names for one argument: give one")
    return (axis if dim is None else dim), bool(keepdim if keepdims is None else keepdims)


def _normalize_axis(name: str, axis, shape: tuple) -> tuple:
    """The reduced axes as sorted non-negative ints: all of them for None, -1 counting from the end.

    A 0-d tensor accepts dim 0 and -1 (reducing it leaves it as it is), as in PyTorch.
    """
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    span = ndim or 1
    for a in axes:
        if isinstance(a, bool) or not hasattr(a, "__index__"):
            raise TypeError(f"{name}: dim must be an int or a tuple of ints, got {axis!r}")
        if not -span <= a < span:
            raise IndexError(f"{name}: dim {a} is out of range for a tensor of shape {shape}: use {-span}..{span - 1}")
    normalized = sorted({int(a) % span for a in axes} if ndim else set())
    if ndim and len(normalized) != len(axes):
        raise ValueError(f"{name}: dim {axis!r} names one dimension twice (tensor of shape {shape})")
    return tuple(normalized)


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.shape = a.shape
        self.axes = _normalize_axis(self.name, self.axis, a.shape)
        return a.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.keepdims:
            g = xp.expand_dims(g, self.axes)
        return xp.broadcast_to(g, self.shape)


class Mean(Sum):
    def forward(self, a):
        y = super().forward(a)
        self.count = a.size // y.size
        return y / self.count

    def backward(self, g):
        return super().backward(g / self.count)


class Max(Function):
    """Largest value over `axis`; its gradient goes to the first maximum, as in max pooling.

    On ties this is PyTorch's rule for `max(dim)`; PyTorch's `max()` over the whole tensor (and its
    `amax`) splits the gradient evenly among the tied elements instead.
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        xp = get_array_module(a)
        axes = _normalize_axis(self.name, self.axis, a.shape)
        kept = [i for i in range(a.ndim) if i not in axes]
        # Bring the reduced axes to the end and fold them into one, so one argmax finds the first max.
        folded = a.transpose(kept + list(axes)).reshape([a.shape[i] for i in kept] + [-1])
        index = self.first_extreme(folded)
        y = xp.take_along_axis(folded, index[..., None], axis=-1)[..., 0]
        self.save_for_backward(index)
        self.layout = (a.shape, kept, axes, folded.shape)
        kept_shape = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
        return y.reshape(kept_shape) if self.keepdims else y

    def first_extreme(self, folded):
        """Position of the first largest value along the last axis. folded: (*kept, reduced) -> (*kept)."""
        return folded.argmax(axis=-1)

    def backward(self, g):
        xp = get_array_module(g)
        (index,) = self.saved
        shape, kept, axes, folded_shape = self.layout
        onehot = xp.zeros(folded_shape, dtype=g.dtype)
        xp.put_along_axis(onehot, index[..., None], g.reshape(index.shape)[..., None], axis=-1)
        unfolded = onehot.reshape([shape[i] for i in kept] + [shape[i] for i in axes])
        return unfolded.transpose(inverse_permutation(kept + list(axes)))


class Min(Max):
    """Smallest value over `axis`; its gradient goes to the first minimum (Max's rule, mirrored)."""

    def first_extreme(self, folded):
        return folded.argmin(axis=-1)


class Cast(Function):
    """The same values in another floating-point dtype; the gradient goes back in the input's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, a):
        self.input_dtype = a.dtype
        return a.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.input_dtype)


def add(a, b) -> Tensor:
    return Add()(a, b)


def sub(a, b) -> Tensor:
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    return Mul()(a, b)


def div(a, b) -> Tensor:
    return Div()(a, b)


def neg(a) -> Tensor:
    return Neg()(a)


def pow(a, b) -> Tensor:
    return Pow()(a, b)


def exp(a) -> Tensor:
    return Exp()(a)


def log(a) -> Tensor:
    return Log()(a)


def matmul(a, b) -> Tensor:
    return MatMul()(a, b)


def linear(x, weight, bias=None) -> Tensor:
    """y = x @ weight.T + bias. x: (N, *, in), weight: (out, in), bias: (out,) -> (N, *, out)."""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features (shape {tuple(x.shape)}) but the weight "
            f"expects {weight.shape[-1]} (weight shape {tuple(weight.shape)})"
        )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Linear()(*inputs)


def sum(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """Sum over `dim` (an int, a tuple of ints, or None for every dimension); NumPy's `axis` and
    `keepdims` are accepted too. x: (d0, ..., dn) -> the dimensions not reduced, or size 1 in each
    reduced place with keepdim=True."""
    return Sum(*_reduction_args("sum", dim, axis, keepdim, keepdims))(a)


def mean(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """Mean over `dim`; the arguments and shapes of `sum`."""
    return Mean(*_reduction_args("mean", dim, axis, keepdim, keepdims))(a)


def max(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """The largest values over `dim` (values only; use argmax for positions); the arguments and
    shapes of `sum`."""
    return Max(*_reduction_args("max", dim, axis, keepdim, keepdims))(a)


def min(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """The smallest values over `dim` (values only; use argmin for positions); the arguments and
    shapes of `sum`."""
    return Min(*_reduction_args("min", dim, axis, keepdim, keepdims))(a)


def argmax(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """Positions of the largest values along one `dim` (the first on ties), int64, outside the graph.

    dim=None: the position in the flattened tensor, a 0-d tensor. x: (d0, ..., dn) -> without `dim`,
    or with size 1 there when keepdim=True.
    """
    return _arg_extreme("argmax", a, *_reduction_args("argmax", dim, axis, keepdim, keepdims))


def argmin(a, dim=None, keepdim=None, *, axis=None, keepdims=None) -> Tensor:
    """Positions of the smallest values along one `dim` (the first on ties); as argmax."""
    return _arg_extreme("argmin", a, *_reduction_args("argmin", dim, axis, keepdim, keepdims))


def _arg_extreme(name: str, a, dim, keepdim: bool) -> Tensor:
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}: dim must be one int or None, got {dim!r}")
    if dim is None:
        return Tensor(getattr(a.data, name)().astype("int64"))
    axes = _normalize_axis(name, dim, a.shape)  # () for a 0-d tensor
    return Tensor(getattr(a.data, name)(axis=axes[0] if axes else None, keepdims=keepdim).astype("int64"))


def cast(a, dtype) -> Tensor:
    """`a` in `dtype` (`a` itself when it has it already). Differentiable into a floating dtype; a
    cast to an integer or boolean dtype gives a tensor outside the graph, as in PyTorch."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if not np.issubdtype(dtype, np.floating):
        return Tensor(a.data.astype(dtype))
    return Cast(dtype)(a)
