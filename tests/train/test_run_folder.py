"""The run folder: its files and what stands for a run, reading its metrics, one writer (a lock that
dies with its process), no folder that is not a run touched, --overwrite, temporary files of killed
writers, best and last consistent under kill -9 at every write, bit-exact resume of a model that
starts with a BLAS product, and unreadable settings."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import minicnn.train.files as files
from minicnn.train import (
    RunFolderError, RunFolderInUse, TrainConfig, Trainer, WriteError, load_checkpoint, resume, train,
)
from minicnn.inference import evaluate_checkpoint
from minicnn.train.run_folder import LOCK_NAME, RunFolder

SPEC = """name = "linear"
input_size = [1, 28, 28]

[[layers]]
type = "Flatten"

[[layers]]
type = "Linear"
in_features = 784
out_features = 10
"""
RUN_FILES = ["best.json", "best.safetensors", "config.json", "last.json", "last.safetensors", "metrics.jsonl"]


def quiet(message):
    """A `notify` that says nothing."""


@pytest.fixture
def spec(tmp_path) -> Path:
    """A spec whose first op is a BLAS product: Flatten, then Linear(784 -> 10)."""
    path = tmp_path / "linear.toml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def config(spec, out, **options):
    settings = {"model": str(spec), "dataset": "digits", "limit_train": 64, "batch_size": 32, "epochs": 2, "seed": 0,
                "out": str(out), **options}
    return TrainConfig(**settings)


def contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def logged_epochs(folder: Path) -> list:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def assert_same_checkpoint(a, b):
    for part in ("model", "optimizer"):
        first = a.model if part == "model" else a.optimizer["arrays"]
        second = b.model if part == "model" else b.optimizer["arrays"]
        assert list(first) == list(second)
        for name in first:
            assert np.array_equal(first[name], second[name]), (part, name)
    for key in ("epoch", "best_accuracy", "best_epoch", "rng_state"):
        assert a.meta[key] == b.meta[key], key


# -- the format ------------------------------------------------------------------------------


def test_the_files_of_a_run_and_the_checkpoint_a_folder_stands_for(tmp_path):
    folder = RunFolder(tmp_path)
    assert [folder.config_file, folder.metrics_file, folder.last, folder.best] == [
        tmp_path / "config.json", tmp_path / "metrics.jsonl", tmp_path / "last.safetensors", tmp_path / "best.safetensors"]
    assert RunFolder.checkpoint_for(tmp_path) == tmp_path  # no best checkpoint yet: the folder itself
    folder.best.write_bytes(b"")
    assert RunFolder.checkpoint_for(tmp_path) == folder.best == RunFolder.checkpoint_for(str(tmp_path))
    assert RunFolder.checkpoint_for(folder.last) == folder.last


def test_read_metrics_skips_torn_lines_and_keeps_an_epoch_s_last_line(tmp_path):
    lines = [{"epoch": 2, "test_accuracy": 0.5}, {"epoch": 1, "test_accuracy": 0.1}, {"epoch": 2, "test_accuracy": 0.6}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, lines)) + '\n{"epoch": 3, "tes', encoding="utf-8")
    assert [(m["epoch"], m["test_accuracy"]) for m in RunFolder(tmp_path).read_metrics()] == [(1, 0.1), (2, 0.6)]


def test_read_metrics_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder .*nowhere not found"):
        RunFolder(tmp_path / "nowhere").read_metrics()
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl"):
        RunFolder(tmp_path).read_metrics()
    (tmp_path / "metrics.jsonl").write_text("", encoding="utf-8")
    assert RunFolder(tmp_path).read_metrics() == []  # a run before its first epoch ends


# -- one writer --------------------------------------------------------------------------------


def test_a_held_lock_refuses_a_second_claim_naming_the_pid_and_is_gone_once_released(tmp_path):
    folder = RunFolder(tmp_path)
    with folder.claim_existing():
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        for attempt in (lambda: RunFolder(tmp_path).claim_existing().__enter__(), lambda: folder.check_new(overwrite=True)):
            with pytest.raises(RunFolderInUse, match=rf"in use by another minicnn run \(PID {os.getpid()} holds"):
                attempt()
    assert not (tmp_path / LOCK_NAME).exists()
    with folder.claim_existing():  # released: free again
        pass


def wait_for(condition, process, output: Path, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.01)


def test_a_second_run_or_resume_is_refused_while_one_runs_and_not_after_it_is_killed(spec, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "minicnn", "train", str(spec), "--dataset", "digits", "--limit-train", "64",
               "--batch-size", "64", "--epochs", "100000", "--seed", "0", "--out", str(out)]
    with open(tmp_path / "output.txt", "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (out / "last.safetensors").exists(), process, tmp_path / "output.txt")
            holder = rf"PID {process.pid} holds"
            for overwrite in (False, True):
                with pytest.raises(RunFolderInUse, match=holder):
                    train(config(spec, out, seed=1), notify=quiet, overwrite=overwrite)
            with pytest.raises(RunFolderInUse, match=holder):
                resume(out, notify=quiet)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert (out / LOCK_NAME).read_text().strip() == str(process.pid)  # left behind, but no longer locked
    done = load_checkpoint(out / "last.safetensors").meta["epoch"]
    result = resume(out, notify=quiet, epochs=done + 1)
    assert [m["epoch"] for m in result.history] == [done + 1]
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES  # lock and temporary files gone


# -- which folders a new run may use -------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_run_is_never_written_to(spec, tmp_path, overwrite):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"name": "my own settings"}')
    (mine / "best.npz").write_bytes(b"my own weights")
    (mine / ".last.npz.tmp").write_bytes(b"looks like ours, but the folder is not a run")
    before = contents(mine)
    with pytest.raises(RunFolderError, match=r"holds no minicnn run \(best\.npz, config\.json\)"):
        train(config(spec, mine), notify=quiet, overwrite=overwrite)
    assert contents(mine) == before


def test_resuming_a_folder_whose_config_json_is_not_a_runs_leaves_it_untouched(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["SomeoneElsesModel"]}')
    (tmp_path / ".last.npz.tmp").write_text("theirs")
    before = contents(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"not a minicnn run folder \(config.json has no epochs, model, optimizer, seed\)"):
        resume(tmp_path, notify=quiet)
    assert contents(tmp_path) == before


def test_an_empty_folder_is_used(spec, tmp_path):
    (tmp_path / "empty").mkdir()
    train(config(spec, tmp_path / "empty", epochs=1), notify=quiet)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == RUN_FILES


def test_a_finished_run_is_refused_and_overwrite_replaces_only_its_files(spec, tmp_path):
    out = tmp_path / "run"
    train(config(spec, out), notify=quiet)
    (out / "curves.png").write_bytes(b"a picture of the first run")
    before = contents(out)
    with pytest.raises(RunFolderError, match=rf"already holds a run: resume it with --resume {out}.*--overwrite"):
        train(config(spec, out, seed=1), notify=quiet)
    assert contents(out) == before
    train(config(spec, out, seed=1, epochs=1), notify=quiet, overwrite=True)
    assert json.loads((out / "config.json").read_text())["seed"] == 1 and logged_epochs(out) == [1]
    assert load_checkpoint(out / "last.safetensors").meta["epoch"] == 1
    assert (out / "curves.png").read_bytes() == b"a picture of the first run"


def test_a_run_stopped_before_its_first_checkpoint_is_refused_then_resumed_from_epoch_1(spec, tmp_path):
    straight = train(config(spec, tmp_path / "straight"), notify=quiet)
    out = tmp_path / "stopped"
    out.mkdir()
    (out / "config.json").write_bytes((tmp_path / "straight" / "config.json").read_bytes())
    (out / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')  # killed as it logged epoch 1
    with pytest.raises(RunFolderError, match=rf"stopped before saving its first checkpoint: resume it with --resume {out}"
                                             r".*or pass --overwrite"):
        train(config(spec, out), notify=quiet)
    notes = []
    result = resume(out, notify=notes.append)
    assert [m["epoch"] for m in result.history] == [1, 2] and "starting again from epoch 1" in notes[0]
    assert logged_epochs(out) == [1, 2]
    for name in ("best.safetensors", "last.safetensors"):
        assert_same_checkpoint(load_checkpoint(out / name), load_checkpoint(straight.out_dir / name))


def test_temporary_files_of_a_killed_writer_are_removed_at_the_next_start_or_resume(spec, tmp_path):
    out = tmp_path / "run"
    train(config(spec, out, epochs=1), notify=quiet)
    stale = [".last.safetensors.tmp", ".best.safetensors.4242-0badcafe.tmp", ".metrics.jsonl.17-00000000.tmp",
             ".last.npz.99-12345678.tmp"]
    for name in stale:
        (out / name).write_bytes(b"x" * 1000)
    (out / ".notes.tmp").write_text("not ours")
    resume(out, notify=quiet, epochs=2)
    assert sorted(p.name for p in out.iterdir()) == [".notes.tmp"] + RUN_FILES
    (out / stale[0]).write_bytes(b"x")
    train(config(spec, out, epochs=1), notify=quiet, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [".notes.tmp"] + RUN_FILES


# -- kill -9 at any write ------------------------------------------------------------------------

# Runs `train` (4 epochs, test accuracies forced so that epochs 1 and 2 improve and 3 and 4 do not),
# killing itself with SIGKILL just before its Nth file is renamed into place (0: never).
KILLED_RUN = """
import os, signal, sys
from minicnn.train import Trainer, TrainConfig, train

