"""GPU communicators on real MPI ranks; each rank saves what it saw for tests/distributed/test_nccl.py.

    mpiexec -n 2 python b_nccl.py FOLDER refusal   # no GPU needed: the GPU count is set by hand
    mpiexec -n 2 python b_nccl.py FOLDER host      # CuPy arrays through MPI's host path (one GPU)
    mpiexec -n 1 python b_nccl.py FOLDER nccl      # world("cuda"): NCCL, its id sent over MPI
"""

import sys

import numpy as np
from e_common import save

import minicnn.distributed as dist
from minicnn.distributed import nccl


def refusal(folder: str) -> None:
    """Two ranks on a machine with one GPU, then two: the first must fail on both ranks (never hang),
    the second (NCCL reported missing) must fall back to the MPI communicator."""
    mpi = dist.MPICommunicator()
    results = {"local": (mpi.local_rank, mpi.local_size)}
    nccl.gpu_count = lambda: 1
    try:
        dist.world("cuda")
        results["one gpu"] = "no error"
    except Exception as error:  # noqa: BLE001 - the test checks its class and message
        results["one gpu"] = f"{type(error).__name__}: {error}"
    nccl.gpu_count = lambda: 2
    nccl.nccl_available = lambda: mpi.rank == 0  # rank 1 lacks NCCL: neither may use it
    comm = dist.world("cuda")
    results["fallback"] = (type(comm).__name__, comm.engine, str(dist.rank_device("cuda", comm)))
    save(folder, mpi.rank, results)


def host(folder: str) -> None:
    import cupy

    comm = dist.MPICommunicator()
    values = cupy.arange(12, dtype=cupy.float32).reshape(3, 4) * (comm.rank + 1)
    comm.all_reduce(values)
    from_rank1 = cupy.full(5, 10.0 + comm.rank)
    comm.broadcast(from_rank1, root=1)
    save(folder, comm.rank, {
        "all_reduce": values.get(), "broadcast": from_rank1.get(),
        "still on the GPU": [type(a).__module__.split(".")[0] for a in (values, from_rank1)],
    })


def nccl_world(folder: str) -> None:
    import cupy

    comm = dist.world("cuda")
    values = cupy.linspace(-1, 1, 1_000_000, dtype=cupy.float32)
    comm.all_reduce(values)
    comm.broadcast(values, root=0)
    save(folder, comm.rank, {
        "communicator": (type(comm).__name__, comm.engine, str(comm.device), comm.nccl.size()),
        "values": values.get(), "host all_reduce": _host_all_reduce(comm),
    })


def _host_all_reduce(comm) -> np.ndarray:
    values = np.arange(4, dtype=np.int64)
    comm.all_reduce(values)
    return values


if __name__ == "__main__":
    {"refusal": refusal, "host": host, "nccl": nccl_world}[sys.argv[2]](sys.argv[1])
