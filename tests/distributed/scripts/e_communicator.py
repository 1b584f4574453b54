"""Every collective of MPICommunicator once, on each rank, with inputs that differ by rank; the
results (and the errors of refused calls) go to the test, which computes what they should be.

    mpiexec -n 2 python e_communicator.py FOLDER
"""

import sys
import time

import numpy as np
from e_common import save

import minicnn.distributed as dist


def inputs(rank: int) -> dict:
    """This rank's arrays to all-reduce, different on each rank."""
    rng = np.random.default_rng(rank)
    return {
        "float32": rng.standard_normal((3, 5)).astype(np.float32),
        "float64": rng.standard_normal(7),
        # beyond 2**53, where a trip through float64 would round them
        "int64": (2**60 + rng.integers(0, 2**40, size=4) * 2 + 1).astype(np.int64),
    }


def refused(call) -> str:
    try:
        call()
    except ValueError as error:
        return str(error)
    return "not refused"


def main(folder: str) -> None:
    comm = dist.world()
    rank = comm.rank
    results = {"rank": rank, "size": comm.size, "local_rank": comm.local_rank, "engine": comm.engine}
    results["inputs"] = inputs(rank)
    for name, original in results["inputs"].items():
        array = original.copy()
        comm.all_reduce(array)
        results[f"all_reduce_{name}"] = array
    from_root1 = np.full(4, 10.0 + rank)
    comm.broadcast(from_root1, root=1)
    results["broadcast_root1"] = from_root1
    results["broadcast_object"] = comm.broadcast_object({"sent by": rank, "values": [rank, "x"]})
    results["all_gather_object"] = comm.all_gather_object(("rank", rank))
    results["non_contiguous"] = refused(lambda: comm.all_reduce(np.zeros((4, 4))[:, 1]))
    results["root_too_large"] = refused(lambda: comm.broadcast(np.zeros(2), root=comm.size))
    results["root_negative"] = refused(lambda: comm.broadcast_object("x", root=-1))
    if rank == 1:
        time.sleep(0.5)
    before = time.monotonic()
    comm.barrier()
    results["barrier_wait"] = time.monotonic() - before
    save(folder, rank, results)


if __name__ == "__main__":
    main(sys.argv[1])
