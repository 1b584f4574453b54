"""mc.fit and mc.evaluate: any Module on any of the four kinds of data, with the loop, metrics and
run folder of `minicnn train`; nothing written without `out`; a resume ending where an unbroken run
ends; evaluate against a cross-entropy computed by hand; bad input refused by argument name."""

import json
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data import ArrayDataset, DataLoader, Dataset
from minicnn.inference import evaluate_checkpoint
from minicnn.train import CheckpointError, RunFolder, Trainer, load_checkpoint, resolve_model, resume
from minicnn.train.fit import evaluate, fit

KEYS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "images_per_second", "lr"]
TIMES = ("seconds", "images_per_second")


def rows(n, seed, noise=0.6, size=6):
    """3 classes of (size x size) uint8 images: class k has bright rows k, k+3, ..., over noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.uniform(0, noise, (n, size, size))
    for k in range(3):
        images[labels == k, k::3, :] += 1 - noise
    return (images * 255).astype(np.uint8), labels


def small_model(seed=0, dropout=False):
    mc.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), *([nn.Dropout(0.2)] if dropout else []), nn.Linear(16, 3)]
    return nn.Sequential(*layers)


def without_times(history):
    return [{k: v for k, v in metrics.items() if k not in TIMES} for metrics in history]


def same_arrays(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[name], b[name]) for name in a)


def test_fit_learns_and_its_history_is_the_run_s_metrics(tmp_path):
    out = tmp_path / "run"
    train, test = rows(300, 1), rows(90, 2)
    history = fit(small_model(), train, test, epochs=4, batch_size=16, lr=0.05, seed=0, out=out, progress=False)
    assert [list(m) for m in history] == [KEYS] * 4
    assert history == RunFolder(out).read_metrics()
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert history[0]["train_accuracy"] < history[-1]["train_accuracy"] and history[-1]["test_accuracy"] >= 0.9


def test_without_out_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = small_model()
    history = fit(model, rows(60, 1), rows(30, 2), epochs=2, batch_size=16, seed=0, progress=False)
    assert len(history) == 2 and list(tmp_path.iterdir()) == []


def test_the_same_seed_gives_the_same_run_another_seed_another():
    runs = [fit(small_model(), rows(90, 1), rows(30, 2), epochs=2, batch_size=8, seed=seed, progress=False)
            for seed in (3, 3, 4)]
    assert without_times(runs[0]) == without_times(runs[1]) != without_times(runs[2])


def channels_first(pair):
    images, labels = pair
    return images[:, None], labels


def as_float(pair):
    images, labels = pair
    return images / 255.0, labels


class Samples(Dataset):
    """A dataset of one's own: indexable uint8 samples (C, H, W) with class names, no arrays attribute."""

    def __init__(self, images, labels):
        self.samples, self.labels, self.classes = images, labels, ["a", "b", "c"]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.samples[index], int(self.labels[index])


KINDS = ["(N, H, W) uint8", "(N, C, H, W) uint8", "(N, H, W) float64", "ArrayDataset", "Dataset", "DataLoader"]


def given_as(kind, pair):
    return {
        "(N, H, W) uint8": lambda: pair, "(N, C, H, W) uint8": lambda: channels_first(pair),
        "(N, H, W) float64": lambda: as_float(pair), "ArrayDataset": lambda: ArrayDataset(*channels_first(pair)),
        "Dataset": lambda: Samples(*channels_first(pair)),
        "DataLoader": lambda: DataLoader(ArrayDataset(*channels_first(pair)), 8, shuffle=True, seed=5),
    }[kind]()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_data_trains_on_the_same_images(kind):
    """Each kind of the same images, unnormalised, gives the run of (N, 1, H, W) float32 in [0, 1]."""
    train, test = rows(90, 1), rows(30, 2)
    reference = (train[0][:, None].astype(np.float32) / 255, train[1])
    options = dict(epochs=2, batch_size=8, seed=5, normalize=False, progress=False)
    expected = small_model()
    fit(expected, reference, as_float(test), **options)
    model = small_model()
    history = fit(model, given_as(kind, train), as_float(test), **options)
    assert len(history) == 2 and history[-1]["test_accuracy"] > 0.5
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, expected.state_dict()[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "DataLoader"])
def test_every_kind_fit_batches_itself_is_normalised_by_the_training_images_statistics(kind):
    model = small_model()
    fit(model, given_as(kind, rows(60, 1)), epochs=1, seed=0, progress=False)
    pixels = rows(60, 1)[0] / 255.0
    assert model.input_normalization["mean"] == pytest.approx([pixels.mean()])
    assert model.input_normalization["std"] == pytest.approx([pixels.std()])


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_takes_every_kind_of_data(kind):
    model = small_model()
    fit(model, rows(60, 1), epochs=1, seed=0, normalize=False, progress=False)
    images, labels = rows(40, 2)
    expected = evaluate(model, (images / 255.0, labels))
    assert evaluate(model, given_as(kind, (images, labels))) == pytest.approx(expected, rel=1e-5)


