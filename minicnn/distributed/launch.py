"""`minicnn train ... --nproc N`: start N ranks on this machine under mpiexec, and what ranks learn
from the launcher that started them.

The CLI runs itself again as `mpiexec -n N [-bind-to core:K] python -m minicnn train ... --distributed`
(`command`), with the machine's cores split between the ranks (`environment`), and stays in front:
it forwards Ctrl-C to mpiexec (which hands it to the ranks) and passes the ranks' output through as
it comes, so that rank 0's progress bars still draw (less MPICH's report of the abort that ends a job
after Ctrl-C, `InterruptFilter`). MPICH's mpiexec, asked with
`-print-all-exitcodes`, ends by printing every rank's wait status on stdout
(`[mpiexec@host] Exit codes: [host] 0,9`); the launcher takes that line out of the output
(`OutputFilter`) and, when a rank was killed by a signal, ends with one line naming the rank, the
signal and the command that continues the run (`stopped_message`). As mpiexec stops the job it
kills the other ranks, with the same SIGKILL, so the rank that failed first is the one whose
process id Hydra names (`= PID 6884 RUNNING AT host`): each rank writes its process id, and rank 0
the run folder, into the folder the launcher names in LAUNCH_FOLDER_VARIABLE (`record_rank`,
`record_run_folder`).

The functions that build the command and read the output are plain, so they are tested without MPI.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from minicnn.distributed.communicator import DistributedUnavailable

MPIEXEC_VARIABLE = "MINICNN_MPIEXEC"          # the mpiexec to use, before the one beside Python and PATH's
NPROC_VARIABLE = "MINICNN_NPROC"              # set for the ranks: the N of --nproc, for the resume command
LAUNCH_FOLDER_VARIABLE = "MINICNN_LAUNCH_FOLDER"  # set for the ranks: where they write what the launcher reads
RUN_FOLDER_FILE = "run-folder"                # in that folder: the run folder, written by rank 0
REPORTED = (0, 1, 2, 130)  # the statuses with which minicnn's ranks end a job after saying why
# rich's own switches (rich.console.Console): draw as on a terminal though stdout is mpiexec's pipe
TERMINAL_VARIABLES = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}

# Rank and job size as launchers put them in each rank's environment: MPICH/Intel MPI (Hydra),
# Open MPI, PMIx and Slurm.
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")


def find_mpiexec(environ=os.environ, executable: str = sys.executable) -> str:
    """The mpiexec to start: $MINICNN_MPIEXEC, else the one installed beside this Python (the `mpich`
    wheel's, in the same virtual environment), else PATH's. Raises DistributedUnavailable, naming
    the install command, when there is none."""
    chosen = environ.get(MPIEXEC_VARIABLE)
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise DistributedUnavailable(f"{MPIEXEC_VARIABLE}={chosen} is not an executable mpiexec: set it to one, "
                                         "or unset it to use the mpiexec beside Python or on PATH")
        return found
    beside = Path(executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec", path=environ.get("PATH"))
    if found is None:
        from minicnn.distribution import install_command

        raise DistributedUnavailable(f"--nproc needs MPI's mpiexec, and none is beside {executable} or on PATH: "
                                     f"install it with {install_command('mpi')}, or set {MPIEXEC_VARIABLE}")
    return found


def threads_per_rank(cores: int, nproc: int) -> int:
    """The cores each of `nproc` ranks gets (at least one): 4 ranks on 16 cores take 4 threads each."""
    return max(1, cores // nproc)


def physical_cores(cpus: set[int], topology: Path = Path("/sys/devices/system/cpu")) -> int:
    """How many physical cores the logical CPUs `cpus` sit on (hyperthreads of one core count once);
    len(cpus) where Linux's topology files cannot be read."""
    cores = set()
    for cpu in cpus:
        folder = topology / f"cpu{cpu}" / "topology"
        try:
            cores.add(((folder / "physical_package_id").read_text().strip(), (folder / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores)


def binding(nproc: int, cpus: set[int], machine_cpus: int | None, cores: int) -> list[str]:
    """mpiexec's options that pin each rank to its own `cores // nproc` physical cores, so ranks
    neither share cores nor wander between them; none when there are more ranks than `cores`, or
    when this process may use only some of the machine's `machine_cpus` (a batch system's cgroup
    or taskset: Hydra would number the machine's cores, not ours)."""
    if nproc > cores or machine_cpus != len(cpus):
        return []
    return ["-bind-to", f"core:{cores // nproc}"]


def command(mpiexec: str, nproc: int, arguments: list[str], executable: str = sys.executable,
            bind: list[str] = ()) -> list[str]:
    """`mpiexec -n N [bind] -print-all-exitcodes PYTHON -m minicnn ARGUMENTS --distributed`: every rank
    runs this very CLI, as one rank of the job. `arguments` are the command line without --nproc."""
    return [mpiexec, "-n", str(nproc), *bind, "-print-all-exitcodes", executable, "-m", "minicnn", *arguments,
            "--distributed"]


def environment(base: dict, nproc: int, threads: int, folder: str | None = None,
                terminal: os.terminal_size | None = None) -> dict:
    """The ranks' environment: `base` with OMP_NUM_THREADS=threads (minicnn's C kernels and BLAS take
    it), --nproc's N for rank 0's resume command, the launcher's `folder`, and, when the
    launcher draws on a terminal of size `terminal`, rich's switches and that size, so that rank 0
    draws progress bars into mpiexec's pipe as if it were that terminal."""
    env = {**base, "OMP_NUM_THREADS": str(threads), NPROC_VARIABLE: str(nproc)}
    if folder is not None:
        env[LAUNCH_FOLDER_VARIABLE] = folder
    if terminal is not None:
        env.update(TERMINAL_VARIABLES, COLUMNS=str(terminal.columns), LINES=str(terminal.lines))
    return env


_HEADER = re.compile(rb"^\[mpiexec@[^\]]*\] Exit codes: ?(.*?)\s*$")
_HOST = re.compile(rb"\[([^\]]*)\] (-?\d+(?:,-?\d+)*)")
_HOST_LINE = re.compile(rb"^\[[^\]]*\] -?\d+(?:,-?\d+)*\s*$")
_BAD_TERMINATION = re.compile(rb"^=   PID (\d+) RUNNING AT ")


class OutputFilter:
    """mpiexec's stdout as it comes, less Hydra's `Exit codes:` lines, whose wait statuses it keeps
    (`statuses`, one per rank, in Hydra's order: host by host, each host's ranks in order); and the
    process id of the first rank that ended badly, from Hydra's banner (`failed_pid`).

    Text is passed on as soon as it arrives, also without its newline (a progress bar redraws its
    line with a carriage return); only the start of a line that could be Hydra's is held until its
    newline comes. Hydra prints one host's codes after the header and each further host's on a
    line of its own."""

    def __init__(self):
        self.statuses: list[int] = []
        self.failed_pid: int | None = None
        self._held = b""
        self._line_start = True
        self._in_codes = False

    def feed(self, chunk: bytes) -> bytes:
        """The part of the output so far that can be passed on now."""
        data, self._held = self._held + chunk, b""
        passed = []
        while data:
            end = data.find(b"\n")
            if end < 0:
                if self._line_start and self._may_take(data):
                    self._held = data
                else:
                    passed.append(data)
                    self._line_start = False
                break
            line, data = data[:end + 1], data[end + 1:]
            if not (self._line_start and self._took(line)):
                passed.append(line)
                self._in_codes = False
            self._line_start = True
        return b"".join(passed)

    def finish(self) -> bytes:
        """What is still held when the output ends (a last line without its newline)."""
        rest, self._held = self._held, b""
        if rest and not self._took(rest):
            return rest
        return b""

    def _may_take(self, start: bytes) -> bool:
        """Whether a line beginning with `start` may be one to read or take out (so it waits for its end)."""
        if self._in_codes and start.startswith(b"["):
            return True
        return any(start.startswith(marker) or marker.startswith(start) for marker in (b"[mpiexec@", b"=   PID "))

    def _took(self, line: bytes) -> bool:
        banner = _BAD_TERMINATION.match(line)
        if banner is not None and self.failed_pid is None:
            self.failed_pid = int(banner.group(1))
        header = _HEADER.match(line)
        if header is not None:
            self._in_codes = True
            self._add(header.group(1))
            return True
        if self._in_codes and _HOST_LINE.match(line):
            self._add(line)
            return True
        return False

    def _add(self, text: bytes) -> None:
        for _, codes in _HOST.findall(text):
            self.statuses += [int(code) for code in codes.split(b",")]


class InterruptFilter(OutputFilter):
    """mpiexec's stderr as it comes, less MPICH's report of the MPI_Abort with status 130 that ends a job
    after Ctrl-C (`Abort(130) on node 0 (rank 0 in comm 0): application called MPI_Abort(...)`, with
    no newline): rank 0 has already said what the run keeps and how to continue it."""

    _MARKER = b"Abort(130) on node "

    def _may_take(self, start: bytes) -> bool:
        return start.startswith(self._MARKER) or self._MARKER.startswith(start)

    def _took(self, line: bytes) -> bool:
        return line.startswith(self._MARKER) and b"MPI_Abort(MPI_COMM_WORLD, 130)" in line


def killed_ranks(statuses: list[int], failed_rank: int | None = None) -> list[tuple[int, int]]:
    """(rank, signal number) for each rank whose wait status says a signal ended it; only `failed_rank`'s
    when it is one of them (the others were killed by mpiexec as it stopped the job)."""
    killed = [(rank, status & 0x7F) for rank, status in enumerate(statuses) if 0 < status & 0x7F < 0x7F]
    first = [(rank, number) for rank, number in killed if rank == failed_rank]
    return first or killed


def resume_command(run_folder: str, nproc: int, epochs: int | None = None) -> str:
    """The command that continues `run_folder` on `nproc` ranks (to `epochs`, when a resume extended it)."""
    return (f"minicnn train --resume {shlex.quote(run_folder)}" + (f" --epochs {epochs}" if epochs else "")
            + (f" --nproc {nproc}" if nproc > 1 else ""))


def stopped_message(killed: list[tuple[int, int]], size: int, run_folder: str | None, epochs: int | None = None,
                    status: int | None = None) -> str:
    """One line: which ranks a signal killed (or, with none known, mpiexec's exit `status`), that the job
    stopped, and how to continue the run (or that nothing was saved, when the job stopped before
    rank 0 started training)."""
    names = " and ".join(f"rank {rank} of {size} was killed by {_signal_name(number)} (signal {number})"
                         for rank, number in killed) or f"a rank ended abnormally (mpiexec's exit status {status})"
    if run_folder is None:
        return f"minicnn: {names}, so the job was stopped before training began: nothing was saved"
    return (f"minicnn: {names}, so the job was stopped; the run keeps its last finished epoch. "
            f"Continue it with: {resume_command(run_folder, size, epochs)}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run(argv: list[str], env: dict, folder: Path, size: int, epochs: int | None = None,
        stdout=None, stderr=None) -> int:
    """Run mpiexec's `argv` to its end and return its exit status (128 + N when a signal N ended mpiexec
    itself). Ctrl-C (and SIGTERM) are forwarded to mpiexec, which delivers them to the ranks; mpiexec
    runs in a session of its own, so a terminal's Ctrl-C reaches it only this once. Its output is
    passed on to `stdout` and `stderr` (binary streams; this process's by default). `folder` is
    where the ranks record what they write for the launcher (`record_rank`, `record_run_folder`).

    A job that ended with a rank killed by a signal, or with a status minicnn's ranks never end with
    after saying why (REPORTED), gets the stopped line. Hydra's report may be missing: when rank 0
    finds a killed rank gone inside an all-reduce before Hydra does, MPICH aborts the job from rank 0
    (status `code & 255` of its error code) and Hydra prints no exit codes."""
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr.buffer
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    output = OutputFilter()
    readers = [threading.Thread(target=_pass_on, args=(process.stdout, stdout, output), daemon=True),
               threading.Thread(target=_pass_on, args=(process.stderr, stderr, InterruptFilter()), daemon=True)]
    for reader in readers:
        reader.start()
    forward = {number: signal.signal(number, lambda received, frame: process.send_signal(received))
               for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
        for reader in readers:
            reader.join()
    finally:
        for number, handler in forward.items():
            signal.signal(number, handler)
    code = code if code >= 0 else 128 - code
    killed = killed_ranks(output.statuses, _ranks_by_pid(folder).get(output.failed_pid))
    if killed or code not in REPORTED:
        record = folder / RUN_FOLDER_FILE
        run_folder = record.read_text(encoding="utf-8").strip() if record.is_file() else None
        stderr.write((stopped_message(killed, size, run_folder or None, epochs, code) + "\n").encode())
        stderr.flush()
    return code


def _ranks_by_pid(folder: Path) -> dict[int, int]:
    """{process id: rank} of the ranks that recorded theirs in `folder`."""
    ranks = {}
    for record in folder.glob("rank*.pid"):
        with contextlib.suppress(OSError, ValueError):
            ranks[int(record.read_text(encoding="utf-8"))] = int(record.stem[len("rank"):])
    return ranks


def _pass_on(source, target, output: OutputFilter) -> None:
    """Copy `source` to `target` as it arrives, through `output`'s filter."""
    while chunk := os.read(source.fileno(), 65536):
        if passed := output.feed(chunk):
            target.write(passed)
            target.flush()
    if rest := output.finish():
        target.write(rest)
        target.flush()


def start(arguments: list[str], nproc: int, terminal: os.terminal_size | None, epochs: int | None = None) -> int:
    """`minicnn train ARGUMENTS --nproc N`: run the job on `nproc` ranks of this machine and return its
    exit status. `terminal`: the size of the terminal the progress is drawn on, None when not one."""
    mpiexec = find_mpiexec()
    cpus = os.sched_getaffinity(0)
    bind = binding(nproc, cpus, os.cpu_count(), physical_cores(cpus))
    with tempfile.TemporaryDirectory(prefix="minicnn-nproc-") as folder:
        env = environment(dict(os.environ), nproc, threads_per_rank(len(cpus), nproc), folder, terminal)
        return run(command(mpiexec, nproc, arguments, bind=bind), env, Path(folder), nproc, epochs)


def record_rank(rank: int) -> None:
    """On each rank of a --nproc job: tell the launcher this rank's process id, so that it can name the
    rank whose process Hydra reports. Does nothing in other runs."""
    _record(f"rank{rank}.pid", str(os.getpid()))


def record_run_folder(folder) -> None:
    """On rank 0 of a --nproc job: tell the launcher which run folder the job writes, so that it can
    name it if a rank is killed. Does nothing in other runs."""
    if folder is not None:
        _record(RUN_FOLDER_FILE, str(folder))


def _record(name: str, text: str) -> None:
    folder = os.environ.get(LAUNCH_FOLDER_VARIABLE)
    if folder:
        (Path(folder) / name).write_text(text, encoding="utf-8")


def nproc_of_launcher() -> int:
    """The N of the --nproc that started this rank (1 when it was started some other way)."""
    value = os.environ.get(NPROC_VARIABLE, "")
    return int(value) if value.isdigit() else 1


def launcher_rank(environ=os.environ) -> int:
    """This process's rank as its launcher set it in the environment (0 when none did)."""
    return next((int(environ[name]) for name in _RANK_VARIABLES if environ.get(name, "").isdigit()), 0)


def launcher_size(environ=os.environ) -> int | None:
    """How many ranks the launcher started (None when its environment does not say)."""
    return next((int(environ[name]) for name in _SIZE_VARIABLES if environ.get(name, "").isdigit()), None)


__all__ = [
    "InterruptFilter", "OutputFilter", "binding", "command", "environment", "find_mpiexec", "killed_ranks",
    "launcher_rank", "launcher_size", "nproc_of_launcher", "physical_cores", "record_rank", "record_run_folder",
    "resume_command", "run", "start", "stopped_message", "threads_per_rank",
]
