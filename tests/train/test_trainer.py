"""The training loop: metrics.jsonl, last/best checkpoints and their order, a non-finite loss or
weights, a full disk, evaluate(), callbacks and how often the metrics are read, and restoring a
checkpoint (device random streams included), on a tiny separable dataset and a small model."""

import errno
import json
import math
import os

from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.train.trainer as trainer_module
from minicnn import backend, nn, optim
from minicnn.data import ArrayDataset, DataLoader
from minicnn.train import (
    Callbacks, NonFiniteLossError, NonFiniteWeightsError, Trainer, WriteError, evaluate, load_checkpoint,
)
from minicnn.train.trainer import GPU_SYNC_EVERY, PendingBatches

KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "images_per_second", "lr"}


def rows_dataset(n, seed):
    """3 classes of 4x4 images: class k has a bright row k, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.uniform(0, 0.2, (n, 1, 4, 4)).astype(np.float32)
    images[np.arange(n), 0, labels, :] += 0.8
    return ArrayDataset(images, labels, ["top", "middle", "bottom"])


def linear_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def make_trainer(out, model_factory=linear_model, lr=0.5, scheduler=False, callbacks=None, seed=0, batch_size=8,
                 sync_every=None):
    mc.manual_seed(seed)
    model = model_factory()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    schedule = optim.StepLR(optimizer, step_size=1, gamma=0.5) if scheduler else None
    return Trainer(model, optimizer, DataLoader(rows_dataset(48, 1), batch_size, shuffle=True, seed=seed),
                   DataLoader(rows_dataset(24, 2), 10), out, scheduler=schedule, meta={"model": "tiny"},
                   callbacks=callbacks, sync_every=sync_every)


def logged(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_metrics_jsonl_has_a_line_per_epoch_with_every_key(tmp_path):
    out = tmp_path / "deep" / "run"
    history = make_trainer(out, scheduler=True).fit(3)
    lines = logged(out)
    assert lines == history and [m["epoch"] for m in lines] == [1, 2, 3]
    for metrics in lines:
        assert KEYS <= set(metrics)
        assert all(math.isfinite(metrics[k]) and metrics[k] >= 0 for k in ("train_loss", "test_loss"))
        assert 0 <= metrics["train_accuracy"] <= 1 and 0 <= metrics["test_accuracy"] <= 1
        assert metrics["seconds"] > 0 and metrics["images_per_second"] == pytest.approx(48 / metrics["seconds"])
    assert [m["lr"] for m in lines] == [0.5, 0.25, 0.125]  # the rate each epoch trained with
    assert lines[-1]["train_loss"] < lines[0]["train_loss"] and lines[-1]["test_accuracy"] >= 0.9


def test_last_every_epoch_and_best_only_when_test_accuracy_improves(tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.7, 0.6, 0.7, 0.9])
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device, communicator=None: (1.0, next(accuracies)))
    seen = []

    class Watch(Callbacks):
        def on_epoch_end(self, metrics):
            last, best = load_checkpoint(tmp_path / "last.safetensors"), load_checkpoint(tmp_path / "best.safetensors")
            seen.append((last.meta["epoch"], best.meta["epoch"], best.meta["best_accuracy"]))

    make_trainer(tmp_path, callbacks=Watch()).fit(5)
    assert seen == [(1, 1, 0.5), (2, 2, 0.7), (3, 2, 0.7), (4, 2, 0.7), (5, 5, 0.9)]
    assert load_checkpoint(tmp_path / "last.safetensors").meta["best_epoch"] == 5
    last, best = load_checkpoint(tmp_path / "last.safetensors"), load_checkpoint(tmp_path / "best.safetensors")
    assert last.meta["metrics"] == logged(tmp_path)[-1] and last.meta["model"] == "tiny"
    assert all(np.array_equal(best.model[name], value) for name, value in last.model.items())


def test_best_is_written_before_last_so_last_commits_the_epoch(tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.4])
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device, communicator=None: (1.0, next(accuracies)))
    renamed, replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renamed.append(Path(target).name), replace(source, target)))
    make_trainer(tmp_path).fit(2)
    assert renamed == ["best.json", "best.safetensors", "last.json", "last.safetensors", "last.json", "last.safetensors"]


def test_a_checkpoint_holds_what_a_resumed_run_needs(tmp_path):
    make_trainer(tmp_path, scheduler=True).fit(2)
    meta = load_checkpoint(tmp_path / "last.safetensors").meta
    assert {"epoch", "best_accuracy", "scheduler", "rng_state", "metrics", "optimizer"} <= set(meta)
    assert meta["epoch"] == 2 and meta["scheduler"] is not None and meta["optimizer"]["optimizer"] == "SGD"


class Scale(nn.Module):
    """Multiplies by `factor`; setting it to infinity makes the next loss non-finite."""

    def __init__(self):
        super().__init__()
        self.factor = 1.0

    def forward(self, x):
        return x * self.factor


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    scale = Scale()
    good = {}

    class Sabotage(Callbacks):
        def on_batch(self, epoch, batch, loss, accuracy, images_per_second):
            if (epoch, batch) == (2, 2):
                scale.factor = float("inf")

        def on_epoch_end(self, metrics):
            good[metrics["epoch"]] = trainer.model.state_dict()

    trainer = make_trainer(tmp_path, model_factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3), scale),
                           callbacks=Sabotage())
    with pytest.raises(NonFiniteLossError) as raised:
        trainer.fit(3)
    message = str(raised.value)
    assert "epoch 2, batch 3" in message and "--lr" in message and str(tmp_path) in message
    last = load_checkpoint(tmp_path / "last.safetensors")
    assert last.meta["epoch"] == 1 and load_checkpoint(tmp_path / "best.safetensors").meta["epoch"] == 1
    for name, value in good[1].items():
        assert np.isfinite(last.model[name]).all() and np.array_equal(last.model[name], value), name
    assert not np.array_equal(trainer.model.state_dict()["1.weight"], good[1]["1.weight"])  # epoch 2 had trained on
    assert [m["epoch"] for m in logged(tmp_path)] == [1]


class Diverge(Callbacks):
    """From epoch 2 on, a learning rate so large that one step takes the weights past float32's range."""

    def __init__(self):
        self.trainer = None

    def on_epoch_start(self, epoch, epochs, batches):
        if epoch == 2:
            self.trainer.optimizer.param_groups[0]["lr"] = 1e39


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_weights_after_a_finite_loss_are_never_saved(tmp_path):
    diverge = Diverge()
    trainer = diverge.trainer = make_trainer(tmp_path, batch_size=48, callbacks=diverge)  # one batch per epoch
    with pytest.raises(NonFiniteWeightsError) as raised:
        trainer.fit(3)
    assert not np.isfinite(trainer.model.state_dict()["1.weight"]).all()
    message = str(raised.value)
    assert "'1.weight' became NaN or infinite during epoch 2 (the loss was still finite)" in message
    assert f"the last good checkpoint (epoch 1) is kept in {tmp_path / 'last.safetensors'}" in message and "--lr" in message
    for name in ("last.safetensors", "best.safetensors"):
        checkpoint = load_checkpoint(tmp_path / name)
        assert checkpoint.meta["epoch"] == 1 and all(np.isfinite(v).all() for v in checkpoint.model.values())
    assert [m["epoch"] for m in logged(tmp_path)] == [1]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_weights_in_the_first_epoch_leave_no_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, lr=1e39, batch_size=48)
    with pytest.raises(NonFiniteWeightsError, match="during epoch 1 .*no epoch had finished, so there is no checkpoint"):
        trainer.fit(1)
    assert not (tmp_path / "last.safetensors").exists() and not (tmp_path / "best.safetensors").exists()


