"""`minicnn train` as a job of several ranks (minicnn/cli/train_distributed.py): --nproc N, --distributed,
--sync-bn, refusals, the errors of a rank, and real two-rank runs under MPICH's mpiexec (subprocesses
with timeouts): a run folder and exit 0, one JSON object, Ctrl-C, and a rank killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from minicnn.cli import app, train_distributed
from minicnn.distributed import LAUNCHER_VARIABLES, DistributedError, launch
from minicnn.distributed.guard import mark_raised_on_every_rank
from minicnn.train import RunFolder

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror
SHORT = ["lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--seed", "0"]
INSTALL = 'pip install "minicnn-framework[mpi]"'


@pytest.fixture(autouse=True)
def not_under_a_launcher(monkeypatch):
    for name in (*LAUNCHER_VARIABLES, "PMI_SIZE", "PMI_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("flag", [["--distributed"], ["--nproc", "2"]])
def test_without_mpi4py_one_line_names_the_install_command_and_exits_2(monkeypatch, tmp_path, flag):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` raises ImportError
    result = runner.invoke(app, ["train", *SHORT, "--out", str(tmp_path / "run"), *flag])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: distributed training needs mpi4py")
    assert INSTALL in result.output and not (tmp_path / "run").exists()


def test_nproc_reruns_the_typed_command_without_nproc(monkeypatch):
    started = []
    monkeypatch.setattr(launch, "start", lambda *arguments: started.append(arguments) or 7)
    result = runner.invoke(app, ["--debug", "train", "lenet5", "--nproc", "4", "--batch-size", "128", "--no-augment",
                                 "--model-arg", "padding=2", "--model-arg", "width=3", "--sync-bn", "--json"])
    assert result.exit_code == 7, result.output
    arguments, nproc, terminal, epochs = started[0]
    assert arguments == ["--debug", "train", "lenet5", "--batch-size", "128", "--no-augment", "--model-arg", "padding=2",
                         "--model-arg", "width=3", "--sync-bn", "--json"]
    assert (nproc, terminal, epochs) == (4, None, None)  # CliRunner's output is no terminal


def test_nproc_under_a_launcher_or_with_distributed_is_refused(monkeypatch):
    result = runner.invoke(app, ["train", *SHORT, "--nproc", "2", "--distributed"])
    assert result.exit_code == 1 and "give --distributed instead, and leave --nproc out" in result.output
    monkeypatch.setenv("PMI_RANK", "1")  # rank 1 of a launcher's job: the same refusal, but rank 0 says it
    result = runner.invoke(app, ["train", *SHORT, "--nproc", "2"])
    assert (result.exit_code, result.output) == (1, "")


def test_copies_a_launcher_started_without_distributed_are_refused_on_rank_0(monkeypatch, tmp_path):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    result = runner.invoke(app, ["train", *SHORT, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "started 2 copies of this command without --distributed" in result.output
    assert "Add --distributed" in result.output and not (tmp_path / "run").exists()
    monkeypatch.setenv("PMI_RANK", "1")
    assert (runner.invoke(app, ["train", *SHORT]).exit_code, result.output.count("error:")) == (2, 1)
    monkeypatch.setenv("PMI_SIZE", "1")  # mpiexec -n 1: an ordinary run
    assert runner.invoke(app, ["train", *SHORT, "--out", str(tmp_path / "run")]).exit_code == 0


def test_sync_bn_is_a_run_setting_that_resume_keeps(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["train", *SHORT, "--out", str(out), "--sync-bn"]).exit_code == 0
    assert RunFolder(out).read_settings()["sync_bn"] is True
    refused = runner.invoke(app, ["train", "--resume", str(out), "--no-sync-bn"])
    assert refused.exit_code == 1 and "--no-sync-bn (the run has --sync-bn)" in refused.output


class Ranks:
    """A communicator of `size` ranks seen from `rank`, whose collectives return `gathered` and whose
    abort is recorded (and ends the test's command, as MPI_Abort would)."""

    def __init__(self, rank: int, size: int = 2, gathered=None):
        self.rank, self.size, self.gathered, self.aborted = rank, size, gathered, None

    def all_gather_object(self, value):
        return self.gathered

    def abort(self, code: int = 1):
        self.aborted = code
        raise SystemExit(code)


def _fail(communicator, error) -> int:
    """Raise `error` inside the CLI's error handling for `communicator`: the exit status."""
    with pytest.raises(SystemExit) as ended:
        try:
            with train_distributed.errors_of(communicator):
                raise error
        except typer.Exit as exit:
            raise SystemExit(exit.exit_code) from None
    return ended.value.code


def test_a_rank_failing_alone_prints_its_error_naming_itself_and_aborts_the_job(capsys):
    ranks = Ranks(1)
    assert _fail(ranks, OSError("cannot read shard-7.bin")) == 1 and ranks.aborted == 1
    assert capsys.readouterr().err.strip() == "error: rank 1 of 2 failed, stopping every rank: OSError: cannot read shard-7.bin"


def test_an_error_of_every_rank_is_printed_by_rank_0_alone_and_every_rank_exits_alike(capsys):
    agreed = mark_raised_on_every_rank(DistributedError("rank 0 of 2 failed: unknown model 'lenet'"))
    other = Ranks(1, gathered=[2, 1])
    assert _fail(other, agreed) == 2 and other.aborted is None and capsys.readouterr().err == ""
    lead = Ranks(0, gathered=[2, 1])
    from minicnn.plugin.registry import RegistryError

    assert _fail(lead, mark_raised_on_every_rank(RegistryError("unknown model 'lenet'"))) == 2 and lead.aborted is None
    assert capsys.readouterr().err.strip() == "error: unknown model 'lenet'"


# Real jobs: `python -m minicnn train ... --nproc 2` with MPICH's mpiexec, in a process group of their own.

def _environment(cache: Path) -> dict:
    env = {**os.environ, "MINICNN_CACHE": str(cache), "PYTHONUNBUFFERED": "1", "MPIEXEC_TIMEOUT": "60"}
    env.pop("MINICNN_DATA", None)
    return env


def _start(arguments: list[str], cache: Path) -> subprocess.Popen:
    pytest.importorskip("mpi4py")
    if not os.access(Path(sys.executable).parent / "mpiexec", os.X_OK) and launch.shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec (pip install mpich brings one)")
    return subprocess.Popen([sys.executable, "-m", "minicnn", "train", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_environment(cache), start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); a job still running after `timeout` s is killed whole and fails the test."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"still running after {timeout} s:\n{stdout}\n{stderr}")
    return process.returncode, stdout, stderr


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{path} never appeared:\n{process.communicate()}")
        time.sleep(0.02)


def test_nproc_2_trains_one_run_folder_and_exits_0(tmp_path, isolated):
    out = tmp_path / "run"
    code, stdout, stderr = _finish(_start(["lenet5", "--dataset", "digits", "--nproc", "2", "--epochs", "1",
                                           "--limit-train", "256", "--out", str(out)], isolated))
    assert code == 0, stdout + stderr
    folder = RunFolder(out)
    assert folder.config_file.is_file() and folder.last.is_file() and folder.best.is_file()
    assert [m["epoch"] for m in folder.read_metrics()] == [1] and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert stdout.count("epoch  1  loss") == 1 and stdout.count("done in") == 1 and "Exit codes" not in stdout


def test_nproc_2_json_prints_exactly_one_json_object(tmp_path, isolated):
    out = tmp_path / "run"
    code, stdout, stderr = _finish(_start(["lenet5", "--dataset", "digits", "--nproc", "2", "--epochs", "1",
                                           "--limit-train", "256", "--out", str(out), "--json"], isolated))
    assert code == 0, stdout + stderr
    assert len(stdout.splitlines()) == 1, stdout
    summary = json.loads(stdout)
    assert summary["run_folder"] == str(out) and summary["epochs"] == 1
    assert summary["test_accuracy"] == RunFolder(out).read_metrics()[-1]["test_accuracy"]


def test_ctrl_c_stops_every_rank_and_rank_0_prints_the_resume_command_with_nproc(tmp_path, isolated):
    out = tmp_path / "run"
    process = _start(["lenet5", "--dataset", "digits", "--nproc", "2", "--epochs", "500", "--limit-train", "256",
                      "--schedule", "none", "--out", str(out)], isolated)
    _wait_for(out / "last.json", process)
    process.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the launcher
    code, stdout, stderr = _finish(process)
    assert code == 130, stdout + stderr
    assert stderr.count("stopped (Ctrl-C)") == 1 and stderr.splitlines()[-1] == f"  minicnn train --resume {out} --nproc 2"


def test_a_rank_killed_by_sigkill_stops_the_job_and_resume_continues_it(tmp_path, isolated):
    out = tmp_path / "run"
    process = _start(["lenet5", "--dataset", "digits", "--nproc", "2", "--epochs", "500", "--limit-train", "256",
                      "--schedule", "none", "--out", str(out)], isolated)
    _wait_for(out / "last.json", process)
    os.kill(_rank_of(1, isolated), signal.SIGKILL)
    code, stdout, stderr = _finish(process)
    # Hydra names rank 1 and SIGKILL, unless rank 0's all-reduce found rank 1 gone first and MPICH aborted
    # the job from rank 0 (status: its error code's low byte), leaving no report (test_launch.py names it)
    stopped = ("minicnn: rank 1 of 2 was killed by SIGKILL (signal 9)",
               f"minicnn: a rank ended abnormally (mpiexec's exit status {code})")
    assert code not in launch.REPORTED and stderr.splitlines()[-1].startswith(stopped), stdout + stderr
    assert stderr.splitlines()[-1].endswith(f", so the job was stopped; the run keeps its last finished epoch. "
                                            f"Continue it with: minicnn train --resume {out} --nproc 2")
    done = RunFolder(out).last_checkpoint().meta["epoch"]
    resumed = _finish(_start(["--resume", str(out), "--epochs", str(done + 1), "--nproc", "2"], isolated))
    assert resumed[0] == 0, resumed
    assert [m["epoch"] for m in RunFolder(out).read_metrics()] == list(range(1, done + 2))


def _rank_of(rank: int, cache: Path) -> int:
    """The process id of rank `rank` of the job whose environment has MINICNN_CACHE=cache."""
    wanted = {f"PMI_RANK={rank}".encode(), f"MINICNN_CACHE={cache}".encode()}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and wanted <= set((entry / "environ").read_bytes().split(b"\0")):
                return int(entry.name)
        except OSError:
            continue
    pytest.fail(f"no rank {rank} found")