def flat_digits_model():
    mc.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def test_a_dataset_name_trains_on_its_train_split_and_tests_on_its_test_split():
    model = flat_digits_model()
    history = fit(model, "digits", epochs=1, batch_size=32, seed=0, progress=False)
    test = mc.data.load_dataset("digits", "test")
    assert history[0]["test_accuracy"] == pytest.approx(evaluate(model, "digits")["accuracy"])
    assert history[0]["test_accuracy"] == pytest.approx(evaluate(model, (test.images, test.labels))["accuracy"])
    assert history[0]["test_accuracy"] > 0.7


def test_without_a_test_set_the_metrics_have_no_test_keys_and_best_is_the_latest_epoch(tmp_path):
    history = fit(small_model(), rows(60, 1), epochs=2, batch_size=16, seed=0, out=tmp_path / "run", progress=False)
    assert [list(m) for m in history] == [[k for k in KEYS if not k.startswith("test")]] * 2
    folder = RunFolder(tmp_path / "run")
    assert load_checkpoint(folder.best).meta["epoch"] == 2


def test_fit_normalises_arrays_as_minicnn_train_does_and_evaluate_follows(tmp_path):
    train, test = rows(90, 1), rows(30, 2)
    model = small_model()
    fit(model, train, test, epochs=1, seed=0, out=tmp_path / "run", progress=False)
    pixels = train[0] / 255.0
    statistics = model.input_normalization
    assert statistics["mean"] == pytest.approx([pixels.mean()]) and statistics["std"] == pytest.approx([pixels.std()])
    assert load_checkpoint(RunFolder(tmp_path / "run").last).meta["normalize"] == statistics
    by_hand = ((test[0][:, None] / 255.0 - pixels.mean()) / pixels.std(), test[1])
    model.input_normalization = None
    assert evaluate(model, by_hand)["loss"] == pytest.approx(RunFolder(tmp_path / "run").read_metrics()[0]["test_loss"], rel=1e-5)