spec, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
save = Trainer._save
Trainer._save = lambda self, metrics: save(self, {**metrics, "test_accuracy": (0.5, 0.9, 0.6, 0.7)[metrics["epoch"] - 1]})
replace, renames = os.replace, []

def killing_replace(source, target):
    renames.append(target)
    if len(renames) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    replace(source, target)

os.replace = killing_replace
train(TrainConfig(model=spec, dataset="digits", limit_train=64, batch_size=32, epochs=4, seed=0, out=out),
      notify=lambda message: None)
print(len(renames))
"""
RENAMES = 14  # config.json and metrics.jsonl, then .json and .safetensors of best and last in epochs 1-2, of last in 3-4


def test_best_and_last_stay_consistent_when_killed_at_any_write(spec, tmp_path, monkeypatch):
    def run(kill_at):
        out = tmp_path / f"killed-at-{kill_at}"
        done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(spec), str(out), str(kill_at)],
                              capture_output=True, text=True, timeout=120)
        return out, done

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(run, range(RENAMES + 1)))
    straight, done = runs[0]
    assert done.returncode == 0 and done.stdout.split() == [str(RENAMES)], done.stderr
    save = Trainer._save
    monkeypatch.setattr(Trainer, "_save", lambda self, metrics: save(
        self, {**metrics, "test_accuracy": (0.5, 0.9, 0.6, 0.7)[metrics["epoch"] - 1]}))
    for kill_at, (out, done) in enumerate(runs[1:], start=1):
        assert done.returncode == -signal.SIGKILL, (kill_at, done.stderr)
        if kill_at == 1:  # killed before config.json was in place: no run yet, and the folder takes a new one
            result = train(TrainConfig(model=str(spec), dataset="digits", limit_train=64, batch_size=32, epochs=4,
                                       seed=0, out=str(out)), notify=quiet)
        else:
            result = resume(out, notify=quiet)
        assert result.best_accuracy == 0.9, kill_at
        for name in ("best", "last"):
            got, expected = load_checkpoint(out / f"{name}.safetensors"), load_checkpoint(straight / f"{name}.safetensors")
            assert_same_checkpoint(got, expected)
            assert json.loads((out / f"{name}.json").read_text()) == got.meta, (kill_at, name)
        assert load_checkpoint(out / "best.safetensors").meta["epoch"] == 2, kill_at
        assert logged_epochs(out) == [1, 2, 3, 4], kill_at
        assert sorted(p.name for p in out.iterdir()) == RUN_FILES, kill_at


# -- runs of an earlier minicnn, whose checkpoints are .npz -----------------------------------------


def as_earlier_version(folder: Path) -> None:
    """Rewrite a run's checkpoints as minicnn wrote them before safetensors: last.npz and best.npz of
    `model/<name>`, `optimizer/<name>` and `__meta__` (JSON bytes, format minicnn-checkpoint-1)."""
    for name in ("last", "best"):
        checkpoint = load_checkpoint(folder / f"{name}.safetensors")
        meta = {**checkpoint.meta, "format": "minicnn-checkpoint-1"}
        arrays = {f"model/{key}": value for key, value in checkpoint.model.items()}
        arrays.update({f"optimizer/{key}": value for key, value in checkpoint.optimizer["arrays"].items()})
        np.savez(folder / f"{name}.npz", **arrays, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8))
        (folder / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        (folder / f"{name}.safetensors").unlink()


def test_a_run_of_an_earlier_version_evaluates_resumes_exactly_and_moves_to_safetensors(spec, tmp_path):
    straight = train(config(spec, tmp_path / "straight", epochs=3, schedule="none"), notify=quiet).out_dir
    out = tmp_path / "old"
    train(config(spec, out, epochs=1, schedule="none"), notify=quiet)  # a constant rate: 1 epoch, then 2 more
    expected = evaluate_checkpoint(out)
    as_earlier_version(out)
    folder = RunFolder(out)
    assert (folder.last.name, folder.best.name, RunFolder.checkpoint_for(out).name) == ("last.npz", "best.npz", "best.npz")
    assert evaluate_checkpoint(out) == expected and folder.is_run()
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(config(spec, out), notify=quiet)
    resume(out, notify=quiet, epochs=3)
    assert folder.last.name == "last.safetensors" and logged_epochs(out) == [1, 2, 3]
    assert_same_checkpoint(load_checkpoint(folder.last), load_checkpoint(straight / "last.safetensors"))
    assert_same_checkpoint(load_checkpoint(folder.best), load_checkpoint(straight / "best.safetensors"))
    train(config(spec, out, epochs=1), notify=quiet, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES  # the .npz went with the run they belonged to


def test_a_run_with_a_damaged_config_json_is_still_known_by_its_checkpoint_of_either_format(spec, tmp_path):
    out = tmp_path / "run"
    train(config(spec, out, epochs=1), notify=quiet)
    (out / "config.json").write_text("{cut sho")
    assert RunFolder(out).is_run()
    as_earlier_version(out)
    assert RunFolder(out).is_run()
    (out / "last.npz").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive: not a checkpoint
    assert not RunFolder(out).is_run()


# -- process-wide settings -------------------------------------------------------------------------

STOPPED_RUN = """
import os, sys
from minicnn.train import Trainer, TrainConfig, train

