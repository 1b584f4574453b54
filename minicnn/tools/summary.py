"""Per-layer summary of a model: output shape, parameters, multiply-adds and receptive field.

`summarize(model, (C, H, W))` runs one forward pass on a batch of one zero image, under `no_grad`
and in eval mode (so batch norm's running statistics are left alone), with a forward hook on every
leaf module (one without children). Each call of a leaf is one row, in execution order. Nothing is
printed: `minicnn summary` renders the result.

Receptive field: the (height, width) of the input window that one output position depends on,
including any padding. Every array carries (rf, jump), jump being the input-pixel distance between
two neighbouring positions; the input starts at rf = jump = 1. Along each axis:
- Conv2d, MaxPool2d, AvgPool2d (kernel k, stride s, dilation d): rf_out = rf_in + (k-1)*d*jump_in,
  jump_out = jump_in*s. Padding moves the window, not its size.
- AdaptiveAvgPool2d: a window of its largest bin, stepping by its largest bin start step (exact when
  the output size divides the input size, where it is average pooling with k = s = in/out; a global
  pool thus sees the whole map).
- Linear on a flattened (N, F) input: every output sees every position of the map that was
  flattened, so rf grows by (grid-1)*jump and the grid becomes 1x1 (LeNet's F5 sees 32x32, the
  padded input).
- any other layer keeps its input's field.
A leaf whose input was made outside every leaf (by F.cat or F.add in a forward, say) gets the
largest field seen so far. That is right for Inception's concatenation and ResNet's addition: their
output depends on every branch, so its field is the largest branch's, and as fields only grow along
a path, no earlier array has a larger one. (An array that the model reshapes itself keeps that
rule too; a model that crops or mixes positions in its own forward is beyond it.)
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor, no_grad
from minicnn.functional.sizes import pair
from minicnn.nn import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Linear, MaxPool2d, Module


class SummaryError(ValueError):
    """The model could not run on the requested input size; the message names the layer."""


@dataclass(frozen=True)
class LayerRow:
    """One call of one leaf module."""

    name: str                 # dotted module name, e.g. "features.0"
    type: str                 # class name, e.g. "Conv2d"
    output_shape: tuple       # without the batch axis, e.g. (6, 28, 28)
    parameters: int           # of this module; 0 on the second and later calls of a module
    multiply_adds: int        # module.multiply_adds(input shape, output shape), both with the batch axis of 1
    receptive_field: tuple[int, int]  # (height, width) in input pixels


@dataclass(frozen=True)
class ModelSummary:
    """The rows and the totals; `parameters` counts shared parameters once (rows may repeat them)."""

    model: str
    input_size: tuple
    rows: list[LayerRow]
    output_shape: tuple
    parameters: int
    trainable_parameters: int
    multiply_adds: int

    def as_dict(self) -> dict:
        """Plain types only, for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class _Field:
    size: tuple   # receptive field (h, w)
    jump: tuple   # input pixels between neighbouring positions (h, w)
    grid: tuple   # spatial size of the map whose positions these are (h, w)


def summarize(model: Module, input_size, fix: str = "pass the input size the model was built for") -> ModelSummary:
    """Run `model` once on a zero batch of shape (1, *input_size) and describe every leaf call.

    input_size: (C, H, W), positive integers. The model's parameters' device is used; its
    train/eval modes are restored afterwards. Raises SummaryError when the forward fails, naming
    the layer and ending with `fix`, what the caller's user should do.
    """
    input_size = _check_input_size(input_size)
    leaves = [(name or type(m).__name__, m) for name, m in model.named_modules() if next(m.children(), None) is None]
    tracker = _Tracker(model, input_size, leaves)
    handles = [m.register_forward_hook(tracker.hook) for _, m in leaves]
    first = next(model.parameters(), None)
    device = first.device if first is not None else backend.device("cpu")
    x = Tensor(backend.to_device(np.zeros((1, *input_size), dtype=np.float32), device))
    tracker.start(x)
    try:
        with model.evaluating(), no_grad():
            output = model(x)
    except Exception as error:
        raise SummaryError(f"{tracker.failure(error)}; {fix}") from error
    finally:
        for handle in handles:
            handle.remove()
    return ModelSummary(
        model=type(model).__name__,
        input_size=input_size,
        rows=tracker.rows,
        output_shape=_shape(output),
        parameters=model.num_parameters(),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        multiply_adds=sum(row.multiply_adds for row in tracker.rows),
    )


