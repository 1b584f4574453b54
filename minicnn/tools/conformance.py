"""The conformance check for plugin authors: `check(name)`, what `minicnn check NAME` runs.

It takes a registered layer or model, or a model spec file, through the steps every one should pass:
build, forward (finite float32 output), backward (a finite gradient for every parameter), gradcheck
in float64 with respect to the input and the parameters (minicnn.testing), a state_dict round trip
into a fresh instance, and CPU/GPU agreement when a GPU is usable (skipped, "no GPU here", otherwise).
It seeds minicnn's generators (`manual_seed`) as it goes, so its results repeat.

What it builds and feeds: a layer is built from its registration's `example` keyword arguments and
fed its `input_size` (the whole input, batch first); a model is built by its factory and fed a batch
of its registered (C, H, W). `options` and `input_size` override both, so a layer registered without
them (built with its defaults, fed (2, 3, 8, 8)) can still be checked on the input it takes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from minicnn import backend
from minicnn import functional as F
from minicnn.autograd import Tensor, no_grad
from minicnn.nn import Module
from minicnn.plugin.manager import create_model, model_entry, plugin_system
from minicnn.plugin.registry import RegistryError, did_you_mean
from minicnn.testing import GradcheckError, gradcheck
from minicnn.tools.spec import build_model, is_spec_path


# Small, so that a random direction rarely moves a ReLU or max-pool input across its kink in a large
# model; in float64 the round-off (about 1e-16 |L| / eps) stays far below gradcheck's tolerances.
_GRADCHECK_EPS = 1e-8
DEFAULT_LAYER_INPUT = (2, 3, 8, 8)  # what a layer registered without input_size is fed


class ConformanceError(AssertionError):
    """A layer or model broke one of the conformance rules; the message says which and how."""


@dataclass
class Step:
    """One conformance step: status is "passed", "failed" or "skipped" (with the reason in detail)."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """A skipped step (no GPU here, or an earlier step failed) does not fail the check."""
        return self.status != "failed"

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "seconds": self.seconds}


@dataclass
class ConformanceReport:
    """What `check` found for one registered layer or model, step by step."""

    name: str
    kind: str
    plugin: str
    steps: list[Step] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(step.passed for step in self.steps)

    def failures(self) -> list[Step]:
        return [step for step in self.steps if not step.passed]

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "plugin": self.plugin, "passed": self.passed,
                "steps": [step.as_dict() for step in self.steps]}


class _Skip(Exception):
    """Raised by a step that cannot run here; its message is the reason."""


def check(name: str, seed: int = 0, *, input_size: tuple | None = None,
          options: dict | None = None) -> ConformanceReport:
    """Check the model spec file `name` (a .toml path), else the model registered as `name`, else the
    layer of that name.

    input_size: the input to feed, batch first ((N, C, H, W) for an image layer or model; (C, H, W)
    for a model means a batch of two); None: the registered one. options: keyword arguments for the
    model's factory or the layer's class (over its `example`); a spec takes none.
    Raises RegistryError, with the closest names, when neither registry knows `name`.
    """
    if is_spec_path(name):
        if options:
            raise ValueError(f"model spec '{name}' takes no model options ({', '.join(options)}): "
                             "edit its layers instead")
        return check_spec(name, seed=seed, input_size=input_size)
    system = plugin_system()
    if name in system.registries["models"]:
        return check_model(name, seed=seed, input_size=input_size, options=options)
    if name in system.registries["layers"]:
        return check_layer(name, seed=seed, input_size=input_size, options=options)
    known = system.registries["models"].names() + system.registries["layers"].names()
    raise RegistryError(
        f"unknown model or layer '{name}'{did_you_mean(name, known)} (mc.list_models() and mc.list_layers() list them)"
    )


def check_layer(name: str, max_elements: int = 256, seed: int = 0, *, input_size: tuple | None = None,
                options: dict | None = None) -> ConformanceReport:
    """Check a registered layer, built from its registration's `example` keyword arguments updated
    with `options`, and fed a random input of `input_size`, else its registered one (default
    (2, 3, 8, 8))."""
    entry = plugin_system().registries["layers"].get(name)
    arguments = {**entry.example, **(options or {})}
    registered = tuple(entry.input_size or DEFAULT_LAYER_INPUT)
    hints = {}
    if input_size is None and registered == DEFAULT_LAYER_INPUT:
        hints["forward"] = (f"it was fed {DEFAULT_LAYER_INPUT}, what a layer registered without input_size gets: "
                            f"pass the shape it takes (`minicnn check {name} --input-size N,C,H,W`, or "
                            "check(..., input_size=...)), or register it with input_size=")
    size = _shape(input_size) if input_size is not None else registered
    return _Conformance((entry.name, entry.kind, entry.plugin), lambda: entry.target(**arguments), size, max_elements,
                        seed, hints).run()


def check_model(name: str, batch_size: int = 2, max_elements: int = 16, seed: int = 0, *,
                input_size: tuple | None = None, options: dict | None = None) -> ConformanceReport:
    """Check a registered model, built with `options` (its defaults where none), on a batch of its
    registered input size (C, H, W), or of `input_size`.

    max_elements is small so that large models stay quick: the element-wise gradient check covers
    the small tensors (biases, the last layers), the directional check covers everything.
    """
    entry = model_entry(name)
    size = _batch(input_size if input_size is not None else entry.input_size, batch_size)
    options = dict(options or {})
    return _Conformance((entry.name, entry.kind, entry.plugin), lambda: create_model(name, **options), size,
                        max_elements, seed).run()


def check_spec(path, batch_size: int = 2, max_elements: int = 16, seed: int = 0, *,
               input_size: tuple | None = None) -> ConformanceReport:
    """Check the model a spec file describes (minicnn.tools.spec) on a batch of its `input_size`, or
    of `input_size` given here; raises SpecError when the spec cannot be read or built, and
    ValueError when neither names an input size."""
    size = input_size if input_size is not None else build_model(path).input_size
    if size is None:
        raise ValueError(f"model spec '{path}' names no input_size: pass the input to feed (`minicnn check {path} "
                         "--input-size N,C,H,W`), or add input_size = [C, H, W] to the spec")
    return _Conformance((str(path), "model spec", ""), lambda: build_model(path), _batch(size, batch_size),
                        max_elements, seed).run()


def _shape(size) -> tuple:
    """A whole input shape: positive integers, at least one."""
    shape = tuple(size) if isinstance(size, (tuple, list)) else ()
    if not shape or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"input size must be positive whole numbers, batch first, such as (2, 1, 28, 28), "
                         f"got {size!r}")
    return tuple(int(n) for n in shape)


def _batch(size, batch_size: int) -> tuple:
    """A model's input shape: (C, H, W) gets a batch of `batch_size`; any other shape is taken whole."""
    shape = _shape(size)
    return (batch_size, *shape) if len(shape) == 3 else shape


