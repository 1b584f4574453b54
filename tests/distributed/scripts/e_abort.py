"""One rank leaves an abort_on_error block with an exception while the other waits for it in an
all-reduce: the job must end (or, for errors raised on every rank, go on) as guard.py says.

    mpiexec -n 2 python e_abort.py FOLDER CASE
CASE: "raise" (rank 1 raises ValueError), "exit" (rank 1 raises SystemExit(3)), "interrupt" (rank 1
gets KeyboardInterrupt), "every-rank" (both ranks raise an error marked as raised on every rank).
"""

import sys

import numpy as np
from e_common import save

import minicnn.distributed as dist
from minicnn.distributed.guard import mark_raised_on_every_rank

FAILURES = {
    "raise": lambda: ValueError("cannot read shard-7.bin on rank 1"),
    "exit": lambda: SystemExit(3),
    "interrupt": lambda: KeyboardInterrupt(),
}


def main(folder: str, case: str) -> None:
    comm = dist.world()
    try:
        with dist.abort_on_error(comm):
            if case == "every-rank":
                raise mark_raised_on_every_rank(FloatingPointError(f"loss is NaN (rank {comm.rank})"))
            if comm.rank == 1:
                raise FAILURES[case]()
            comm.all_reduce(np.zeros(3))  # rank 1 never comes: only the abort ends this wait
    except FloatingPointError as error:
        save(folder, comm.rank, {"left with": str(error)})


if __name__ == "__main__":
    main(*sys.argv[1:])
