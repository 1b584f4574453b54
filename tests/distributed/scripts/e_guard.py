"""agree and refuse_differences on each rank, in cases where the ranks fail or differ; what each
call returned or raised goes to the test.

    mpiexec -n 2 python e_guard.py FOLDER
"""

import sys

from e_common import save

import minicnn.distributed as dist
from minicnn.distributed.guard import raised_on_every_rank


def outcome(call, *args) -> tuple:
    """("returned", value) or ("raised", type name, message, marked as raised on every rank)."""
    try:
        return "returned", call(*args)
    except Exception as error:  # noqa: BLE001 - the test looks at whichever error it was
        return "raised", type(error).__name__, str(error), raised_on_every_rank(error)


def fail_on(ranks, rank: int):
    def action():
        if rank in ranks:
            raise ValueError(f"cannot read data.bin on rank {rank}")
        return rank * 10
    return action


def main(folder: str) -> None:
    comm = dist.world()
    rank = comm.rank
    description = {"model": "lenet5", "batch_size": 64}
    differing = {"model": "lenet5" if rank == 0 else "resnet20", "batch_size": 64, **({"extra": 1} if rank else {})}
    many = {f"key{index}": rank for index in range(7)}
    save(folder, rank, {
        "agree_ok": outcome(dist.agree, comm, fail_on((), rank)),
        "agree_rank1_fails": outcome(dist.agree, comm, fail_on((1,), rank)),
        "agree_both_fail": outcome(dist.agree, comm, fail_on((0, 1), rank)),
        "same": outcome(dist.refuse_differences, comm, "options", description),
        "differing": outcome(dist.refuse_differences, comm, "options", differing),
        "many": outcome(dist.refuse_differences, comm, "options", many),
    })


if __name__ == "__main__":
    main(sys.argv[1])
