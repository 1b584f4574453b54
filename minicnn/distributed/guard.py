"""Failing together: a job whose ranks disagree, or where one rank fails, stops on every rank
with one message, and never leaves ranks waiting in a collective for a partner that is gone.

- Before training (`agree`, `refuse_differences`): every rank reports whether its step worked, and
  if one failed, every rank raises, the failing rank its own error and the others a
  DistributedError carrying its message. The error is marked as raised on every rank
  (`raised_on_every_rank`), so each rank can exit normally and rank 0 alone needs to say why.
- During training (`abort_on_error`): a rank that raises cannot tell the others, which are waiting
  for it inside an all-reduce; it prints its message and ends the job with MPI_Abort. Errors
  marked as raised on every rank (a NaN loss, found after the losses were all-reduced) leave
  normally instead.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import traceback

from minicnn.distributed.communicator import Communicator, DistributedError

_EVERY_RANK = "_minicnn_raised_on_every_rank"


def mark_raised_on_every_rank(error: BaseException) -> BaseException:
    """Record that every rank raises `error` at the same point (so no rank needs to abort the job)."""
    setattr(error, _EVERY_RANK, True)
    return error


def raised_on_every_rank(error: BaseException) -> bool:
    return bool(getattr(error, _EVERY_RANK, False))


def agree(comm: Communicator, action, *args, **kwargs):
    """`action(*args, **kwargs)` on every rank; its result, or, when it raised on any rank, an
    exception on every rank: the first failing rank's own on that rank, a DistributedError naming
    that rank and its message on the others (the same line that rank would print)."""
    try:
        result, failure = action(*args, **kwargs), None
    except Exception as error:  # noqa: BLE001 - every failure must reach the other ranks
        result, failure = None, error
    if comm.size == 1:
        if failure is not None:
            raise failure
        return result
    reports = comm.all_gather_object(None if failure is None else f"{failure}")
    failed = [rank for rank, report in enumerate(reports) if report is not None]
    if not failed:
        return result
    first = failed[0]
    if comm.rank == first:
        raise mark_raised_on_every_rank(failure)
    raise mark_raised_on_every_rank(DistributedError(f"rank {first} of {comm.size} failed: {reports[first]}"))


def refuse_differences(comm: Communicator, what: str, description: dict) -> None:
    """Raise DistributedError on every rank when any rank's `description` (a dict of plain values)
    differs from rank 0's, naming each rank and setting that differs, with both values."""
    if comm.size == 1:
        return
    descriptions = comm.all_gather_object(description)
    reference = descriptions[0]
    differences = []
    for rank, other in enumerate(descriptions[1:], start=1):
        for key in sorted(set(reference) | set(other)):
            if other.get(key) != reference.get(key):
                differences.append(f"rank {rank} has {key} {other.get(key)!r} where rank 0 has {reference.get(key)!r}")
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise mark_raised_on_every_rank(DistributedError(
            f"the ranks were started with different {what}: {shown}. Start every rank with the same command, "
            "options and data"))


@contextlib.contextmanager
def abort_on_error(comm: Communicator):
    """Under several ranks, end the whole job when the block raises on this rank alone.

    An exception marked as raised on every rank, or a SystemExit with status 0, leaves normally.
    Any other one is printed with this rank's number and machine (a SystemExit or typer.Exit is
    taken as already reported) and the job ends with MPI_Abort: exit status 130 for Ctrl-C, the
    exit's own status, or 1.
    """
    try:
        yield
    except BaseException as error:
        if comm.size == 1 or raised_on_every_rank(error):
            raise
        code = _exit_status(error)
        if code == 0:
            raise
        if not isinstance(error, SystemExit) and not hasattr(error, "exit_code"):
            where = f"rank {comm.rank} of {comm.size} (on {socket.gethostname()})"
            if isinstance(error, KeyboardInterrupt):
                print(f"minicnn: {where} was interrupted: stopping every rank", file=sys.stderr)
            else:
                details = "".join(traceback.format_exception(error)).rstrip()
                print(f"{details}\nminicnn: {where} failed, stopping every rank: {type(error).__name__}: {error}",
                      file=sys.stderr)
        comm.abort(code)


def _exit_status(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    code = getattr(error, "exit_code", None)  # click's and typer's Exit
    return code if isinstance(code, int) else 1


__all__ = ["DistributedError", "abort_on_error", "agree", "mark_raised_on_every_rank", "raised_on_every_rank",
           "refuse_differences"]
