"""`Module` and `Parameter`: layers that own state, with PyTorch's conventions.

A Module keeps its parameters (Tensors to train), buffers (state that is saved but not trained, such
as batch norm's running statistics) and child modules in insertion order, so `named_parameters()`
and `state_dict()` list them in a fixed, PyTorch-compatible dotted order (`features.0.weight`).
The computation itself lives in `minicnn.functional`; a layer only holds state and calls it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: assigning one to a module attribute registers it."""

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_hook_keys = itertools.count()  # never reused, so a stale handle cannot remove a newer hook


class RemovableHandle:
    """Returned by `register_forward_hook`; `remove()` unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and model: subclass it, set parameters and sub-modules in
    `__init__`, and write `forward`. Calling the module runs `forward` (and any forward hooks)."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                hook(self, args, output)
        return output

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call `hook(module, inputs, output)` after every forward; used by `minicnn summary`."""
        key = next(_hook_keys)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    # -- registration ---------------------------------------------------------------------------

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
        if name in self._buffers and (value is None or isinstance(value, Tensor)) and not isinstance(value, Parameter):
            self._buffers[name] = value  # a buffer stays a buffer, as in PyTorch
            return
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        for store in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(store, {})
            if name in found:
                return found[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value) -> None:
        """State that belongs in `state_dict()` and moves with `to()` but is not trained."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        self._buffers[name] = value

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    # -- traversal ------------------------------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first, each once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{key}" if name else key, child) for key, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in registration order; shared parameters appear once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict:
        """Every parameter and buffer by dotted name, as NumPy arrays (copies, on the CPU).

        Order per module: its parameters, then its buffers, then its children, as in PyTorch.
        """
        return OrderedDict((name, np.array(value.numpy(), copy=True)) for name, value in self._state_items())

    def _state_items(self, prefix: str = ""):
        """(dotted name, Tensor) of every parameter and buffer under every name it is reachable by:
        a module used twice is saved under both names, as in PyTorch."""
        for store in (self._parameters, self._buffers):
            for name, value in store.items():
                if value is not None:
                    yield prefix + name, value
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    def load_state_dict(self, state: dict, strict: bool = True) -> tuple[list, list]:
        """Copy arrays (NumPy, CuPy or Tensors) into this module's parameters and buffers in place.

        Shapes must match. With strict=True, missing and unexpected names are an error that lists
        them; otherwise they are returned as (missing, unexpected).
        """
        own = OrderedDict(self._state_items())
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}; pass strict=False to load what matches"
            )
        for name, target in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else backend.to_numpy(value)
            if tuple(value.shape) != target.shape:
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: '{name}' has shape {tuple(value.shape)} "
                    f"in the state but {target.shape} in the model"
                )
            xp = backend.get_array_module(target.data)
            target.data[...] = xp.asarray(value.astype(target.dtype, copy=False))
        return missing, unexpected

    # -- modes, devices, dtypes -----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch norm uses batch statistics) for this and every child."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """`with model.evaluating():` eval mode for the block, then every submodule's own
        training flag back as it was, also when the block raises."""
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for module, training in modes:
                object.__setattr__(module, "training", training)

    def _apply(self, convert: Callable) -> Module:
        """Replace the array of every parameter and buffer by convert(array), in place, so
        optimizers holding the Parameter objects keep working."""
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for value in store.values():
                    if value is not None:
                        value.data = convert(value.data)
                        if value.grad is not None:
                            value.grad.data = convert(value.grad.data)
        return self

    def to(self, device) -> Module:
        """Move every parameter and buffer to `device` ("cpu", "cuda", "cuda:N")."""
        target = backend.device(device)
        return self._apply(lambda array: backend.to_device(array, target))

    def double(self) -> Module:
        """Floating-point parameters and buffers to float64 (gradient checks)."""
        return self._apply(lambda a: a.astype("float64") if a.dtype.kind == "f" else a)

    def float(self) -> Module:
        return self._apply(lambda a: a.astype("float32") if a.dtype.kind == "f" else a)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- display --------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The settings shown between the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    # -- summary support ------------------------------------------------------------------------

    def multiply_adds(self, input_shape: tuple, output_shape: tuple) -> int:
        """Multiply-accumulate operations of one forward pass of this layer alone (0 unless a
        layer counts its own); `minicnn summary` adds them up."""
        return 0
