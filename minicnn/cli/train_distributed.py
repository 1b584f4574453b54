"""`minicnn train` as a job of several ranks: `--nproc N` starts one on this machine, `--distributed`
makes this process one rank of it, and a job of ranks started without `--distributed` is refused.

A job prints as one run does: rank 0 draws the progress and the summary; the other ranks print
only an error of their own. The launcher side is minicnn.distributed.launch; this module is what
of it depends on the CLI (its command line, consoles and error lines).
"""

from __future__ import annotations

import contextlib
import os
import signal

import typer
from rich.markup import escape

from minicnn.cli.app import _NOT_AVAILABLE, errors, fail, in_cli_terms
from minicnn.cli.progress import ProgressBars
from minicnn.distributed import launch


def command_line(context: typer.Context, leave_out: set[str]) -> list[str]:
    """`minicnn [--debug] train ...` as the user typed it (the parameters they gave, in the command's
    order), less the parameters named in `leave_out`: the command every rank of --nproc runs."""
    typed = {name for name in context.params
             if getattr(context.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")}
    words = ["--debug"] if fail.debug else []
    words.append(context.info_name)
    for parameter in context.command.params:
        name = parameter.name
        if name not in typed or name in leave_out:
            continue
        value = context.params[name]
        if parameter.param_type_name == "argument":
            words.append(str(value))
        elif parameter.is_flag:
            words += [parameter.opts[0]] if value else parameter.secondary_opts[:1]
        else:
            for item in (value if parameter.multiple else [value]):
                words += [parameter.opts[0], str(item)]
    return words


def start_ranks(context: typer.Context, nproc: int, distributed: bool, screen, epochs: int | None):
    """--nproc N: run this command on N ranks under mpiexec, wait, and exit with the job's status.
    `screen` is the console the progress is drawn on: when it is a terminal, rank 0 draws as on it."""
    from minicnn.distributed import launched_by_mpi, require_mpi4py

    with _rank_errors():
        if distributed or launched_by_mpi():
            raise ValueError("--nproc starts the ranks itself, with mpiexec: under an MPI launcher (mpiexec, srun) "
                             "give --distributed instead, and leave --nproc out")
        require_mpi4py()
        terminal = os.terminal_size((screen.width, screen.height)) if screen.is_terminal else None
        code = launch.start(command_line(context, {"nproc"}), nproc, terminal, epochs)
    raise typer.Exit(code)


def refuse_ranks_without_distributed() -> None:
    """Refuse to train as one of several processes an MPI launcher started without --distributed: each
    would train alone, and they would race for one run folder. Rank 0 says so; every rank exits 2."""
    from minicnn.distributed import launched_by_mpi

    size = launch.launcher_size()
    if not launched_by_mpi() or size is None or size < 2:
        return
    if launch.launcher_rank() == 0:
        errors.print(f"[red]error:[/] an MPI launcher started {size} copies of this command without --distributed: "
                     "each would train alone and they would race for one run folder. Add --distributed to make them "
                     f"one job (or run `minicnn train ... --nproc {size}` without mpiexec)", highlight=False,
                     soft_wrap=True)
    raise typer.Exit(2)


def join_job(device: str):
    """--distributed: this process's communicator (minicnn.distributed.world). mpi4py missing: one
    line, from rank 0 alone, and exit 2 on every rank. Only rank 0 reacts to Ctrl-C (the launcher
    delivers it to every rank): it prints the command that continues the run and ends the job,
    while the other ranks, which take no notice, cannot be caught half-way through a collective."""
    from minicnn.distributed import require_mpi4py, world

    with _rank_errors():
        require_mpi4py()
        communicator = world(device)
    launch.record_rank(communicator.rank)
    if communicator.rank != 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return communicator


def errors_of(communicator):
    """How a training command fails: `fail.on_error()` in one process; in a job, the errors of a rank
    (`_rank_errors`), inside abort_on_error, which ends the job when one rank failed alone."""
    if communicator is None:
        return fail.on_error()
    from minicnn.distributed import abort_on_error

    stack = contextlib.ExitStack()
    stack.enter_context(abort_on_error(communicator))
    stack.enter_context(_rank_errors(communicator))
    return stack


@contextlib.contextmanager
def _rank_errors(communicator=None):
    """An error on this rank, as one red line and an exit status (1, or 2 for something not available
    here). An error every rank raised (minicnn.distributed.agree; any error before the ranks connect,
    with no `communicator`, where each makes the same checks) is printed by rank 0 alone, and every
    rank exits with the same status: the highest of the ranks' (the failing rank's 2 over the 1 of
    the DistributedError the others raise), since mpiexec combines the ranks' statuses bit by bit.
    Any other error is printed by its rank, naming it, and its exit is left unmarked, for
    abort_on_error to end the job."""
    from minicnn.distributed.guard import mark_raised_on_every_rank, raised_on_every_rank

    rank = communicator.rank if communicator else launch.launcher_rank()
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if fail.debug:
            raise
        code = 2 if isinstance(error, _NOT_AVAILABLE) else 1
        if communicator is None or raised_on_every_rank(error):
            if communicator is not None:
                code = max(communicator.all_gather_object(code))
            if rank == 0:
                with contextlib.suppress(typer.Exit), fail.on_error():
                    raise error
            raise mark_raised_on_every_rank(typer.Exit(code)) from None
        message = in_cli_terms(f"{type(error).__name__}: {error}")
        errors.print(f"[red]error:[/] rank {rank} of {communicator.size} failed, stopping every rank: {escape(message)}",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


class RecordingBars(ProgressBars):
    """The progress bars, which also tell a --nproc launcher the run folder (`folder()`) as the first
    epoch starts: train() has chosen the folder by then, and it holds a run to resume."""

    def __init__(self, console, folder):
        super().__init__(console)
        self.folder = folder

    def on_epoch_start(self, epoch, epochs, batches):
        if not self.started:
            launch.record_run_folder(self.folder())
        super().on_epoch_start(epoch, epochs, batches)
