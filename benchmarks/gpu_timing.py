"""How benchmarks/gpu.py measures: the two frameworks behind one interface, PyTorch's TF32 switch,
the timing windows, device synchronization, and errors recorded instead of raised.

Timing: untimed warm-up calls, then one call that sizes a window (enough calls to fill the least
window time), then the timed windows. The device is synchronized before each window's clock stops,
so a window holds the GPU work and the Python overhead alike; the median window's milliseconds per
call is reported.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np

import minicnn as mc
import minicnn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None


def minicnn_api(device: str) -> SimpleNamespace:
    """minicnn's tensors (from NumPy arrays, on `device`) and ops, under the names torch_api uses."""
    return SimpleNamespace(
        tensor=lambda a, grad=False: mc.tensor(a, requires_grad=grad, device=device),
        conv2d=F.conv2d, max_pool2d=F.max_pool2d, avg_pool2d=F.avg_pool2d, numpy=lambda t: t.numpy(),
    )


def torch_api(device: str) -> SimpleNamespace:
    """PyTorch's tensors and ops, called exactly as minicnn's: tensor(array, grad), conv2d(x, w, b, stride, padding)."""
    return SimpleNamespace(
        tensor=lambda a, grad=False: torch.from_numpy(a).to(device).requires_grad_(grad),
        conv2d=TF.conv2d, max_pool2d=TF.max_pool2d, avg_pool2d=TF.avg_pool2d,
        numpy=lambda t: t.detach().cpu().numpy(),
    )


@contextlib.contextmanager
def tf32(enabled):
    """TF32 on or off for cuDNN convolutions and cuBLAS products (None: leave as is, on the CPU)."""
    if enabled is None or torch is None:
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


class Bench:
    """The device, its peers and the timing settings every row shares."""

    def __init__(self, args):
        self.device, self.quick = args.device, args.quick
        self.windows = args.windows or (3 if args.quick else 5)
        self.window_s = (args.window_ms or (20 if args.quick else 50)) / 1e3
        self.warmup = 1 if args.quick else 2
        self.deadline = None if args.time_budget is None else time.perf_counter() + args.time_budget
        self.mine = minicnn_api(self.device)
        self.torch = torch_api(self.device) if torch is not None else None
        if torch is None:
            self.peers, self.pool_peers = {}, {}
        elif self.device == "cuda":
            self.peers = {"cudnn-fp32": False, "cudnn-tf32": True}  # name -> TF32 switch
            self.pool_peers = {"torch": False}
        else:
            self.peers = self.pool_peers = {"torch-cpu": None}
        self.synchronize = device_synchronizer(self.device)

    def time_ms(self, call) -> dict:
        """Median milliseconds per call over the timed windows (see the module docstring)."""
        for _ in range(self.warmup):
            call()
        self.synchronize()
        start = time.perf_counter()
        call()
        self.synchronize()
        calls = max(1, min(1000, int(self.window_s / max(time.perf_counter() - start, 1e-7))))
        per_call = []
        for _ in range(self.windows):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            self.synchronize()
            per_call.append((time.perf_counter() - start) * 1e3 / calls)
        return {"ms": statistics.median(per_call), "windows_ms": per_call, "calls_per_window": calls}

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline


def device_synchronizer(device: str):
    """A function that waits until the GPU has finished all queued work, CuPy's and PyTorch's alike."""
    if device == "cpu":
        return lambda: None
    with contextlib.suppress(ImportError):
        import cupy

        return lambda: cupy.cuda.Device().synchronize()  # the whole device, every stream
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


def attempt(measure) -> dict:
    """measure() or, when it raises, the error as a record, so one failing op never ends the run."""
    try:
        return measure()
    except Exception as error:  # CuPy, CUDA and PyTorch raise many types; each is recorded alike
        return {"error": f"{type(error).__name__}: {error}"[:600]}


def release_memory() -> None:
    """Hand cached GPU blocks back between rows, so CuPy's pool and PyTorch's never crowd each other
    (a broken or missing GPU is the rows' problem, already recorded there)."""
    gc.collect()
    with contextlib.suppress(Exception):
        if "cupy" in sys.modules:
            sys.modules["cupy"].get_default_memory_pool().free_all_blocks()
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def relative_diff(mine: np.ndarray, theirs: np.ndarray) -> float:
    """max |mine - theirs| / max |theirs|: float32 rounding alone gives about 1e-6."""
    return float(np.abs(mine - theirs).max() / max(float(np.abs(theirs).max()), 1e-30))


def ratios(timings: dict, peers) -> dict:
    """peer ms / minicnn ms for each peer where both were measured."""
    mine = timings.get("minicnn", {}).get("ms")
    return {p: timings[p]["ms"] / mine for p in peers if mine and "ms" in timings.get(p, {})}


