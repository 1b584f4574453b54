"""The process-wide settings of minicnn's CPU kernels, made here and nowhere else: how many threads
they use, BLAS's threads beside them, and how glibc keeps freed memory.

With the C kernels built (minicnn.kernels.native):
- their OpenMP threads: every core the process may run on, or `set_num_threads(n)`;
- BLAS on one thread. OpenBLAS's idle workers spin for a while after each product, and on cores
  that our threads want next, that spinning made a LeNet-5 training step 1.5x slower
  (threadpoolctl sets the limit on whichever BLAS NumPy loaded);
- glibc keeps freed arrays for reuse (`_keep_freed_memory`).
Without them (no compiler, or MINICNN_NATIVE=0), BLAS keeps its own threads, or takes
`set_num_threads(n)`, and malloc is left as it is.

`configure()` makes the settings. It runs when the CPU backend is made, before the first CPU op;
when `set_num_threads` is called; and as a training run starts (minicnn.train.run), so that every op
of a run, fresh or resumed, runs with the same settings: a model whose first op is a BLAS product
(Flatten then Linear) would otherwise multiply before the settings are made, and a resumed run,
which starts later in the run, would add its sums in another order than an unbroken one.
"""

from __future__ import annotations

import ctypes

import numpy as np
import threadpoolctl

from minicnn.kernels import native

_num_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Use `n` threads for minicnn's CPU kernels (as torch.set_num_threads): the C kernels' OpenMP
    threads where they are built (BLAS stays on one), else BLAS's. Applies to the calling thread,
    the one that runs the ops, from now on."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: the number of threads must be a positive int, got {n!r}")
    global _num_threads
    _num_threads = n
    configure()


def get_num_threads() -> int:
    """How many threads minicnn's CPU kernels use: the C kernels' OpenMP threads where they are
    built (1 where the compiler had no OpenMP), else BLAS's."""
    api = "openmp" if native.library(np.float32) is not None else "blas"
    counts = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == api]
    return max(counts, default=1)


def configure() -> None:
    """Make the settings described above, now (building the C kernels if they are not yet built)."""
    if native.library(np.float32) is None:
        if _num_threads is not None:
            threadpoolctl.threadpool_limits(_num_threads, user_api="blas")
        return
    threadpoolctl.threadpool_limits(1, user_api="blas")
    if _num_threads is not None:
        threadpoolctl.threadpool_limits(_num_threads, user_api="openmp")
    _keep_freed_memory()


# glibc's mallopt parameters, and the largest mmap threshold it takes on 64-bit machines
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX = -1, -3, 32 << 20


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next array instead of handing it back to the system.

    Every op returns fresh arrays of a few megabytes. By default glibc maps each one anew and
    unmaps it when freed, so the next one starts with page faults and pages zeroed by the kernel:
    that was 12-17% of a ResNet-20 training step here. With these thresholds arrays up to 32 MB
    reuse freed heap memory. The peak memory stays what it was; the memory is not returned between
    steps. Other C libraries (musl, macOS) have no mallopt and keep their own behaviour.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
