"""Ops that move values without computing new ones: reshape, transpose, index, concatenate, pad."""

from __future__ import annotations

from minicnn import backend
from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module, scatter_add


def inverse_permutation(order) -> list:
    """The axis order that undoes `transpose(order)`."""
    inverse = [0] * len(order)
    for position, axis in enumerate(order):
        inverse[axis] = position
    return inverse


class Reshape(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, a):
        self.input_shape = a.shape
        return a.reshape(self.shape)

    def backward(self, g):
        return g.reshape(self.input_shape)


class Permute(Function):
    """Reorder the axes: output axis i is input axis `order[i]`."""

    def __init__(self, order):
        self.order = tuple(order)

    def forward(self, a):
        return a.transpose(self.order)

    def backward(self, g):
        return g.transpose(inverse_permutation(self.order))


class GetItem(Function):
    """a[index] for basic slices and integer-array (advanced) indices alike."""

    def __init__(self, index):
        self.index = index

    def forward(self, a):
        self.input_shape, self.dtype = a.shape, a.dtype
        return a[self.index]

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.input_shape, dtype=g.dtype)
        if _is_basic(self.index):
            grad[self.index] = g
        else:  # integer arrays may repeat an element: those gradients must add up, not overwrite
            scatter_add(grad, self.index, g)
        return grad


def _is_basic(index) -> bool:
    """True for indices made of ints, slices, None and Ellipsis only (no element can repeat)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


class ToDevice(Function):
    """Copy to another device; the gradient travels back to the source device."""

    def __init__(self, target):
        self.target = target

    def forward(self, a):
        self.source = backend.device_of(a)
        return backend.to_device(a, self.target)

    def backward(self, g):
        return backend.to_device(g, self.source)


class Cat(Function):
    """Join arrays along an existing axis."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        xp = get_array_module(*arrays)
        self.sizes = [a.shape[self.axis] for a in arrays]
        return xp.concatenate(arrays, axis=self.axis)

    def backward(self, g):
        grads, start = [], 0
        for size, need in zip(self.sizes, self.needs_input_grad):
            index = [slice(None)] * g.ndim
            index[self.axis] = slice(start, start + size)
            grads.append(g[tuple(index)] if need else None)
            start += size
        return tuple(grads)


class Pad(Function):
    """Constant padding; `widths` is one (before, after) pair per axis."""

    def __init__(self, widths, value=0.0):
        self.widths, self.value = widths, value

    def forward(self, a):
        xp = get_array_module(a)
        shape = tuple(n + before + after for n, (before, after) in zip(a.shape, self.widths))
        self.middle = tuple(slice(before, before + n) for n, (before, _) in zip(a.shape, self.widths))
        out = xp.full(shape, self.value, dtype=a.dtype)  # then one copy into the middle: np.pad's general
        out[self.middle] = a                             # modes took twice as long
        return out

    def backward(self, g):
        return g[self.middle]


def reshape(a, *shape) -> Tensor:
    """Same values, new shape; one dimension may be -1. Accepts `reshape(x, 2, 3)` or `reshape(x, (2, 3))`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return Reshape(shape)(a)


def permute(a, *order) -> Tensor:
    if len(order) == 1 and isinstance(order[0], (tuple, list)):
        order = order[0]
    return Permute(order)(a)


def transpose(a, dim0: int = 0, dim1: int = 1) -> Tensor:
    """Swap two axes (PyTorch's transpose); `permute` reorders them all."""
    order = list(range(a.ndim))
    order[dim0], order[dim1] = order[dim1], order[dim0]
    return Permute(order)(a)


def getitem(a, index) -> Tensor:
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(a)


def to(x, target) -> Tensor:
    """x on device `target` ("cpu", "cuda", "cuda:N"); x itself when it is already there."""
    target = backend.device(target)
    return x if x.device == target else ToDevice(target)(x)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along `dim`; every other dimension must match (GoogLeNet joins branches this way)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    ndim = tensors[0].ndim
    axis = dim % ndim
    for t in tensors[1:]:
        if t.ndim != ndim or any(n != m for i, (n, m) in enumerate(zip(t.shape, tensors[0].shape)) if i != axis):
            raise ValueError(
                f"cat: shapes {[tuple(t.shape) for t in tensors]} differ outside dimension {dim}"
            )
    return Cat(axis)(*tensors)


def pad(x, pad, value: float = 0.0) -> Tensor:
    """Pad with a constant, PyTorch's way: `pad` lists (before, after) pairs from the LAST axis backwards.

    pad=(1, 1) pads the last axis by one on each side; (l, r, t, b) pads width then height.
    """
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: needs (before, after) pairs for at most {x.ndim} axes, got {tuple(pad)}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: widths must be non-negative, got {tuple(pad)}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return Pad(tuple(widths), value)(x)


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""
    start, end = start_dim % x.ndim, end_dim % x.ndim
    merged = 1
    for n in x.shape[start : end + 1]:
        merged *= n
    return Reshape(x.shape[:start] + (merged,) + x.shape[end + 1 :])(x)