class _Conformance:
    """The steps of one check, in order; each catches its own errors so the next ones still run."""

    def __init__(self, what: tuple, build, input_size: tuple, max_elements: int, seed: int, hints: dict | None = None):
        """what: (name, kind, plugin) for the report; hints: step name -> what to do, added to that
        step's detail when it fails."""
        (self.name, self.kind, self.plugin), self.build_module = what, build
        self.max_elements, self.seed, self.hints = max_elements, seed, hints or {}
        self.input_size = tuple(input_size)
        self.x = np.random.default_rng(seed).standard_normal(self.input_size).astype(np.float32)
        self.module = self.input = self.outputs = None

    def run(self) -> ConformanceReport:
        report = ConformanceReport(self.name, self.kind, self.plugin)
        steps = (("build", self.build), ("forward", self.forward), ("backward", self.backward),
                 ("gradcheck", self.gradcheck), ("state_dict", self.state_dict), ("cpu-gpu", self.cpu_gpu))
        for name, step in steps:
            start = time.perf_counter()
            try:
                status, detail = "passed", step()
            except _Skip as reason:
                status, detail = "skipped", str(reason)
            except (ConformanceError, GradcheckError) as error:
                status, detail = "failed", str(error)
            except Exception as error:
                status, detail = "failed", f"{type(error).__name__}: {error}"
            if status == "failed" and name in self.hints:
                detail = f"{detail}; {self.hints[name]}"
            report.steps.append(Step(name, status, detail, time.perf_counter() - start))
        return report

    def make(self, seed: int) -> Module:
        backend.manual_seed(seed)
        module = self.build_module()
        if not isinstance(module, Module):
            raise ConformanceError(f"building {self.kind} '{self.name}' returned a "
                                   f"{type(module).__name__}, not a minicnn.nn.Module")
        return module

    def build(self) -> str:
        self.module = self.make(self.seed)
        return f"{type(self.module).__name__}, {self.module.num_parameters():,} parameters"

    def forward(self) -> str:
        if self.module is None:
            raise _Skip("needs the build step")
        self.module.train()
        backend.manual_seed(self.seed)
        self.input = Tensor(self.x.copy(), requires_grad=True)
        outputs = _output_tensors(self.module(self.input))
        for i, out in enumerate(outputs):
            where = f"output {i}" if len(outputs) > 1 else "the output"
            if out.dtype != np.float32:
                raise ConformanceError(f"{where} is {out.dtype} for a float32 input and float32 parameters; keep float32")
            if not bool(np.isfinite(out.numpy()).all()):
                raise ConformanceError(f"{where} (shape {out.shape}) holds NaN or infinity for a standard normal input")
        self.outputs = outputs
        return f"input {self.input_size} -> " + ", ".join(f"{out.shape}" for out in outputs) + " float32"

    def backward(self) -> str:
        if self.outputs is None:
            raise _Skip("needs the forward step")
        self.module.zero_grad()
        _weighted_sum(self.outputs, np.random.default_rng(self.seed + 1)).backward()
        problems = []
        for name, value in (("input", self.input), *self.module.named_parameters()):
            if not value.requires_grad:
                continue
            if value.grad is None:
                problems.append(f"'{name}' got no gradient")
            elif value.grad.shape != value.shape:
                problems.append(f"'{name}' got a gradient of shape {value.grad.shape} for shape {value.shape}")
            elif not bool(np.isfinite(value.grad.numpy()).all()):
                problems.append(f"'{name}' got NaN or infinity in its gradient")
        if problems:
            raise ConformanceError("backward: " + "; ".join(problems))
        count = sum(1 for p in self.module.parameters() if p.requires_grad)
        return f"finite gradients of the right shape for the input and {_plural(count, 'parameter')}"

    def gradcheck(self) -> str:
        if self.module is None:
            raise _Skip("needs the build step")
        module = self.make(self.seed).double().train()
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        slots = {id(p): [] for _, p in named}
        for owner in module.modules():
            for key, value in owner._parameters.items():
                if value is not None and id(value) in slots:
                    slots[id(value)].append((owner, key))

        def fn(x, *values):
            """The module's output with gradcheck's float64 copies in place of its parameters."""
            for (_, p), value in zip(named, values):
                for owner, key in slots[id(p)]:
                    owner._parameters[key] = value
            try:
                backend.manual_seed(self.seed)  # the same dropout mask on every call
                return _single_tensor(_output_tensors(module(x)))
            finally:
                for _, p in named:
                    for owner, key in slots[id(p)]:
                        owner._parameters[key] = p

        labels = ["the input", *(f"parameter '{name}'" for name, _ in named)]
        summary = (f"float64, the input and {_plural(len(named), 'parameter')}: element-wise for tensors of at most "
                   f"{self.max_elements} elements, one random direction over all")
        inputs = [self.x, *(p for _, p in named)]
        try:
            gradcheck(fn, inputs, eps=_GRADCHECK_EPS, max_elements=self.max_elements, seed=self.seed)
        except GradcheckError as error:
            first = re.sub(r"\binput (\d+)\b", lambda m: labels[int(m.group(1))], str(error))
            try:  # a wrong backward fails for any weighting and direction; a kink crossing does not repeat
                gradcheck(fn, inputs, eps=_GRADCHECK_EPS, max_elements=self.max_elements, seed=self.seed + 1)
            except GradcheckError:
                raise GradcheckError(first) from None
            return f"{summary} (passed on a second weighting and direction after: {first})"
        return summary

    def state_dict(self) -> str:
        if self.module is None:
            raise _Skip("needs the build step")
        state = self.module.state_dict()
        fresh = self.make(self.seed + 1)
        fresh.load_state_dict(state)
        self.module.eval()
        fresh.eval()
        try:
            with no_grad():
                expected = _output_tensors(self.module(Tensor(self.x.copy())))
                loaded = _output_tensors(fresh(Tensor(self.x.copy())))
        finally:
            self.module.train()
        for i, (a, b) in enumerate(zip(expected, loaded)):
            if not np.allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6):
                difference = float(np.abs(a.numpy() - b.numpy()).max())
                raise ConformanceError(
                    f"output {i} in eval mode differs by up to {difference:.3g} after loading the state_dict into "
                    "a fresh instance: keep every trained value in a Parameter or a buffer (register_buffer)"
                )
        return f"{_plural(len(state), 'tensor')} saved and loaded into a fresh instance; the same output in eval mode"

    def cpu_gpu(self) -> str:
        if self.module is None:
            raise _Skip("needs the build step")
        gpu = backend.Device("cuda", 0)
        try:
            backend.check_cuda_device(gpu)
        except backend.DeviceError as error:
            raise _Skip(f"no GPU here ({error.cause or error})") from None
        results = []
        state = self.module.state_dict()
        for target in (backend.CPU, gpu):
            module = self.make(self.seed + 1)
            module.load_state_dict(state)
            module.to(target).eval()
            x = Tensor(backend.to_device(self.x.copy(), target), requires_grad=True)
            outputs = _output_tensors(module(x))
            _weighted_sum(outputs, np.random.default_rng(self.seed + 1)).backward()
            values = [("output", out) for out in outputs] + [("input gradient", x.grad)]
            values += [(f"gradient of '{name}'", p.grad) for name, p in module.named_parameters() if p.grad is not None]
            results.append(values)
        for (what, on_cpu), (_, on_gpu) in zip(*results):
            a, b = on_cpu.numpy(), on_gpu.numpy()
            scale = max(1.0, float(np.abs(a).max(initial=0.0)))
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3, atol=1e-4 * scale):
                raise ConformanceError(f"{what} differs between cpu and {gpu} (eval mode): "
                                       f"max difference {float(np.abs(a - b).max()):.3g}, scale {scale:.3g}")
        return f"outputs and {_plural(len(results[0]) - len(outputs), 'gradient')} agree between cpu and {gpu} in eval mode"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _output_tensors(output) -> list:
    """A module's output as a list of Tensors (some models return several, e.g. auxiliary logits)."""
    outputs = list(output) if isinstance(output, (tuple, list)) else [output]
    for out in outputs:
        if not isinstance(out, Tensor):
            raise ConformanceError(f"forward returned a {type(out).__name__}, not a Tensor (or a tuple of Tensors)")
    return outputs


def _single_tensor(outputs: list) -> Tensor:
    return outputs[0] if len(outputs) == 1 else F.cat([out.reshape(-1) for out in outputs])


def _weighted_sum(outputs: list, rng) -> Tensor:
    """Σ u * output with fixed random weights u, so every output element gets its own gradient."""
    total = None
    for out in outputs:
        weights = backend.to_device(rng.standard_normal(out.shape).astype(out.dtype), out.device)
        term = (out * Tensor(weights)).sum()
        total = term if total is None else total + term
    return total