def test_a_full_disk_while_logging_metrics_names_the_file_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path)
    trainer.fit(1)
    before = (tmp_path / "last.safetensors").read_bytes()

    def full_disk(path, *args, **kwargs):
        if Path(path).name == "metrics.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, *args, **kwargs)

    monkeypatch.setattr("minicnn.train.files.open", full_disk, raising=False)
    with pytest.raises(WriteError, match=rf"could not write {tmp_path / 'metrics.jsonl'} \(No space left on device\); "
                                         "the disk is full: free some space"):
        trainer.fit(2)
    assert (tmp_path / "last.safetensors").read_bytes() == before and load_checkpoint(tmp_path / "last.safetensors").meta["epoch"] == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


class Probe(nn.Module):
    """Records the mode it runs in."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_runs_in_eval_mode_and_restores_the_mode(training):
    probe = Probe()
    mc.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), probe).train(training)
    loader = DataLoader(rows_dataset(25, 3), 10)
    loss, accuracy = evaluate(model, loader)
    assert probe.modes == [False, False, False]
    assert model.training is training and probe.training is training
    model.eval()
    logits = np.concatenate([model(mc.Tensor(x)).numpy() for x, _ in loader])
    assert accuracy == np.mean(logits.argmax(axis=1) == loader.dataset.labels)
    assert math.isfinite(loss) and loss > 0


def test_callbacks_are_called_in_order(tmp_path):
    calls = []

    class Record(Callbacks):
        def on_epoch_start(self, epoch, epochs, batches):
            calls.append(("start", epoch, epochs, batches))

        def on_batch(self, epoch, batch, loss, accuracy, images_per_second):
            assert math.isfinite(loss) and 0 <= accuracy <= 1 and images_per_second > 0
            calls.append(("batch", epoch, batch))

        def on_evaluate_start(self, epoch, batches):
            calls.append(("evaluate", epoch, batches))

        def on_epoch_end(self, metrics):
            assert (tmp_path / "last.safetensors").exists()  # called once the epoch is saved
            calls.append(("end", metrics["epoch"]))

    history = make_trainer(tmp_path, callbacks=Record()).fit(2)
    expected = []
    for epoch in (1, 2):
        expected += [("start", epoch, 2, 6)] + [("batch", epoch, b) for b in range(1, 7)]
        expected += [("evaluate", epoch, 3), ("end", epoch)]
    assert calls == expected and len(history) == 2


def dropout_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def test_restoring_a_checkpoint_continues_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight", dropout_model, lr=0.1, scheduler=True)
    straight.fit(4)
    make_trainer(tmp_path / "stopped", dropout_model, lr=0.1, scheduler=True).fit(2)
    resumed = make_trainer(tmp_path / "stopped", dropout_model, lr=0.1, scheduler=True, seed=0)
    resumed.restore(load_checkpoint(tmp_path / "stopped" / "last.safetensors"))
    assert resumed.epoch == 2 and resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert [m["epoch"] for m in resumed.fit(4)] == [3, 4]
    for name, value in straight.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], value), name
    assert resumed.fit(4) == []  # nothing left to do


class RecordBatches(Callbacks):
    def __init__(self):
        self.calls = []

    def on_batch(self, epoch, batch, loss, accuracy, images_per_second):
        self.calls.append((epoch, batch, loss, accuracy))


def without_times(history):
    return [{k: v for k, v in metrics.items() if k not in ("seconds", "images_per_second")} for metrics in history]


def test_metrics_read_every_k_batches_report_at_k_and_at_the_last_batch_with_the_same_numbers(tmp_path):
    """6 batches an epoch read every 4 (a GPU's cadence): on_batch after batches 4 and 6, with the
    running loss and accuracy that reading after every batch gives there; the same metrics."""
    every, fourth = RecordBatches(), RecordBatches()
    history = make_trainer(tmp_path / "every", callbacks=every).fit(2)
    later = make_trainer(tmp_path / "fourth", callbacks=fourth, sync_every=4).fit(2)
    assert [(e, b) for e, b, *_ in fourth.calls] == [(1, 4), (1, 6), (2, 4), (2, 6)]
    assert fourth.calls == [call for call in every.calls if call[1] in (4, 6)]
    assert without_times(later) == without_times(history)


def test_the_default_reads_every_batch_on_the_cpu_and_every_few_on_a_gpu(tmp_path):
    assert make_trainer(tmp_path).sync_every == 1
    assert Trainer(linear_model(), None, None, None, tmp_path, device="cuda").sync_every == GPU_SYNC_EVERY > 1


@pytest.mark.parametrize("sync_every", [0, -2, 1.5, True])
def test_sync_every_must_be_a_positive_whole_number(tmp_path, sync_every):
    message = rf"Trainer: sync_every must be a whole number of batches, 1 or more, got {sync_every!r}"
    with pytest.raises(ValueError, match=message):
        make_trainer(tmp_path, sync_every=sync_every)


class InfiniteOnCall(nn.Module):
    """Multiplies its input by infinity on forward call number `at` (1-based), passes it on otherwise."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        self.calls += 1
        return x * float("inf") if self.calls == self.at else x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_loss_read_later_is_named_by_the_batch_that_made_it(tmp_path):
    """Read every 4 batches, the loss of batch 3 is seen when batch 4 is read, and named as batch 3."""
    sabotage = InfiniteOnCall(at=3)
    trainer = make_trainer(tmp_path, model_factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3), sabotage),
                           sync_every=4)
    with pytest.raises(NonFiniteLossError, match=r"the loss became (nan|inf) at epoch 1, batch 3: .*--lr"):
        trainer.fit(1)
    assert sabotage.calls == 4
    assert not (tmp_path / "last.safetensors").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_pending_batches_read_every_loss_and_prediction_in_two_copies(monkeypatch):
    logits = [np.array([[0.0, 2.0], [3.0, 1.0]]), np.array([[5.0, 4.0]])]
    labels = [np.array([1, 1]), np.array([0])]
    pending = PendingBatches()
    for batch, (z, y) in enumerate(zip(logits, labels), start=1):
        pending.add(batch, mc.tensor(0.5 * batch), mc.tensor(z), y)
    copies = []
    monkeypatch.setattr(backend, "to_numpy", lambda array: copies.append(array.shape) or np.asarray(array))
    assert pending.read() == [(1, 0.5, 1, 2), (2, 1.0, 1, 1)]
    assert copies == [(2,), (3,)]  # the two losses, the three predicted classes
    assert pending.read() == []