def cross_entropy_by_hand(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def test_evaluate_is_the_cross_entropy_and_accuracy_of_the_model_s_logits():
    model = small_model(dropout=True)
    images, labels = rows(50, 3)
    scaled = images[:, None].astype(np.float64) / 255
    with mc.no_grad():
        model.eval()
        logits = model(mc.tensor(scaled.astype(np.float32))).numpy().astype(np.float64)
    model.train()
    result = evaluate(model, (images, labels), batch_size=7)
    assert result["loss"] == pytest.approx(cross_entropy_by_hand(logits, labels), rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((logits.argmax(axis=1) == labels).mean()))
    assert model.training and all(module.training for module in model.modules())  # its mode, restored


def test_evaluate_leaves_a_model_in_eval_mode_in_eval_mode():
    model = small_model(dropout=True).eval()
    evaluate(model, rows(20, 3))
    assert not any(module.training for module in model.modules())


def test_fit_with_out_writes_a_run_the_cli_evaluates_like_mc_evaluate(tmp_path):
    model = mc.create_model("lenet5", num_classes=10, in_channels=1)
    fit(model, "digits", epochs=1, batch_size=64, seed=0, out=tmp_path / "run", progress=False)
    settings = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert settings["model"] == "lenet5" and settings["dataset"] == "digits" and settings["python_objects"] == {}
    by_cli = evaluate_checkpoint(tmp_path / "run")
    mine = evaluate(model, "digits")
    assert by_cli["test_accuracy"] == pytest.approx(mine["accuracy"])
    assert by_cli["test_loss"] == pytest.approx(mine["loss"], rel=1e-5)
    rebuilt, _ = resolve_model(tmp_path / "run")
    assert same_arrays(rebuilt.state_dict(), model.state_dict())


def test_plot_reads_a_fit_run(tmp_path):
    pytest.importorskip("matplotlib")
    from minicnn.tools.pictures import plot_training

    fit(small_model(), rows(60, 1), rows(30, 2), epochs=2, seed=0, out=tmp_path / "run", progress=False)
    assert plot_training(tmp_path / "run").stat().st_size > 0


def test_a_model_the_cli_cannot_rebuild_is_refused_with_how_to_load_it_in_python(tmp_path):
    model = small_model()
    fit(model, rows(30, 1), epochs=1, seed=0, out=tmp_path / "own", progress=False)
    settings = json.loads((tmp_path / "own" / "config.json").read_text(encoding="utf-8"))
    assert settings["model"] == "Sequential"
    assert settings["python_objects"] == {"train": "arrays", "model": "minicnn.nn.containers.Sequential"}
    with pytest.raises(CheckpointError, match=r"trained from Python with mc.fit.*model.load_state_dict\(minicnn.train.load_checkpoint"):
        resolve_model(tmp_path / "own")
    with pytest.raises(ValueError, match=r"resume it with mc.fit\(model, train, test, resume="):
        resume(tmp_path / "own", notify=lambda message: None)
    again = small_model(seed=5)
    again.load_state_dict(load_checkpoint(RunFolder(tmp_path / "own").last).model)
    assert same_arrays(again.state_dict(), model.state_dict())


def three_digits():
    """The bundled digits 0, 1 and 2 as arrays."""
    digits = mc.data.load_dataset("digits", "train")
    chosen = digits.labels < 3
    return digits.images[chosen], digits.labels[chosen]


def test_a_registered_model_changed_after_it_was_built_is_recorded_as_python_s(tmp_path):
    """Transfer learning: lenet5's last layer replaced by a 3-class one is no longer what
    create_model("lenet5") builds, so the CLI must not rebuild it as lenet5."""
    changed = mc.create_model("lenet5")
    changed.classifier.add_module("5", nn.Linear(84, 3))
    fit(changed, three_digits(), epochs=1, seed=0, out=tmp_path / "run", progress=False)
    settings = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert settings["model"] == "LeNet5" and "model" in settings["python_objects"]
    with pytest.raises(CheckpointError, match="trained from Python with mc.fit"):
        resolve_model(tmp_path / "run")


def test_resume_ends_with_the_weights_of_a_run_never_stopped(tmp_path, monkeypatch):
    train, test = rows(120, 1), rows(30, 2)
    options = dict(epochs=3, batch_size=16, lr=0.05, seed=7, augment=True, progress=False)
    whole = small_model(dropout=True)
    fit(whole, train, test, out=tmp_path / "whole", **options)

    save = Trainer._save

    def stop_after_epoch_two(self, metrics):
        save(self, metrics)
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save", stop_after_epoch_two)
        with pytest.raises(KeyboardInterrupt):
            fit(small_model(dropout=True), train, test, out=tmp_path / "stopped", **options)
    assert load_checkpoint(RunFolder(tmp_path / "stopped").last).meta["epoch"] == 2
    resumed = small_model(seed=99, dropout=True)  # other initial weights: the checkpoint's replace them
    history = fit(resumed, train, test, resume=tmp_path / "stopped", progress=False)
    assert [m["epoch"] for m in history] == [3]
    assert same_arrays(resumed.state_dict(), whole.state_dict())
    for name in ("last", "best"):
        a = load_checkpoint(getattr(RunFolder(tmp_path / "whole"), name))
        b = load_checkpoint(getattr(RunFolder(tmp_path / "stopped"), name))
        assert same_arrays(a.model, b.model) and same_arrays(a.optimizer["arrays"], b.optimizer["arrays"])
    assert without_times(RunFolder(tmp_path / "stopped").read_metrics()) == without_times(RunFolder(tmp_path / "whole").read_metrics())


@pytest.fixture
def finished_run(tmp_path):
    fit(small_model(), rows(60, 1), rows(30, 2), epochs=2, batch_size=16, lr=0.05, seed=0, out=tmp_path / "run",
        progress=False)
    return tmp_path / "run"


def test_resume_with_epochs_extends_the_run(finished_run):
    model = small_model()
    history = fit(model, rows(60, 1), rows(30, 2), epochs=4, resume=finished_run, progress=False)
    assert [m["epoch"] for m in history] == [3, 4]
    assert [m["epoch"] for m in RunFolder(finished_run).read_metrics()] == [1, 2, 3, 4]
    assert load_checkpoint(RunFolder(finished_run).last).meta["epoch"] == 4


@pytest.mark.parametrize("change, message", [
    (dict(lr=0.5), r"^lr: the run in .* has lr=0.05, which a resume keeps; leave lr out"),
    (dict(batch_size=8), r"^batch_size: the run in .* has batch_size=16"),
    (dict(epochs=1), r"^epochs: the run in .* has done 2 epochs; give epochs >= 2"),
])
def test_resume_refuses_settings_the_run_fixes(finished_run, change, message):
    before = (RunFolder(finished_run).metrics_file.read_bytes(), RunFolder(finished_run).last.read_bytes())
    with pytest.raises(ValueError, match=message):
        fit(small_model(), rows(60, 1), rows(30, 2), resume=finished_run, progress=False, **change)
    assert (RunFolder(finished_run).metrics_file.read_bytes(), RunFolder(finished_run).last.read_bytes()) == before


def test_resume_refuses_a_model_whose_weights_are_not_the_checkpoint_s_naming_the_first(finished_run):
    mc.manual_seed(0)
    other = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"^model: '1.weight' is \(8, 36\) in the model but \(16, 36\) in the run's checkpoint"):
        fit(other, rows(60, 1), rows(30, 2), resume=finished_run, progress=False)


