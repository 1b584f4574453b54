"""Give Tensor its operators and methods, each a thin call into a functional op.

Kept apart from `autograd.py` so the engine does not import the ops built on it (DeZero's
`setup_variable` does the same). `minicnn.functional` runs `install()` once at import.
"""

from __future__ import annotations

from minicnn.autograd import Tensor
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


def _argmax(self, dim=None, keepdim=False):
    """Positions of the largest values (not differentiable)."""
    return Tensor(self.data.argmax(axis=dim, keepdims=keepdim))


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
    Tensor.exp = math.exp
    Tensor.log = math.log
    Tensor.argmax = _argmax
    Tensor.reshape = lambda self, *shape_args: shape.reshape(self, _shape_args(shape_args))
    Tensor.permute = lambda self, *order: shape.permute(self, _shape_args(order))
    Tensor.transpose = shape.transpose
    Tensor.T = property(lambda self: shape.permute(self, tuple(reversed(range(self.ndim)))))
    Tensor.flatten = _flatten
    Tensor.to = shape.to
