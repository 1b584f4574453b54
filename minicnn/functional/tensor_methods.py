"""Give Tensor its operators and methods, each a thin call into a functional op.

Kept apart from `autograd.py` so the engine does not import the ops built on it (DeZero's
`setup_variable` does the same). `minicnn.functional` runs `install()` once at import.
"""

from __future__ import annotations

from minicnn.autograd import Tensor
from minicnn.backend import Device
from minicnn.creation import as_dtype
from minicnn.functional import math, shape


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _compare(op):
    def method(self, other):
        return Tensor(op(self.data, _raw(other)))

    return method


def _shape_args(shape_args):
    return shape_args[0] if len(shape_args) == 1 and isinstance(shape_args[0], (tuple, list)) else shape_args


def _flatten(self, start_dim=0, end_dim=-1):
    return shape.flatten(self, start_dim, end_dim)


def _reshape(self, *shape_args):
    """Same values, new shape (`-1` once for the rest); `reshape(2, 3)` or `reshape((2, 3))`.

    `view` is the same method: minicnn keeps no strides of its own, so there is no contiguity to
    require; the result shares memory with self whenever NumPy (or CuPy) can reshape in place.
    """
    return shape.reshape(self, _shape_args(shape_args))


def _size(self, dim=None):
    """The shape as a tuple of ints (`size()`), or the length of one dimension (`size(dim)`, negative
    dims counting from the end), as in PyTorch."""
    if dim is None:
        return self.shape
    if isinstance(dim, bool) or not isinstance(dim, int) or not -self.ndim <= dim < self.ndim:
        raise IndexError(f"size: dim {dim!r} is out of range for a tensor of shape {self.shape}: use {-self.ndim}..{self.ndim - 1}")
    return self.shape[dim]


def _to(self, *targets, device=None, dtype=None):
    """The tensor on another device and/or in another dtype, each given by position or keyword
    (`t.to("cuda")`, `t.to(mc.float64)`, `t.to("cpu", mc.float64)`); self when nothing changes.
    Differentiable: the gradient goes back to self's device and dtype."""
    for target in targets:
        if isinstance(target, (str, Device)):
            if device is not None:
                raise TypeError(f"to: two devices given ({device!r} and {target!r}): give one")
            device = target
        elif dtype is not None:
            raise TypeError(f"to: two dtypes given ({dtype!r} and {target!r}): give one")
        else:
            dtype = target
    result = self if dtype is None else math.cast(self, as_dtype(dtype, "to"))
    return result if device is None else shape.to(result, device)


def install() -> None:
    Tensor.__add__ = math.add
    Tensor.__radd__ = lambda self, other: math.add(other, self)
    Tensor.__sub__ = math.sub
    Tensor.__rsub__ = lambda self, other: math.sub(other, self)
    Tensor.__mul__ = math.mul
    Tensor.__rmul__ = lambda self, other: math.mul(other, self)
    Tensor.__truediv__ = math.div
    Tensor.__rtruediv__ = lambda self, other: math.div(other, self)
    Tensor.__pow__ = math.pow
    Tensor.__rpow__ = lambda self, other: math.pow(other, self)
    Tensor.__matmul__ = math.matmul
    Tensor.__rmatmul__ = lambda self, other: math.matmul(other, self)
    Tensor.__neg__ = math.neg
    Tensor.__getitem__ = shape.getitem
    Tensor.__eq__ = _compare(lambda a, b: a == b)
    Tensor.__ne__ = _compare(lambda a, b: a != b)
    Tensor.__lt__ = _compare(lambda a, b: a < b)
    Tensor.__le__ = _compare(lambda a, b: a <= b)
    Tensor.__gt__ = _compare(lambda a, b: a > b)
    Tensor.__ge__ = _compare(lambda a, b: a >= b)
    Tensor.sum = math.sum
    Tensor.mean = math.mean
    Tensor.max = math.max
    Tensor.min = math.min
    Tensor.exp = math.exp
    Tensor.log = math.log
    Tensor.argmax = math.argmax
    Tensor.argmin = math.argmin
    Tensor.reshape = _reshape
    Tensor.view = _reshape
    Tensor.size = _size
    Tensor.dim = lambda self: self.ndim
    Tensor.permute = lambda self, *order: shape.permute(self, _shape_args(order))
    Tensor.transpose = shape.transpose
    Tensor.T = property(lambda self: shape.permute(self, tuple(reversed(range(self.ndim)))))
    Tensor.flatten = _flatten
    Tensor.to = _to
    Tensor.cpu = lambda self: shape.to(self, "cpu")
