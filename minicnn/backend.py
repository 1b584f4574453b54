"""Devices and the array module behind them: NumPy on the CPU, CuPy on NVIDIA GPUs.

Every op asks its inputs which array module (`xp`) to use, so one piece of code serves both
devices. CuPy is imported only when a GPU is actually asked for: `import minicnn` stays cheap
and works on machines without CUDA. Each Device hands out what it owns: its kernel backend
(`Device.kernels`, minicnn.kernels) and its random generator (`Device.generator`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from minicnn.distribution import install_command


CPU_ADVICE = "use device='cpu' (--device cpu)"  # in the library's words and the command line's


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed.

    `cause` says why a GPU cannot be used, in words that fit a caller who did not ask for one
    ("CuPy is not installed", CUDA's own error), so a report can say "no GPU here" and why; None
    for the other errors.
    """

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Device:
    """Where an array lives: `Device("cpu")` or `Device("cuda", 0)`."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    @property
    def kernels(self):
        """This device's kernel backend (minicnn.kernels): a `CpuBackend` or a `CudaBackend`, made on
        first use (importing CuPy for a GPU), then the same object."""
        backend = _kernels.get(self)
        if backend is None:
            module, name = ("cpu", "CpuBackend") if self.type == "cpu" else ("cuda", "CudaBackend")
            backend = _kernels[self] = getattr(importlib.import_module(f"minicnn.kernels.{module}"), name)()
        return backend

    @property
    def generator(self):
        """This device's random generator: NumPy's on the CPU, a `CounterStream` on a GPU. Seeded
        from `manual_seed` when it was called, else from fresh entropy; `get_rng_state` holds
        every device's."""
        generator = _generators.get(self)
        if generator is None:
            if self.type == "cpu":
                generator = np.random.default_rng(_seed)
            else:
                seed = _seed if _seed is not None else int(np.random.SeedSequence().entropy % 2**63)
                generator = CounterStream(self, seed)
            _generators[self] = generator
        return generator


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
            f"a CUDA device was requested but CuPy is not installed: install it with {install_command('cuda')}, "
            f"or {CPU_ADVICE}", cause="CuPy is not installed",
        ) from error


def check_cuda_device(target: Device):
    """Return cupy after making sure `target` names a GPU that exists.

    The DeviceError keeps CUDA's own words (its class and text, e.g. "CUDARuntimeError:
    cudaErrorInsufficientDriver: ..."), since "no GPU" and "a driver older than CuPy's CUDA runtime"
    call for different fixes.
    """
    cupy = cupy_module()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA runtime errors come in several CuPy classes
        cause = f"{type(error).__name__}: {error}"
        raise DeviceError(f"no usable CUDA GPU for device '{target}': {cause}; {CPU_ADVICE}", cause=cause) from error
    if target.index >= count:
        raise DeviceError(f"device '{target}' does not exist: this machine has {count} GPU(s)",
                          cause=f"this machine has {count} GPU(s)")
    return cupy


def gpu_unavailable_reason(target: str | Device = "cuda") -> str | None:
    """Why `target` cannot be used here (CuPy missing, no driver, a driver too old for CuPy's CUDA
    runtime, no such GPU), as check_cuda_device words it; None when it can.

    For whoever has to report a GPU that is not there rather than just skip: `pytest` under
    MINICNN_REQUIRE_GPU=1 and benchmarks/gpu_check.sh print it.
    """
    try:
        check_cuda_device(device(target))
    except DeviceError as error:
        return str(error)
    return None


def gpu_available(target: str | Device = "cuda") -> bool:
    """Whether CuPy is installed and `target` names a GPU this machine has (gpu_unavailable_reason
    says why not)."""
    return gpu_unavailable_reason(target) is None


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


_kernels: dict[Device, object] = {}
_seed: int | None = None
_generators: dict[Device, object] = {}


class CounterStream:
    """A GPU's random stream whose whole state is two integers, `{"seed": s, "draws": k}`.

    Draw k is cuRAND's Philox4x32-10 generator keyed with a hash of (s, k) (NumPy's SeedSequence)
    and started at offset 0, so draws are independent of each other, a checkpoint stores the stream
    as plain JSON, and restoring (s, k) replays exactly the draws that followed, whatever cuRAND does
    inside. CuPy's own generators keep their state in device memory that they do not export. Each
    draw re-keys one cuRAND generator (microseconds on the host, nothing to synchronise); drawing
    the masks with the CPU generator and copying them over would cost a host pass and a transfer
    per dropout layer and step.

    The cuRAND generator is made on the first draw (`_philox_uniform`): a stream can be created
    and restored from a checkpoint without CuPy, which is needed only to draw.
    """

    def __init__(self, target: Device, seed: int, draws: int = 0):
        self.target, self.seed, self.draws = target, int(seed), int(draws)
        self._uniform = None

    def random(self, shape, dtype="float64"):
        """Uniform [0, 1) values of `shape`, like numpy.random.Generator.random."""
        if self._uniform is None:
            self._uniform = _philox_uniform(self.target)
        key = int(np.random.SeedSequence([self.seed, self.draws]).generate_state(1, np.uint64)[0])
        self.draws += 1
        return self._uniform(key, shape, dtype)

    @property
    def state(self) -> dict:
        return {"seed": self.seed, "draws": self.draws}

    @state.setter
    def state(self, state: dict) -> None:
        self.seed, self.draws = int(state["seed"]), int(state["draws"])


def _philox_uniform(target: Device):
    """`uniform(key, shape, dtype)` on GPU `target`: cuRAND's Philox generator, keyed, from offset 0."""
    cupy = check_cuda_device(target)
    curand = importlib.import_module("cupy.cuda.curand")
    with cupy.cuda.Device(target.index):
        generator = cupy.random.RandomState(method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)

    def uniform(key: int, shape, dtype):
        with cupy.cuda.Device(target.index):
            generator.seed(key)
            return generator.random_sample(shape, dtype)

    return uniform


def manual_seed(seed: int) -> None:
    """Seed every random generator minicnn uses (initialisation, dropout, shuffling), on every device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def random_generator(target: str | Device = CPU):
    """`device(target).generator`: the random generator a device owns."""
    return device(target).generator


def get_rng_state() -> dict:
    """Every generator's state, by device (`{"cpu": ..., "cuda:0": {"seed": s, "draws": k}}`, plain
    JSON), for checkpoints: initialisation and dropout masks continue exactly where a resumed run
    left off, on every device."""
    states = {"cpu": CPU.generator.bit_generator.state}
    states.update((str(where), stream.state) for where, stream in _generators.items() if where != CPU)
    return states


def set_rng_state(state: dict) -> None:
    """Restore the generators from `get_rng_state()`; a GPU stream needs no GPU until it draws.

    The CPU generator's bare state, as checkpoints of older minicnn hold, restores the CPU only.
    """
    if "bit_generator" in state:
        state = {"cpu": state}
    for where, saved in state.items():
        if device(where) == CPU:
            CPU.generator.bit_generator.state = saved
        else:
            device(where).generator.state = saved