class _Tracker:
    """The forward hook's state: the rows so far and the field of every array a leaf produced."""

    def __init__(self, model: Module, input_size: tuple, leaves: list):
        self.model, self.input_size = model, input_size
        self.leaves = {id(m): m for _, m in leaves}
        self.names = {id(m): name for name, m in leaves}
        self.rows: list[LayerRow] = []
        self.fields: dict[int, tuple[Tensor, _Field]] = {}  # id -> (the array, kept alive so ids stay unique; field)
        self.counted: set[int] = set()

    def start(self, x: Tensor) -> None:
        self.fields[id(x)] = (x, _Field((1, 1), (1, 1), tuple(x.shape[2:])))

    def hook(self, module: Module, inputs: tuple, output) -> None:
        x = next((a for a in inputs if isinstance(a, Tensor)), None)
        field = _output_field(module, x, output, self._field_of(x))
        for tensor in _tensors(output):
            self.fields[id(tensor)] = (tensor, field)
        parameters = 0
        if id(module) not in self.counted:
            self.counted.add(id(module))
            parameters = module.num_parameters()
        input_shape = tuple(x.shape) if x is not None else ()
        output_shape = tuple(output.shape) if isinstance(output, Tensor) else ()
        self.rows.append(LayerRow(
            name=self.names[id(module)], type=type(module).__name__, output_shape=_shape(output),
            parameters=parameters, multiply_adds=int(module.multiply_adds(input_shape, output_shape)),
            receptive_field=field.size,
        ))

    def _field_of(self, x) -> _Field:
        """The field of a leaf's input; for an array no leaf made, the largest field so far."""
        if x is not None and id(x) in self.fields:
            return self.fields[id(x)][1]
        largest = max(reversed([f for _, f in self.fields.values()]), key=lambda f: f.size[0] * f.size[1])
        if x is not None and x.ndim == 4:
            return _Field(largest.size, largest.jump, tuple(x.shape[2:]))
        return largest

    def failure(self, error: Exception) -> str:
        """Say which layer failed (the innermost leaf in the traceback) and what ran before it."""
        failed = None
        trace = error.__traceback__
        while trace is not None:
            owner = trace.tb_frame.f_locals.get("self")
            if owner is not None and self.leaves.get(id(owner)) is owner:
                failed = owner
            trace = trace.tb_next
        size = "x".join(map(str, self.input_size))
        after = ""
        if self.rows:
            last = self.rows[-1]
            after = f" after '{last.name}' ({last.type}) gave {_format_shape(last.output_shape)}"
        if failed is not None:
            layer = f"layer '{self.names[id(failed)]}' ({type(failed).__name__})"
            where = f"{layer} failed{after}" if after else f"its first {layer} failed"
        else:
            where = "it failed" + (after or " before any layer ran")
        return (
            f"{type(self.model).__name__} cannot run on input {size} (C, H, W): {where}: "
            f"{type(error).__name__}: {error}"
        )


def _output_field(module: Module, x, output, field: _Field) -> _Field:
    """The receptive field of `module`'s output, from its input's (rules in the module docstring)."""
    if isinstance(module, (Conv2d, MaxPool2d, AvgPool2d)):
        kernel = pair(module.kernel_size)
        stride = kernel if module.stride is None else pair(module.stride)
        dilation = pair(getattr(module, "dilation", 1))
    elif isinstance(module, AdaptiveAvgPool2d) and isinstance(output, Tensor) and output.ndim == 4:
        kernel, stride = zip(*(_adaptive_window(n, o) for n, o in zip(x.shape[2:], output.shape[2:])))
        dilation = (1, 1)
    elif isinstance(module, Linear) and x is not None and x.ndim == 2:
        size = tuple(r + (g - 1) * j for r, g, j in zip(field.size, field.grid, field.jump))
        return _Field(size, field.jump, (1, 1))
    else:
        return field
    size = tuple(r + (k - 1) * d * j for r, k, d, j in zip(field.size, kernel, dilation, field.jump))
    jump = tuple(j * s for j, s in zip(field.jump, stride))
    return _Field(size, jump, tuple(output.shape[2:]))


def _adaptive_window(size: int, out: int) -> tuple[int, int]:
    """(largest bin, largest step between bin starts) of adaptive pooling from `size` to `out` cells."""
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    steps = [b - a for a, b in zip(starts, starts[1:])] or [1]
    return max(e - s for s, e in zip(starts, ends)), max(steps)


def _tensors(value) -> list:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, Tensor)]
    return []


def _shape(value) -> tuple:
    """Shape without the batch axis; a tuple of shapes for a module returning several arrays."""
    if isinstance(value, Tensor):
        return tuple(value.shape[1:])
    return tuple(tuple(t.shape[1:]) for t in _tensors(value))


def _format_shape(shape: tuple) -> str:
    return "x".join(map(str, shape)) if all(isinstance(n, int) for n in shape) else str(shape)


def _check_input_size(input_size) -> tuple:
    size = tuple(input_size) if isinstance(input_size, (tuple, list)) else None
    if not size or len(size) != 3 or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in size):
        raise SummaryError(f"input size must be (C, H, W), three positive integers such as (1, 28, 28), got {input_size!r}")
    return tuple(int(n) for n in size)
