"""The --nproc launcher: the mpiexec command and the ranks' environment, the split of the cores,
finding mpiexec, reading MPICH's exit codes (from a real job whose rank 1 is killed with SIGKILL,
scripts/d_killed_rank.py) and the line that reports it, and `run` passing a real job's output through."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from minicnn.distributed import DistributedUnavailable, launch

SCRIPTS = Path(__file__).resolve().parent / "scripts"
KILLED = [sys.executable, str(SCRIPTS / "d_killed_rank.py")]


def test_the_command_runs_this_cli_on_every_rank_as_one_rank_of_the_job():
    argv = launch.command("/opt/mpi/bin/mpiexec", 4, ["train", "lenet5", "--epochs", "2"], "/venv/bin/python",
                          ["-bind-to", "core:2"])
    assert argv == ["/opt/mpi/bin/mpiexec", "-n", "4", "-bind-to", "core:2", "-print-all-exitcodes",
                    "/venv/bin/python", "-m", "minicnn", "train", "lenet5", "--epochs", "2", "--distributed"]


@pytest.mark.parametrize("cores, nproc, threads", [(16, 4, 4), (16, 3, 5), (2, 2, 1), (2, 4, 1), (1, 2, 1)])
def test_each_rank_takes_its_share_of_the_cores(cores, nproc, threads):
    assert launch.threads_per_rank(cores, nproc) == threads


def test_ranks_are_bound_to_cores_only_where_each_gets_whole_cores_of_the_machine():
    everything = set(range(16))
    assert launch.binding(2, everything, 16, 16) == ["-bind-to", "core:8"]
    assert launch.binding(2, everything, 16, 8) == ["-bind-to", "core:4"]   # two hyperthreads a core
    assert launch.binding(3, set(range(2)), 2, 2) == []                     # more ranks than cores
    assert launch.binding(2, {4, 5, 6, 7}, 16, 4) == []                     # a cgroup's or taskset's share


def test_physical_cores_count_hyperthreads_of_one_core_once(tmp_path):
    for cpu, core in enumerate([0, 1, 0, 1]):
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text("0\n")
        (folder / "core_id").write_text(f"{core}\n")
    assert launch.physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert launch.physical_cores({0, 2}, tmp_path) == 1
    assert launch.physical_cores({0, 9}, tmp_path) == 2  # cpu9's files missing: count logical CPUs


def test_the_environment_splits_threads_and_tells_rank_0_what_it_needs():
    env = launch.environment({"PATH": "/bin", "OMP_NUM_THREADS": "16"}, 4, 4, "/tmp/x")
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "4", "MINICNN_NPROC": "4", "MINICNN_LAUNCH_FOLDER": "/tmp/x"}


def test_on_a_terminal_rank_0_draws_into_the_pipe_as_on_that_terminal():
    """rich itself, given the environment, takes a pipe for a terminal of the launcher's size; not without it."""
    drawn = launch.environment({}, 2, 1, None, os.terminal_size((123, 45)))
    plain = launch.environment({}, 2, 1, None, None)
    read, write = os.pipe()
    with os.fdopen(read, "rb"), os.fdopen(write, "w") as pipe:
        as_terminal = Console(file=pipe, _environ=drawn)
        assert as_terminal.is_terminal and as_terminal.is_interactive and tuple(as_terminal.size) == (123, 45)
        assert not Console(file=pipe, _environ=plain).is_terminal


def test_mpiexec_is_the_chosen_one_then_the_one_beside_python_then_paths(tmp_path):
    venv, other = tmp_path / "venv" / "bin", tmp_path / "other"
    for folder in (venv, other):
        folder.mkdir(parents=True)
        (folder / "mpiexec").write_text("#!/bin/sh\n")
        (folder / "mpiexec").chmod(0o755)
    python = str(venv / "python")
    assert launch.find_mpiexec({"PATH": str(other)}, python) == str(venv / "mpiexec")
    assert launch.find_mpiexec({"PATH": str(other)}, str(tmp_path / "python")) == str(other / "mpiexec")
    chosen = {"PATH": "", "MINICNN_MPIEXEC": str(other / "mpiexec")}
    assert launch.find_mpiexec(chosen, python) == str(other / "mpiexec")
    with pytest.raises(DistributedUnavailable, match="MINICNN_MPIEXEC=/nowhere/mpiexec is not an executable"):
        launch.find_mpiexec({"MINICNN_MPIEXEC": "/nowhere/mpiexec"}, python)
    with pytest.raises(DistributedUnavailable, match=r'pip install "minicnn-framework\[mpi\]"'):
        launch.find_mpiexec({"PATH": str(tmp_path)}, str(tmp_path / "python"))