def numpy_uniform(target):
    """Stands in for cuRAND on a GPU: each draw's uniforms from NumPy, keyed the same way."""
    return lambda key, shape, dtype: np.random.default_rng(key).random(shape, dtype)


@pytest.fixture
def fake_gpu_stream(monkeypatch):
    """GPU random streams without a GPU (see numpy_uniform), and generators left as they were."""
    monkeypatch.setattr(backend, "_philox_uniform", numpy_uniform)
    monkeypatch.setattr(backend, "_generators", {})
    monkeypatch.setattr(backend, "_seed", None)


def test_a_checkpoint_saves_every_device_stream_and_restore_brings_it_back(tmp_path, fake_gpu_stream):
    trainer = make_trainer(tmp_path, seed=7)
    backend.random_generator("cuda:0").random((4,), "float32")  # what a dropout layer on the GPU draws
    trainer.fit(1)
    saved = load_checkpoint(tmp_path / "last.safetensors").meta["rng_state"]
    assert saved["cuda:0"] == {"seed": 7, "draws": 1}
    resumed = make_trainer(tmp_path, seed=7)  # seeds again, as a resumed run does: the stream restarts
    assert backend.random_generator("cuda:0").state == {"seed": 7, "draws": 0}
    resumed.restore(load_checkpoint(tmp_path / "last.safetensors"))
    assert backend.random_generator("cuda:0").state == {"seed": 7, "draws": 1}


