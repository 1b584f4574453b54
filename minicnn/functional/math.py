"""Elementwise arithmetic, matrix products and reductions, with NumPy broadcasting.

Each op is a Function plus a one-line function. Binary ops broadcast like NumPy; their backward
sums the gradient back to each input's shape (`unbroadcast`).
"""

from __future__ import annotations

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


def _normalize_axis(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.shape = a.shape
        self.axes = _normalize_axis(self.axis, a.ndim)
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
    """Largest value over `axis`; its gradient goes to the first maximum, as in max pooling."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        xp = get_array_module(a)
        axes = _normalize_axis(self.axis, a.ndim)
        kept = [i for i in range(a.ndim) if i not in axes]
        # Bring the reduced axes to the end and fold them into one, so one argmax finds the first max.
        folded = a.transpose(kept + list(axes)).reshape([a.shape[i] for i in kept] + [-1])
        index = folded.argmax(axis=-1)
        y = xp.take_along_axis(folded, index[..., None], axis=-1)[..., 0]
        self.save_for_backward(index)
        self.layout = (a.shape, kept, axes, folded.shape)
        kept_shape = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
        return y.reshape(kept_shape) if self.keepdims else y

    def backward(self, g):
        xp = get_array_module(g)
        (index,) = self.saved
        shape, kept, axes, folded_shape = self.layout
        onehot = xp.zeros(folded_shape, dtype=g.dtype)
        xp.put_along_axis(onehot, index[..., None], g.reshape(index.shape)[..., None], axis=-1)
        unfolded = onehot.reshape([shape[i] for i in kept] + [shape[i] for i in axes])
        return unfolded.transpose(inverse_permutation(kept + list(axes)))


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


def sum(a, dim=None, keepdim=False) -> Tensor:
    return Sum(dim, keepdim)(a)


def mean(a, dim=None, keepdim=False) -> Tensor:
    return Mean(dim, keepdim)(a)


def max(a, dim=None, keepdim=False) -> Tensor:
    """The largest values over `dim` (values only; use argmax for positions)."""
    return Max(dim, keepdim)(a)