@pytest.mark.parametrize("train, test, options, message", [
    ((np.zeros((10, 6, 6), np.uint8), np.zeros(9, np.int64)), None, {}, r"^train: labels must be \(N,\) = \(10,\), one per image, got shape \(9,\)"),
    ((np.zeros((10, 36), np.uint8), np.zeros(10, np.int64)), None, {}, r"^train: images must be \(N, C, H, W\), or \(N, H, W\)"),
    (rows(30, 1), (np.zeros((4, 2, 6, 6), np.uint8), np.zeros(4, np.int64)), {}, r"^test: images of \(2, 6, 6\) but train has \(1, 6, 6\)"),
    (rows(30, 1), (np.zeros((4, 6, 6), np.uint8), np.full(4, 3)), {}, r"^test: labels span 3..3, but must be 0..2"),
    ((np.zeros((4, 6, 6), np.int32), np.zeros(4, np.int64)), None, {}, r"^train: images must be uint8 \(0..255\) or floating point"),
    ((np.full((4, 6, 6), np.nan), np.zeros(4, np.int64)), None, {}, r"^train: images hold NaN"),
    ("digitz", None, {}, r"^train: unknown dataset 'digitz'; did you mean 'digits'"),
    (rows(30, 1), "mnistt", {}, r"^test: unknown dataset 'mnistt'"),
    (rows(30, 1), None, {"lr": math.nan}, r"^lr \(--lr\) must be a finite number >= 0, got nan"),
    (rows(30, 1), None, {"epochs": 0}, r"^epochs \(--epochs\) must be a whole number >= 1"),
    (DataLoader(ArrayDataset(*channels_first(rows(30, 1))), 8), None, {"augment": True}, r"^augment: train is a DataLoader"),
    (rows(30, 1), DataLoader(ArrayDataset(*channels_first(rows(30, 1))), 8), {}, r"^test: a DataLoader is used as given, but fit normalises"),
])
def test_bad_input_is_refused_naming_the_argument_and_nothing_is_written(tmp_path, train, test, options, message):
    with pytest.raises(ValueError, match=message):
        fit(small_model(), train, test, out=tmp_path / "run", progress=False, **options)
    assert not (tmp_path / "run").exists()


def test_other_kinds_of_argument_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match="model must be a minicnn.nn.Module"):
        fit("lenet5", "digits")
    with pytest.raises(TypeError, match="train must be a registered dataset name, an \\(images, labels\\) pair"):
        fit(small_model(), [1, 2, 3])
    with pytest.raises(ValueError, match="not both"):
        fit(small_model(), rows(30, 1), out=tmp_path / "a", resume=tmp_path / "b")
    with pytest.raises(ValueError, match="^data: labels must be"):
        evaluate(small_model(), (np.zeros((3, 6, 6)), np.zeros(2, np.int64)))


def test_a_model_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    mc.manual_seed(0)
    five = nn.Sequential(nn.Flatten(), nn.Linear(36, 5))
    with pytest.raises(ValueError, match="gives 5 outputs per image .* but dataset 'train' has 3 classes"):
        fit(five, rows(30, 1), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_progress_is_a_line_per_epoch_on_stderr(capsys):
    fit(small_model(), rows(30, 1), rows(9, 2), epochs=2, seed=0)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "test loss" in lines[0]
    fit(small_model(), rows(30, 1), epochs=1, seed=0, progress=False)
    assert capsys.readouterr() == ("", "")