def test_the_launchers_rank_and_size_from_the_environment():
    assert (launch.launcher_rank({"PMI_RANK": "3"}), launch.launcher_size({"PMI_SIZE": "4"})) == (3, 4)
    assert (launch.launcher_rank({"OMPI_COMM_WORLD_RANK": "1"}), launch.launcher_size({"OMPI_COMM_WORLD_SIZE": "2"})) == (1, 2)
    assert (launch.launcher_rank({}), launch.launcher_size({})) == (0, None)


def _environment(folder: Path) -> dict:
    return {**os.environ, launch.LAUNCH_FOLDER_VARIABLE: str(folder), "MPIEXEC_TIMEOUT": "20"}


@pytest.fixture(scope="module")
def killed_job(tmp_path_factory, mpiexec):
    """MPICH's own output of a job whose rank 1 killed itself with SIGKILL: (exit status, stdout bytes,
    rank 1's process id)."""
    folder = tmp_path_factory.mktemp("killed")
    job = subprocess.run([mpiexec, "-n", "2", "-print-all-exitcodes", *KILLED], capture_output=True, timeout=20,
                         env=_environment(folder))
    return job.returncode, job.stdout, int((folder / "rank1.pid").read_text())


def _filtered(output: bytes, size: int) -> tuple[bytes, launch.OutputFilter]:
    """`output` fed to an OutputFilter `size` bytes at a time: (what it passed on, the filter)."""
    chosen = launch.OutputFilter()
    passed = b"".join(chosen.feed(output[start:start + size]) for start in range(0, len(output), size))
    return passed + chosen.finish(), chosen


@pytest.mark.parametrize("size", [1, 5, 64, 1 << 20])
def test_mpichs_exit_codes_are_read_and_taken_out_however_the_output_arrives(killed_job, size):
    status, output, pid = killed_job
    assert status == 9 and b"Exit codes: " in output, output
    passed, chosen = _filtered(output, size)
    assert chosen.statuses[1] == 9 and chosen.statuses[0] in (0, 9)  # rank 0: ended, or killed by mpiexec
    assert chosen.failed_pid == pid
    assert passed == b"".join(line for line in output.splitlines(keepends=True) if b"Exit codes:" not in line)
    assert b"rank 0 ready" in passed and b"BAD TERMINATION" in passed


def test_statuses_are_wait_statuses_one_per_rank_host_after_host():
    """Hydra prints raw wait statuses (exit 9 is 9 << 8; SIGKILL is 9), the first host after the header
    and each further host on its own line (the format of MPICH's mpiexec.c)."""
    passed, chosen = _filtered(b"epoch 1\n[mpiexec@a] Exit codes: [a] 0,2304\n[b] 9,0\nafter\n", 3)
    assert passed == b"epoch 1\nafter\n" and chosen.statuses == [0, 2304, 9, 0]
    assert launch.killed_ranks(chosen.statuses) == [(2, 9)]
    assert launch.killed_ranks([0, 2304, 35072, 15]) == [(3, 15)]  # exit(9) and exit(137) are no signals


def test_of_the_ranks_mpiexec_killed_as_it_stopped_the_job_the_first_to_fail_is_named():
    assert launch.killed_ranks([9, 9], failed_rank=1) == [(1, 9)]
    assert launch.killed_ranks([9, 9, 0], failed_rank=None) == [(0, 9), (1, 9)]  # no record: every one
    assert launch.killed_ranks([9, 0], failed_rank=1) == [(0, 9)]


