"""The conformance check for plugin authors: `check(name)`, what `minicnn check NAME` runs.

It takes a registered layer or model through the steps every one should pass: build, forward
(finite float32 output), backward (a finite gradient for every parameter), gradcheck in float64 with
respect to the input and the parameters (minicnn.testing), a state_dict round trip into a fresh
instance, and CPU/GPU agreement when a GPU is usable (skipped otherwise). It seeds minicnn's
generators (`manual_seed`) as it goes, so its results repeat.
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


# Small, so that a random direction rarely moves a ReLU or max-pool input across its kink in a large
# model; in float64 the round-off (about 1e-16 |L| / eps) stays far below gradcheck's tolerances.
_GRADCHECK_EPS = 1e-8


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


def check(name: str, seed: int = 0) -> ConformanceReport:
    """Check the model registered as `name`, or else the layer of that name.

    Raises RegistryError, with the closest names, when neither registry knows `name`.
    """
    system = plugin_system()
    if name in system.registries["models"]:
        return check_model(name, seed=seed)
    if name in system.registries["layers"]:
        return check_layer(name, seed=seed)
    known = system.registries["models"].names() + system.registries["layers"].names()
    raise RegistryError(
        f"unknown model or layer '{name}'{did_you_mean(name, known)} (mc.list_models() and mc.list_layers() list them)"
    )


def check_layer(name: str, max_elements: int = 256, seed: int = 0) -> ConformanceReport:
    """Check a registered layer, built from its registration's `example` keyword arguments and fed
    a random input of its `input_size` (default (2, 3, 8, 8))."""
    entry = plugin_system().registries["layers"].get(name)
    return _Conformance(entry, lambda: entry.target(**entry.example), entry.input_size, max_elements, seed).run()


def check_model(name: str, batch_size: int = 2, max_elements: int = 16, seed: int = 0) -> ConformanceReport:
    """Check a registered model with its default arguments on a batch of its `input_size` (C, H, W).

    max_elements is small so that large models stay quick: the element-wise gradient check covers
    the small tensors (biases, the last layers), the directional check covers everything.
    """
    entry = model_entry(name)
    input_size = (batch_size, *entry.input_size)
    return _Conformance(entry, lambda: create_model(name), input_size, max_elements, seed).run()


class _Conformance:
    """The steps of one check, in order; each catches its own errors so the next ones still run."""

    def __init__(self, entry, build, input_size: tuple, max_elements: int, seed: int):
        self.entry, self.build_module, self.max_elements, self.seed = entry, build, max_elements, seed
        self.input_size = tuple(input_size)
        self.x = np.random.default_rng(seed).standard_normal(self.input_size).astype(np.float32)
        self.module = self.input = self.outputs = None

    def run(self) -> ConformanceReport:
        report = ConformanceReport(self.entry.name, self.entry.kind, self.entry.plugin)
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
            report.steps.append(Step(name, status, detail, time.perf_counter() - start))
        return report

    def make(self, seed: int) -> Module:
        backend.manual_seed(seed)
        module = self.build_module()
        if not isinstance(module, Module):
            raise ConformanceError(f"building {self.entry.kind} '{self.entry.name}' returned a "
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
            raise _Skip(f"no usable GPU: {error}") from None
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
