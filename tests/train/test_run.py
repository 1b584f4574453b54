"""Runs from a configuration: reproducible seeds, the run folder, kill and resume, the offline fallback,
a short real MNIST training. (Evaluating and predicting with a checkpoint: tests/test_inference.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from minicnn.data import DataUnavailableError
from minicnn.train import CheckpointError, NonFiniteLossError, RunFolder, TrainConfig, load_checkpoint, resume, train

TIMES = ("seconds", "images_per_second")


def quiet(message):
    """A `notify` that says nothing."""


def digits_config(out, seed=0, epochs=3, **options):
    return TrainConfig(dataset="digits", epochs=epochs, seed=seed, out=str(out), **options)


def logged(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def without_times(history):
    return [{k: v for k, v in metrics.items() if k not in TIMES} for metrics in history]


def assert_same_arrays(a: dict, b: dict):
    assert list(a) == list(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished 3-epoch LeNet-5 run on the bundled digits (seed 0): (RunResult, its config)."""
    folder = tmp_path_factory.mktemp("digits")
    config = digits_config(folder / "run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        return train(config, notify=quiet), config


def test_the_run_folder_holds_config_metrics_and_checkpoints(digits_run):
    result, config = digits_run
    out = result.out_dir
    assert result.dataset == "digits" and result.fallback_reason is None and len(result.history) == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json", "best.safetensors", "config.json", "last.json", "last.safetensors", "metrics.jsonl"]
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert saved == asdict(config) and TrainConfig.from_dict(saved) == config
    assert logged(out) == result.history and [m["epoch"] for m in result.history] == [1, 2, 3]
    last = load_checkpoint(out / "last.safetensors")
    assert last.meta["epoch"] == 3 and last.meta["config"] == saved and last.meta["dataset"] == "digits"
    assert last.meta["classes"] == [str(d) for d in range(10)] and last.meta["input_size"] == [1, 28, 28]
    assert result.history[-1]["test_accuracy"] >= 0.8


def test_the_same_seed_gives_identical_weights_and_metrics(digits_run, tmp_path):
    first, _ = digits_run
    second = train(digits_config(tmp_path / "again"), notify=quiet)
    for name in ("last.safetensors", "best.safetensors"):
        a, b = load_checkpoint(first.out_dir / name), load_checkpoint(second.out_dir / name)
        assert_same_arrays(a.model, b.model)
        assert_same_arrays(a.optimizer["arrays"], b.optimizer["arrays"])
    assert without_times(second.history) == without_times(first.history)


def test_another_seed_gives_other_weights(digits_run, tmp_path):
    first, _ = digits_run
    other = train(digits_config(tmp_path / "other", seed=1), notify=quiet)
    a, b = load_checkpoint(first.out_dir / "last.safetensors").model, load_checkpoint(other.out_dir / "last.safetensors").model
    assert not any(np.array_equal(a[name], b[name]) for name in a if name.endswith("weight"))
    assert without_times(other.history) != without_times(first.history)


def test_no_seed_draws_one_and_records_it(tmp_path):
    config = TrainConfig(dataset="digits", epochs=1, out=str(tmp_path / "run"), limit_train=200)
    train(config, notify=quiet)
    assert isinstance(config.seed, int)
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["seed"] == config.seed


def logged_epochs(path) -> int:
    """The last epoch a (possibly running) training has logged; 0 if none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    complete = text[: text.rfind("\n") + 1].splitlines()
    return max((json.loads(line)["epoch"] for line in complete if line.strip()), default=0)


def test_a_run_killed_with_sigkill_resumes_to_the_same_final_weights(digits_run, tmp_path):
    """The same run as `digits_run` (3 epochs, seed 0), killed after it logs epoch 2, then resumed:
    it must end exactly where the uninterrupted run ended."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "minicnn", "train", "lenet5", "--dataset", "digits", "--epochs", "3",
               "--seed", "0", "--out", str(out)]
    with open(tmp_path / "output.txt", "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while logged_epochs(out / "metrics.jsonl") < 2:
                assert process.poll() is None, (tmp_path / "output.txt").read_text()
                assert time.monotonic() < deadline, "the training did not log epoch 2 within 2 minutes"
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    stopped_at = load_checkpoint(out / "last.safetensors").meta["epoch"]
    assert stopped_at in (1, 2), "the run was not stopped before its end"

    resumed = resume(out, notify=quiet)
    assert [m["epoch"] for m in resumed.history] == list(range(stopped_at + 1, 4))
    straight, _ = digits_run
    a, b = load_checkpoint(out / "last.safetensors"), load_checkpoint(straight.out_dir / "last.safetensors")
    assert_same_arrays(a.model, b.model)
    assert_same_arrays(a.optimizer["arrays"], b.optimizer["arrays"])
    assert a.meta["rng_state"] == b.meta["rng_state"] and a.meta["epoch"] == 3
    assert [m["epoch"] for m in logged(out)] == [1, 2, 3]
    assert without_times(logged(out)) == without_times(straight.history)


def test_resuming_a_finished_run_has_nothing_left_to_do(digits_run):
    result, _ = digits_run
    before = (result.out_dir / "last.safetensors").read_bytes()
    again = resume(result.out_dir, notify=quiet)
    assert again.history == [] and again.out_dir == result.out_dir
    assert (result.out_dir / "last.safetensors").read_bytes() == before and len(logged(result.out_dir)) == 3


def test_resuming_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a minicnn run folder.*config.json"):
        resume(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a minicnn run folder"):
        resume(tmp_path / "nowhere")


def test_resuming_a_run_with_a_corrupt_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(digits_config(out, epochs=1, limit_train=200), notify=quiet)
    (out / "last.safetensors").write_bytes((out / "last.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        resume(out, notify=quiet)


def test_resuming_a_run_whose_metrics_end_in_a_torn_line(tmp_path):
    out = tmp_path / "run"
    train(digits_config(out, epochs=1, limit_train=200), notify=quiet)
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
        log.write('{"epoch": 2, "train_lo')
    resumed = resume(out, epochs=2, notify=quiet)
    assert [m["epoch"] for m in resumed.history] == [2] and [m["epoch"] for m in logged(out)] == [1, 2]


def test_training_into_a_folder_holding_a_run_suggests_resume(digits_run):
    result, _ = digits_run
    before = {p.name: p.read_bytes() for p in result.out_dir.iterdir()}
    with pytest.raises(FileExistsError, match=r"already holds a run.*--resume"):
        train(digits_config(result.out_dir, seed=5), notify=quiet)
    assert {p.name: p.read_bytes() for p in result.out_dir.iterdir()} == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_huge_learning_rate_stops_with_a_clear_message(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch \d+.*--lr"):
        train(digits_config(tmp_path / "run", epochs=1, lr=1e6), notify=quiet)


def test_offline_without_a_dataset_falls_back_to_digits(tmp_path, offline):
    notes = []
    result = train(TrainConfig(epochs=1, seed=0, out=str(tmp_path / "run"), limit_train=300), notify=notes.append)
    assert result.dataset == "digits" and notes == [result.fallback_reason]
    reason = result.fallback_reason
    assert "dataset 'mnist' is not available" in reason and "'digits'" in reason
    assert str(offline / "mnist") in reason and os.environ["MINICNN_MIRROR"].rstrip("/") in reason and "unreachable" in reason
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["dataset"] == "digits"
    assert load_checkpoint(tmp_path / "run" / "last.safetensors").meta["dataset"] == "digits"


def test_the_default_run_folder_is_named_after_the_dataset_actually_used(tmp_path, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(TrainConfig(epochs=1, seed=0, limit_train=100), notify=quiet)
    assert result.dataset == "digits"
    assert result.out_dir.parent == Path("runs") and result.out_dir.name.startswith("lenet5-digits-")
    assert (tmp_path / result.out_dir / "last.safetensors").exists()


def test_a_dataset_named_explicitly_never_falls_back(tmp_path, offline):
    notes = []
    with pytest.raises(DataUnavailableError) as raised:
        train(TrainConfig(dataset="mnist", epochs=1, seed=0, out=str(tmp_path / "run")), notify=notes.append)
    assert raised.value.dataset == "mnist" and notes == []
    assert any(os.environ["MINICNN_MIRROR"].rstrip("/") in place for place in raised.value.tried)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_a_short_real_mnist_run_passes_a_clear_accuracy_bar(tmp_path, shared_mnist):
    config = TrainConfig(dataset="mnist", data_dir=str(shared_mnist), limit_train=6000, epochs=2, batch_size=32,
                         seed=0, out=str(tmp_path / "mnist"))
    result = train(config, notify=quiet)
    assert result.dataset == "mnist" and result.fallback_reason is None
    best = max(m["test_accuracy"] for m in result.history)
    assert best >= 0.95, result.history
    assert load_checkpoint(tmp_path / "mnist" / "best.safetensors").meta["best_accuracy"] == best


def test_channel_statistics_match_numpy_over_slices_that_do_not_divide_the_dataset():
    from types import SimpleNamespace

    from minicnn.train.run import channel_statistics

    images = np.random.default_rng(0).integers(0, 256, size=(1000, 3, 5, 4)).astype(np.uint8)
    stats = channel_statistics(SimpleNamespace(images=images), chunk=300)
    as_float = images.astype(np.float64) / 255
    np.testing.assert_allclose(stats["mean"], as_float.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], as_float.std(axis=(0, 2, 3)) + 1e-8, rtol=1e-12)


def test_normalize_false_trains_on_the_images_as_given_and_records_statistics_that_change_nothing(tmp_path, monkeypatch):
    from minicnn.data import DataLoader

    seen = []
    batches = DataLoader._batches
    monkeypatch.setattr(DataLoader, "_batches", lambda self, epoch: (seen.append(b) or b for b in batches(self, epoch)))
    result = train(digits_config(tmp_path / "run", epochs=1, limit_train=64, normalize=False), notify=quiet)
    meta = load_checkpoint(RunFolder(result.out_dir).last).meta
    assert meta["normalize"] == {"mean": [0.0], "std": [1.0]} and meta["config"]["normalize"] is False
    images = np.concatenate([images for images, _ in seen])
    assert images.min() == 0.0 and images.max() == 1.0  # the digits' pixels scaled to [0, 1], nothing more


def test_a_run_of_python_objects_is_not_resumed_from_its_settings(tmp_path):
    config = digits_config(tmp_path / "run", epochs=1, limit_train=64)
    config.python_objects = {"model": "mine.Net", "train": "arrays"}
    RunFolder(tmp_path / "run").check_new()
    with RunFolder(tmp_path / "run").claim_new():
        RunFolder(tmp_path / "run").start(config)
    with pytest.raises(ValueError, match=r"trained with mc.fit on Python objects \(model: mine.Net, train: arrays\).*"
                                         r"resume it with mc.fit\(model, train, test, resume="):
        resume(tmp_path / "run", notify=quiet)