def test_a_progress_bars_redraw_is_passed_on_at_once_and_only_hydras_lines_wait():
    chosen = launch.OutputFilter()
    assert chosen.feed(b"\r\x1b[2Kepoch 1/1 12/32") == b"\r\x1b[2Kepoch 1/1 12/32"
    assert chosen.feed(b"\r\x1b[2Kepoch 1/1 13/32\n[mpi") == b"\r\x1b[2Kepoch 1/1 13/32\n"
    assert chosen.feed(b"exec@vm] Sending Ctrl-C to processes as requested\n[x]") == \
        b"[mpiexec@vm] Sending Ctrl-C to processes as requested\n[x]"
    assert chosen.finish() == b""


def test_after_ctrl_c_mpichs_report_of_the_abort_is_taken_out_and_nothing_else():
    """MPICH's line as it ends a job after Ctrl-C (copied from a run: it has no newline); another abort's stays."""
    report = b"Abort(130) on node 0 (rank 0 in comm 0): application called MPI_Abort(MPI_COMM_WORLD, 130) - process 0"
    other = b"Abort(1) on node 1 (rank 1 in comm 0): application called MPI_Abort(MPI_COMM_WORLD, 1) - process 1"
    for output, kept in [(b"stopped (Ctrl-C)\n" + report, b"stopped (Ctrl-C)\n"), (other, other),
                         (b"Abort(130) is a word\n", b"Abort(130) is a word\n")]:
        chosen = launch.InterruptFilter()
        assert b"".join(chosen.feed(output[i:i + 7]) for i in range(0, len(output), 7)) + chosen.finish() == kept


def test_the_stopped_line_names_rank_signal_and_the_command_that_continues():
    assert launch.stopped_message([(1, 9)], 2, "runs/my run") == (
        "minicnn: rank 1 of 2 was killed by SIGKILL (signal 9), so the job was stopped; the run keeps its last "
        "finished epoch. Continue it with: minicnn train --resume 'runs/my run' --nproc 2")
    assert launch.stopped_message([(0, 15)], 4, None) == (
        "minicnn: rank 0 of 4 was killed by SIGTERM (signal 15), so the job was stopped before training began: "
        "nothing was saved")
    assert launch.stopped_message([], 2, "runs/a", status=143) == (
        "minicnn: a rank ended abnormally (mpiexec's exit status 143), so the job was stopped; the run keeps its "
        "last finished epoch. Continue it with: minicnn train --resume runs/a --nproc 2")
    assert launch.resume_command("runs/a", 2, epochs=9) == "minicnn train --resume runs/a --epochs 9 --nproc 2"


def test_run_passes_the_output_through_and_reports_the_killed_rank(tmp_path, mpiexec):
    """A real job (rank 1 SIGKILLs itself, rank 0 ends within 10 s in any case): mpiexec's status,
    its output less the exit codes, and the stopped line naming rank 1 alone (mpiexec may kill rank 0
    too as it stops the job) and the run folder rank 0 recorded."""
    (tmp_path / "run-folder").write_text("runs/lenet5-digits\n")
    out, err = io.BytesIO(), io.BytesIO()
    argv = [mpiexec, "-n", "2", "-print-all-exitcodes", *KILLED]
    code = launch.run(argv, _environment(tmp_path), tmp_path, 2, stdout=out, stderr=err)
    assert code == 9
    assert b"rank 0 ready" in out.getvalue() and b"Exit codes" not in out.getvalue()
    assert err.getvalue().decode().splitlines()[-1] == (
        "minicnn: rank 1 of 2 was killed by SIGKILL (signal 9), so the job was stopped; the run keeps its last "
        "finished epoch. Continue it with: minicnn train --resume runs/lenet5-digits --nproc 2")


def test_the_ranks_record_for_a_launcher_only_when_it_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(launch.LAUNCH_FOLDER_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    launch.record_run_folder("runs/a")
    launch.record_rank(3)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(launch.LAUNCH_FOLDER_VARIABLE, str(tmp_path))
    launch.record_run_folder("runs/a")
    launch.record_rank(3)
    assert (tmp_path / "run-folder").read_text() == "runs/a" and (tmp_path / "rank3.pid").read_text() == str(os.getpid())