def test_without_a_run_folder_the_loop_writes_nothing_and_trains_the_same(tmp_path, monkeypatch):
    written = make_trainer(tmp_path / "run", seed=3).fit(2)
    monkeypatch.chdir(tmp_path / "run")  # where a relative default would land
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    trainer = make_trainer(None, seed=3)
    unwritten = trainer.fit(2)
    assert trainer.run_folder is None and sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    times = ("seconds", "images_per_second")
    assert [{k: v for k, v in m.items() if k not in times} for m in unwritten] == \
           [{k: v for k, v in m.items() if k not in times} for m in written]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_without_a_run_folder_a_non_finite_loss_says_nothing_was_saved():
    trainer = make_trainer(None, model_factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3), Scale()))
    trainer.model[2].factor = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"nothing was saved \(no run folder: give mc.fit an out= folder"):
        trainer.fit(1)


def test_without_a_test_set_there_are_no_test_metrics_and_best_follows_the_latest_epoch(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.test_loader = None
    seen = []

    class Watch(Callbacks):
        def on_evaluate_start(self, epoch, batches):
            seen.append(epoch)

    trainer.callbacks = Watch()
    history = trainer.fit(2)
    assert [list(m) for m in history] == [["epoch", "train_loss", "train_accuracy", "seconds", "images_per_second", "lr"]] * 2
    assert seen == [] and trainer.best_epoch == 2
    assert load_checkpoint(trainer.run_folder.best).meta["epoch"] == 2


class TensorBatches:
    """A loader yielding Tensors (images, labels) rather than arrays, over another loader's batches."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __iter__(self):
        return ((mc.tensor(images), mc.tensor(labels)) for images, labels in self.loader)


def test_a_loader_of_tensors_trains_as_one_of_arrays(tmp_path):
    arrays = make_trainer(None, seed=4)
    expected = arrays.fit(2)
    tensors = make_trainer(None, seed=4)
    tensors.train_loader, tensors.test_loader = TensorBatches(tensors.train_loader), TensorBatches(tensors.test_loader)
    history = tensors.fit(2)
    assert [m["train_loss"] for m in history] == [m["train_loss"] for m in expected]
    assert [m["test_accuracy"] for m in history] == [m["test_accuracy"] for m in expected]
    for name, value in arrays.model.state_dict().items():
        assert np.array_equal(tensors.model.state_dict()[name], value), name
