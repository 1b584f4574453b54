"""Data-parallel training across processes and machines, on MPI (mpi4py) and NCCL (through CuPy).

    mpiexec -n 4 python train.py          # in train.py:
    import minicnn.distributed as dist
    comm = dist.world()                   # rank, size, local_rank; mpi4py is imported here
    dist.broadcast_parameters(model, comm)            # every rank starts from rank 0's weights
    optimizer = dist.DistributedOptimizer(optimizer, comm)   # step() averages gradients first

`import minicnn` never imports this package, and importing it imports neither mpi4py nor CuPy:
`world()` does, on first call. minicnn's own loop (`mc.fit(..., distributed=True)`,
`minicnn train --distributed` and `--nproc N`) uses the same pieces; docs/distributed.md says
what a run computes and how it compares with one process.
"""

from __future__ import annotations

import os

from minicnn.distributed.communicator import (
    Communicator, DistributedError, DistributedUnavailable, MPICommunicator, SingleProcess,
)
from minicnn.distributed.gradients import DistributedOptimizer, all_reduce_gradients, broadcast_parameters
from minicnn.distributed.guard import abort_on_error, agree, refuse_differences
from minicnn.distributed.nccl import rank_device
from minicnn.distributed.sync_batch_norm import SyncBatchNorm, convert_sync_batchnorm

# Variables the launchers of MPI implementations set in every rank's environment: MPICH's and Intel
# MPI's Hydra (PMI_*), Open MPI (OMPI_*), PMIx launchers such as Slurm's srun --mpi=pmix (PMIX_*).
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS")

_world: Communicator | None = None


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def world(device="cpu") -> Communicator:
    """The communicator of every rank of this job, made on the first call (later calls return it).

    Under an MPI launcher: MPI through mpi4py, with NCCL for GPU arrays when `device` is a GPU and
    CuPy has NCCL. Started without one: a world of one rank (SingleProcess), so a script written for
    several ranks also runs alone. Raises DistributedUnavailable, naming the install command, when
    mpi4py is missing.
    """
    global _world
    if _world is not None:
        return _world
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if launched_by_mpi():
            raise DistributedUnavailable(_missing_mpi4py()) from None
        _world = SingleProcess()
        return _world
    from minicnn import backend

    target = backend.device(device)
    if target.type == "cuda":
        from minicnn.distributed.nccl import gpu_communicator

        _world = gpu_communicator(MPICommunicator(), target)
    else:
        _world = MPICommunicator()
    return _world


def require_mpi4py() -> None:
    """Raise DistributedUnavailable (one line naming the install command) when mpi4py is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise DistributedUnavailable(_missing_mpi4py()) from None


def _missing_mpi4py() -> str:
    from minicnn.distribution import install_command

    return (f"distributed training needs mpi4py and an MPI library: install them with {install_command('mpi')}, "
            "which brings MPICH's mpiexec (or build mpi4py against your cluster's MPI: docs/distributed.md)")


__all__ = [
    "Communicator", "DistributedError", "DistributedOptimizer", "DistributedUnavailable", "MPICommunicator",
    "SingleProcess", "SyncBatchNorm", "abort_on_error", "agree", "all_reduce_gradients", "broadcast_parameters",
    "convert_sync_batchnorm", "launched_by_mpi", "rank_device", "refuse_differences", "require_mpi4py", "world",
]
