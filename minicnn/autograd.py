"""Reverse-mode automatic differentiation: `Tensor`, `Function`, `no_grad`.

A Tensor wraps a raw array (NumPy or CuPy). Each differentiable op is a `Function` subclass with
`forward(*arrays) -> array` and `backward(grad) -> tuple of input gradients`, both over raw arrays.
Calling an op records one node: the Function remembers which of its inputs need gradients and where
those gradients go (the Function that made the input, or the leaf Tensor itself), never the
intermediate Tensors, so an op keeps alive only the arrays it saved with `save_for_backward`.

`Tensor.backward()` orders the nodes by an iterative depth-first search (no recursion, so a chain of
any length works), walks them once from the output back, and frees each node's saved arrays as it
goes unless `retain_graph=True`. Gradients reach leaf tensors only, as in PyTorch.

The Tensor's operators and methods (`+`, `@`, `.sum()`, indexing...) are attached by
`minicnn.functional.tensor_methods`, which `import minicnn` always loads: the rules live with the ops.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from minicnn import backend
from minicnn.backend import Device, DeviceError
from minicnn.kernels import kernels_for

log = logging.getLogger("minicnn")

_grad_enabled = True
_debug_level = int(os.environ.get("MINICNN_DEBUG", "0") or 0)


def set_debug(level: int) -> None:
    """Debug switch, also read from $MINICNN_DEBUG at import.

    1: log every op as it runs, with its input shapes (logger "minicnn").
    2: also stop at the first op whose output holds NaN or infinity, naming it.
    """
    global _debug_level
    _debug_level = int(level)


def is_grad_enabled() -> bool:
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Run ops without recording the graph (evaluation, parameter updates); also a decorator."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


class Tensor:
    """An n-dimensional array that can record the ops applied to it and compute gradients.

    `data` is the raw NumPy or CuPy array; `grad` is a Tensor (or None) filled by `backward()` on
    leaf tensors that require gradients.
    """

    __array_ufunc__ = None  # NumPy defers to Tensor's reflected operators: array * tensor works
    __hash__ = object.__hash__  # == is elementwise, identity stays the hash

    def __init__(self, data, requires_grad: bool = False):
        self.data = data
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self.creator: Function | None = None

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> Device:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return self.shape[0]

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU when needed; shares memory on the CPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory)."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`.

        grad: the upstream gradient, same shape as self; may be omitted for a one-element tensor.
        retain_graph: keep saved arrays so backward can run through this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: create the inputs with "
                "requires_grad=True, and call backward outside no_grad()"
            )
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output, got shape {self.shape}: "
                    "reduce it first (e.g. .sum()) or pass grad="
                )
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(grad.shape)}, the tensor {self.shape}")
        if self.creator is None:
            self._accumulate(grad)
            return
        _run_backward(self.creator, grad, retain_graph)

    def _accumulate(self, grad) -> None:
        grad = grad.astype(self.dtype, copy=True)
        if self.grad is None:
            self.grad = Tensor(grad)
        else:
            self.grad.data = self.grad.data + grad


def _topological_order(root: Function) -> list[Function]:
    """Functions reachable from `root`, each after every Function that consumes its output."""
    order, visited = [], {root}
    stack = [(root, iter(root.parents))]
    while stack:
        fn, parents = stack[-1]
        for parent in parents:
            if isinstance(parent, Function) and parent not in visited:
                visited.add(parent)
                stack.append((parent, iter(parent.parents)))
                break
        else:
            stack.pop()
            order.append(fn)
    order.reverse()
    return order


def _run_backward(root: Function, grad, retain_graph: bool) -> None:
    pending = {root: grad}
    for fn in _topological_order(root):
        grad_out = pending.pop(fn)
        if fn.released:
            raise RuntimeError(
                f"backward through {fn.name} a second time: its saved arrays were freed by the first "
                "backward; pass retain_graph=True to the first call"
            )
        grads = fn.backward(grad_out)
        if not isinstance(grads, tuple):
            grads = (grads,)
        for parent, shape, g in zip(fn.parents, fn.input_shapes, grads):
            if parent is None or g is None:
                continue
            if g.shape != shape:
                raise RuntimeError(f"{fn.name}.backward returned a gradient of shape {tuple(g.shape)} for an input of shape {shape}")
            if isinstance(parent, Tensor):
                parent._accumulate(g)
            elif parent in pending:  # two paths meet (a residual connection): their gradients add
                pending[parent] = kernels_for(g).add(pending[parent], g)
            else:
                pending[parent] = g
        if not retain_graph:
            fn.release()


class Function:
    """One differentiable op over raw arrays.

    Subclasses take the op's settings in `__init__`, and implement
    `forward(*arrays) -> array` and `backward(grad_output) -> gradient or tuple of gradients`,
    one per input, None where `self.needs_input_grad[i]` is False. Arrays that backward needs are
    declared with `save_for_backward(...)` and read back from `self.saved`.

    Use `MyOp(settings)(*inputs)` or the one-line function that the functional module pairs with it.
    """

    saved: tuple = ()

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, *inputs) -> Tensor:
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        if not tensors:
            raise TypeError(f"{self.name}: needs at least one Tensor input")
        like = tensors[0].data
        if len(tensors) > 1 and not all(type(x.data) is np.ndarray for x in tensors):  # all NumPy: all on the CPU
            _check_same_device(self.name, tensors)
        arrays = [x.data if isinstance(x, Tensor) else _as_array(x, like) for x in inputs]
        needs = [_grad_enabled and isinstance(x, Tensor) and x.requires_grad for x in inputs]
        self.needs_input_grad = tuple(needs)
        if _debug_level:
            log.debug("%s%s", self.name, tuple(getattr(a, "shape", a) for a in arrays))
        output = self.forward(*arrays)
        if isinstance(output, np.generic):  # NumPy reductions return scalars; keep arrays throughout
            output = np.asarray(output)
        if _debug_level >= 2:
            _check_finite(self.name, output, arrays)
        result = Tensor(output)
        if any(needs):
            result.requires_grad = True
            result.creator = self
            self.parents = tuple([(x.creator or x) if need else None for x, need in zip(inputs, needs)])
            self.input_shapes = tuple([getattr(a, "shape", ()) for a in arrays])
            self.released = False
        else:
            self.saved = ()
        return result

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    def release(self) -> None:
        """Drop the saved arrays and the links to the rest of the graph."""
        self.saved = ()
        self.parents = ()
        self.released = True

    def forward(self, *arrays):
        raise NotImplementedError(f"{self.name} must implement forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{self.name} has no backward: it is not differentiable")


def _check_same_device(name: str, tensors: list) -> None:
    target = tensors[0].device
    for other in tensors[1:]:
        if other.device != target:
            raise DeviceError(
                f"{name}: inputs are on different devices ({target} and {other.device}); "
                "move them to one device with .to(...)"
            )


def _as_array(value, like):
    """A Tensor's array, or a constant (scalar, list, array) made into one on `like`'s device.

    An array already there is used as it is: class labels on a GPU never make a trip to the host.
    """
    if isinstance(value, Tensor):
        return value.data
    if value is None:
        return None
    xp = backend.get_array_module(like)
    if isinstance(value, (bool, int, float)) and np.issubdtype(like.dtype, np.floating):
        return xp.asarray(value, dtype=like.dtype)
    return np.asarray(value) if xp is np else backend.to_device(value, backend.device_of(like))


def _check_finite(name, output, arrays) -> None:
    xp = backend.get_array_module(output)
    if xp.issubdtype(output.dtype, xp.floating) and not bool(xp.isfinite(output).all()):
        shapes = ", ".join(str(tuple(a.shape)) for a in arrays if hasattr(a, "shape"))
        raise FloatingPointError(f"{name} produced NaN or infinity (inputs of shape {shapes})")


def tensor(data, requires_grad: bool = False, dtype=None, device: str | Device = "cpu") -> Tensor:
    """Make a Tensor from a Python number, nested list, NumPy/CuPy array or Tensor (copying it).

    Python floats become float32; a NumPy array keeps its dtype unless `dtype` says otherwise.
    """
    if isinstance(data, Tensor):
        data = data.data
    if backend.device_of(data).type != "cpu":
        data = backend.to_numpy(data)
    is_array = isinstance(data, np.ndarray)
    array = np.array(data, dtype=dtype, copy=True)
    if dtype is None and not is_array and array.dtype == np.float64:
        array = array.astype(np.float32)
    if requires_grad and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"only floating-point tensors can require gradients, not {array.dtype}")
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)
