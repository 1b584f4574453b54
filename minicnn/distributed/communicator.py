"""Communicators: the operations data-parallel training needs, one class per engine.

`Communicator` is the whole interface, and `SingleProcess` (a world of one, where every
collective returns its input) implements it in a few lines. `MPICommunicator` runs on MPI through
mpi4py, the engine of HPC clusters; `NCCLCommunicator` (minicnn.distributed.nccl) adds NCCL for
arrays on GPUs and keeps MPI for everything else. Arrays are NumPy or CuPy, C-contiguous, reduced
in place; objects travel pickled, and only between ranks of one job, which trust each other.

Every rank must call a collective in the same order: a rank that skips one leaves the others
waiting. minicnn.distributed.agree turns a failure on one rank before training into the same
error on every rank; during training, a failing rank aborts the job (`abort`).
"""

from __future__ import annotations

import sys

import numpy as np


class DistributedError(RuntimeError):
    """The ranks of a job disagree (different models, data or options), or one of them failed."""


class DistributedUnavailable(DistributedError):
    """mpi4py (or an MPI library for it) is not installed: distributed training cannot start."""


class Communicator:
    """What the ranks of one job do together. `rank` counts from 0 across the job, `size` is the
    number of ranks, `local_rank` the rank among those on the same machine (it picks the GPU) and
    `local_size` their number."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    engine: str = ""

    def barrier(self) -> None:
        """Wait until every rank has called barrier."""
        raise NotImplementedError

    def all_reduce(self, array) -> None:
        """Replace `array` (C-contiguous, NumPy or CuPy) on every rank by the element-wise sum over ranks."""
        raise NotImplementedError

    def broadcast(self, array, root: int = 0) -> None:
        """Overwrite `array` on every rank with rank `root`'s values (same shape and dtype everywhere)."""
        raise NotImplementedError

    def broadcast_object(self, value, root: int = 0):
        """Rank `root`'s `value` (any picklable object), returned on every rank."""
        raise NotImplementedError

    def all_gather_object(self, value) -> list:
        """Every rank's `value`, as a list indexed by rank, returned on every rank."""
        raise NotImplementedError

    def abort(self, code: int = 1):
        """End every rank of the job now, with exit status `code` (never returns)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size}, engine={self.engine!r})"


class SingleProcess(Communicator):
    """A job of one rank: a collective has no one else to wait for, so each returns its input."""

    engine = "none"

    def barrier(self) -> None:
        pass

    def all_reduce(self, array) -> None:
        pass

    def broadcast(self, array, root: int = 0) -> None:
        _check_root(root, 1)

    def broadcast_object(self, value, root: int = 0):
        _check_root(root, 1)
        return value

    def all_gather_object(self, value) -> list:
        return [value]

    def abort(self, code: int = 1):
        sys.stderr.flush()
        raise SystemExit(code)


class MPICommunicator(Communicator):
    """MPI through mpi4py, over `comm` (MPI.COMM_WORLD by default). GPU arrays go through host
    memory (one copy each way), so any MPI build works; NCCLCommunicator keeps them on the GPUs."""

    engine = "mpi"

    def __init__(self, comm=None):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # ranks sharing a machine (and its memory): their order there is the local rank
        machine = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = machine.Get_rank(), machine.Get_size()
        machine.Free()

    def barrier(self) -> None:
        self.comm.Barrier()

    def all_reduce(self, array) -> None:
        host, on_gpu = _on_host(array)
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        if on_gpu:
            array.set(host)

    def broadcast(self, array, root: int = 0) -> None:
        _check_root(root, self.size)
        host, on_gpu = _on_host(array)
        self.comm.Bcast(host, root=root)
        if on_gpu:
            array.set(host)

    def broadcast_object(self, value, root: int = 0):
        _check_root(root, self.size)
        return self.comm.bcast(value, root=root)

    def all_gather_object(self, value) -> list:
        return self.comm.allgather(value)

    def abort(self, code: int = 1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def _on_host(array):
    """(a NumPy array MPI can read and write, whether `array` is a CuPy array copied to it)."""
    if isinstance(array, np.ndarray):
        if not array.flags.c_contiguous:
            raise ValueError("all_reduce/broadcast: the array must be C-contiguous (np.ascontiguousarray)")
        return array, False
    return array.get(), True


def _check_root(root: int, size: int) -> None:
    if not 0 <= root < size:
        raise ValueError(f"root must be a rank between 0 and {size - 1}, got {root}")
