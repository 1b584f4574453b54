"""Starting jobs of several ranks for the distributed tests.

A multi-rank test runs `mpiexec` as a subprocess, so that MPI never starts inside pytest and a
hang fails the test (after `timeout` seconds) instead of freezing the run. The scripts the ranks run
live in `scripts/`; each writes what it computed under the folder it is given, and the test
compares that with a reference computed here, in one process.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "scripts"


class Job:
    """A finished job (mpiexec, or one process): `returncode`, `stdout`, `stderr`, `seconds` (wall
    time) and `folder` (where the ranks wrote, and their working directory); `results(rank)` is what
    `scripts/e_common.py`'s `save` wrote on that rank."""

    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float, folder: Path):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.folder = seconds, folder

    def results(self, rank: int) -> dict:
        with open(self.folder / f"rank{rank}.pkl", "rb") as file:
            return pickle.load(file)

    def check(self) -> Job:
        """Fail the test, showing both streams, unless every rank ended with status 0."""
        assert self.returncode == 0, f"the job exited {self.returncode}\n{self.stdout}\n{self.stderr}"
        return self

    def __repr__(self) -> str:
        return f"Job(returncode={self.returncode}, seconds={self.seconds:.1f})\n{self.stdout}\n{self.stderr}"


@pytest.fixture(scope="session")
def mpiexec() -> str:
    """The path of mpiexec; the test skips where mpi4py or mpiexec is missing."""
    return _mpiexec()


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    found = shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich brings one)")
    return found


def _environment() -> dict:
    """One thread per rank (two ranks share this machine's cores) and no user data folder, so the
    ranks read the bundled datasets only."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("MINICNN_DATA", None)
    return env


def _start(argv: list[str], folder: Path, timeout: float) -> Job:
    """Run `argv` in its own process group, so that a hung job is killed whole (mpiexec, its proxy
    and every rank) before the test fails."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder,
                               env=_environment(), start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(argv)} still ran after {timeout} s (a hang):\n{stdout}\n{stderr}")
    return Job(process.returncode, stdout, stderr, time.monotonic() - started, folder)


def _script(name: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name)]


@pytest.fixture(scope="session")
def run_ranks(tmp_path_factory):
    """`run_ranks(script, *args, n=2, timeout=20)`: `scripts/<script> FOLDER *args` on `n` ranks under
    mpiexec, FOLDER a fresh temporary folder (also their working directory); returns the finished
    Job. With `n=None` the script runs alone, without mpiexec."""
    mpiexec = _mpiexec()

    def run(script: str, *args, n: int | None = 2, timeout: float = 20) -> Job:
        folder = tmp_path_factory.mktemp(Path(script).stem)
        launcher = [] if n is None else [mpiexec, "-n", str(n)]
        return _start([*launcher, *_script(script), str(folder), *map(str, args)], folder, timeout)

    return run


@pytest.fixture(scope="session")
def run_mpmd(tmp_path_factory):
    """`run_mpmd(script, args_rank0, args_rank1, timeout=20)`: one rank per argument list, each running
    `scripts/<script> FOLDER *args` (mpiexec's `-n 1 A : -n 1 B`), so the ranks start differently."""
    mpiexec = _mpiexec()

    def run(script: str, *per_rank: list, timeout: float = 20) -> Job:
        folder = tmp_path_factory.mktemp(Path(script).stem)
        argv = [mpiexec]
        for rank, args in enumerate(per_rank):
            argv += ([":"] if rank else []) + ["-n", "1", *_script(script), str(folder), *map(str, args)]
        return _start(argv, folder, timeout)

    return run