spec, out, stop_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
save = Trainer._save

def save_then_stop(self, metrics):
    save(self, metrics)
    if metrics["epoch"] == stop_after:
        os._exit(0)

Trainer._save = save_then_stop
train(TrainConfig(model=spec, dataset="digits", batch_size=256, epochs=2, seed=0, out=out), notify=lambda message: None)
"""


def test_a_model_that_starts_with_a_blas_product_resumes_bit_exactly(spec, tmp_path):
    def python(*arguments):
        done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    python("-c", STOPPED_RUN, str(spec), str(tmp_path / "straight"), "0")
    python("-c", STOPPED_RUN, str(spec), str(tmp_path / "stopped"), "1")
    assert load_checkpoint(tmp_path / "stopped" / "last.safetensors").meta["epoch"] == 1
    python("-m", "minicnn", "train", "--resume", str(tmp_path / "stopped"))
    assert_same_checkpoint(load_checkpoint(tmp_path / "stopped" / "last.safetensors"),
                           load_checkpoint(tmp_path / "straight" / "last.safetensors"))


THREADS_AT_START = """
import sys
import numpy as np
import threadpoolctl
import minicnn.train.run as run
from minicnn.kernels import native

prepare, seen = run._prepare, []

def watched(*args, **kwargs):
    seen.append(max(pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"))
    return prepare(*args, **kwargs)

run._prepare = watched
run.train(run.TrainConfig(model=sys.argv[1], dataset="digits", limit_train=64, epochs=1, seed=0, out=sys.argv[2]),
          notify=lambda message: None)
print(seen[0], native.library(np.float32) is not None)
"""


def test_blas_threads_are_settled_before_a_run_builds_anything(spec, tmp_path):
    done = subprocess.run([sys.executable, "-c", THREADS_AT_START, str(spec), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    threads, kernels_built = done.stdout.split()
    if kernels_built == "False":
        pytest.skip("the C kernels are not built here, so BLAS keeps its threads throughout")
    assert threads == "1"


# -- unreadable settings, full disk --------------------------------------------------------------


@pytest.mark.parametrize("damage", [lambda text: text[:30], lambda text: "[1, 2]", lambda text: text.replace('"epochs": 1', '"epochs": "many"')],
                         ids=["truncated", "not-an-object", "bad-value"])
def test_resuming_with_an_unreadable_config_json_names_the_file_and_what_to_do(spec, tmp_path, damage):
    out = tmp_path / "run"
    train(config(spec, out, epochs=1), notify=quiet)
    (out / "config.json").write_text(damage((out / "config.json").read_text()))
    with pytest.raises(ValueError, match=rf"{out / 'config.json'} cannot be read as the run's settings .*"
                                         r"last\.json keeps a copy.*--overwrite"):
        resume(out, notify=quiet, epochs=2)
    assert not (out / LOCK_NAME).exists()


def test_a_full_disk_while_writing_config_json_names_it_and_leaves_no_temporary_file(spec, tmp_path, monkeypatch):
    def full(file):
        raise OSError(errno.ENOSPC, "No space left on device")

    write = files.write_atomically
    monkeypatch.setattr("minicnn.train.run_folder.write_atomically",
                        lambda writes: write({path: full if path.name == "config.json" else w for path, w in writes.items()}))
    with pytest.raises(WriteError, match=rf"could not write {tmp_path / 'run' / 'config.json'} \(No space left on device\); "
                                         "the disk is full: free some space"):
        train(config(spec, tmp_path / "run"), notify=quiet)
    assert list((tmp_path / "run").iterdir()) == []
