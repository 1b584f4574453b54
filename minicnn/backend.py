"""Devices and the array module behind them: NumPy on the CPU, CuPy on NVIDIA GPUs.

Every op asks its inputs which array module (`xp`) to use, so one piece of code serves both
devices. CuPy is imported only when a GPU is actually asked for: `import minicnn` stays cheap
and works on machines without CUDA.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed."""


@dataclass(frozen=True)
class Device:
    """Where an array lives: `Device("cpu")` or `Device("cuda", 0)`."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


CPU = Device("cpu")


def device(spec: str | Device | None = None) -> Device:
    """Parse `"cpu"`, `"cuda"` or `"cuda:N"` (or pass a Device through)."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    kind, _, index = str(spec).strip().lower().partition(":")
    if kind == "cpu" and not index:
        return CPU
    if kind in ("cuda", "gpu"):
        if index and not index.isdigit():
            raise DeviceError(f"bad device '{spec}': use 'cpu', 'cuda' or 'cuda:N' with N a GPU number")
        return Device("cuda", int(index) if index else 0)
    raise DeviceError(f"unknown device '{spec}': use 'cpu', 'cuda' or 'cuda:N'")


def _is_cupy_array(array) -> bool:
    kind = type(array)
    return kind is not np.ndarray and kind.__module__.partition(".")[0] == "cupy"  # NumPy's first: the usual case


def get_array_module(*arrays):
    """The module (numpy or cupy) that owns these arrays; numpy for anything that is not CuPy's."""
    for array in arrays:
        if _is_cupy_array(array):
            return importlib.import_module("cupy")
    return np


def device_of(array) -> Device:
    """The Device an array lives on."""
    if _is_cupy_array(array):
        return Device("cuda", int(array.device.id))
    return CPU


def cupy_module():
    """Import CuPy on first use, with an error that says what to do when it is missing."""
    try:
        return importlib.import_module("cupy")
    except ImportError as error:
        raise DeviceError(
            "a CUDA device was requested but CuPy is not installed: "
            "install it with `pip install 'minicnn[cuda]'`, or use device='cpu'"
        ) from error


def check_cuda_device(target: Device):
    """Return cupy after making sure `target` names a GPU that exists."""
    cupy = cupy_module()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA runtime errors come in several CuPy classes
        raise DeviceError(f"no usable CUDA GPU for device '{target}': {error}; use device='cpu'") from error
    if target.index >= count:
        raise DeviceError(f"device '{target}' does not exist: this machine has {count} GPU(s)")
    return cupy


def gpu_available(target: str | Device = "cuda") -> bool:
    """Whether CuPy is installed and `target` names a GPU this machine has."""
    try:
        check_cuda_device(device(target))
    except DeviceError:
        return False
    return True


def to_device(array, target: str | Device):
    """Copy `array` to `target` (no copy when it is already there)."""
    target = device(target)
    if device_of(array) == target:
        return array
    if target.type == "cpu":
        return array.get()
    cupy = check_cuda_device(target)
    with cupy.cuda.Device(target.index):
        return cupy.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy array with the same values, copied from the GPU when needed."""
    return array.get() if _is_cupy_array(array) else np.asarray(array)


def scatter_add(array, indices, values) -> None:
    """`array[indices] += values` with repeated indices adding up (unbuffered), on either device."""
    if _is_cupy_array(array):
        importlib.import_module("cupyx").scatter_add(array, indices, values)
    else:
        np.add.at(array, indices, values)


_seed: int | None = None
_generators: dict[Device, object] = {}


def manual_seed(seed: int) -> None:
    """Seed every random generator minicnn uses (initialisation, dropout, shuffling), on every device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def random_generator(target: str | Device = CPU):
    """The random generator for a device: NumPy's on the CPU, CuPy's on a GPU.

    Seeded from `manual_seed` when it was called, else from fresh entropy.
    """
    target = device(target)
    if target not in _generators:
        if target.type == "cpu":
            _generators[target] = np.random.default_rng(_seed)
        else:
            cupy = check_cuda_device(target)
            with cupy.cuda.Device(target.index):
                seed = _seed if _seed is not None else int(np.random.SeedSequence().entropy % 2**63)
                _generators[target] = cupy.random.default_rng(seed)
    return _generators[target]


def get_rng_state() -> dict:
    """The CPU generator's state (a JSON-friendly dict), for checkpoints: dropout masks and
    initialisation continue exactly where a resumed run left off."""
    return random_generator(CPU).bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore the CPU generator from `get_rng_state()`."""
    random_generator(CPU).bit_generator.state = state
