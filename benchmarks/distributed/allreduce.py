"""MPI all-reduce latency and bandwidth between the ranks of `mpiexec -n R` (benchmarks/distributed.py).

    mpiexec -n 2 -bind-to core python allreduce.py [--largest-mb 64] [--least-s 0.2]

For each size from 4 bytes to --largest-mb megabytes (float32, doubling), the call minicnn's
MPICommunicator.all_reduce makes: mpi4py's Allreduce(IN_PLACE, SUM) on a NumPy buffer. Each repeat
starts after a Barrier, and its time is the slowest rank's (what a training step waits for); a
size is repeated until --least-s seconds are spent (at least 5, at most 2000 repeats) after 3
untimed calls, and the median repeat is reported. Rank 0 prints RESULT_MARK and then JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from mpi4py import MPI

RESULT_MARK = "distributed-benchmark-result:"


def time_size(comm, elements: int, least_s: float) -> list[float]:
    """Seconds of each timed Allreduce of `elements` float32 numbers, the slowest rank's per repeat."""
    buffer = np.ones(elements, np.float32)
    for _ in range(3):
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    times, spent = [], 0.0
    while True:
        comm.Barrier()
        started = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(time.perf_counter() - started)
        spent += times[-1]
        # every rank must stop after the same repeat: decide on the slowest rank's total
        if len(times) >= 2000 or (len(times) >= 5 and comm.allreduce(spent, op=MPI.MAX) >= least_s):
            break
    slowest = np.array(times)
    comm.Allreduce(MPI.IN_PLACE, slowest, op=MPI.MAX)
    return slowest.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--largest-mb", type=float, default=64, help="largest message, MB (2^20 bytes)")
    parser.add_argument("--least-s", type=float, default=0.2, help="least seconds of timed repeats per size")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rows, elements = [], 1
    while elements * 4 <= args.largest_mb * 2**20:
        times = time_size(comm, elements, args.least_s)
        median = statistics.median(times)
        rows.append({"bytes": elements * 4, "repeats": len(times), "median_s": median, "min_s": min(times),
                     "algorithm_bandwidth_gb_s": elements * 4 / median / 1e9})
        elements *= 2
    if comm.Get_rank() == 0:
        result = {"ranks": comm.Get_size(), "mpi_library": MPI.Get_library_version().strip().splitlines()[0],
                  "mpi4py": __import__("mpi4py").__version__, "sizes": rows}
        print(RESULT_MARK, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
