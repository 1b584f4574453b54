"""`minicnn train`, `evaluate` and `predict`: the output of a short run, and one error line with a
non-zero exit code (never a traceback) for every kind of bad input."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from minicnn import backend, data
from minicnn.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror


def flat(text: str) -> str:
    """The output with its line wrapping undone (the console wraps at 80 columns when not a terminal)."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`minicnn train lenet5 --dataset digits --epochs 2 --seed 0 --out DIR`: (result, DIR)."""
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0",
                                     "--out", str(out)])
    return result, out


def assert_fails(result, code: int, *fragments: str):
    """A clean failure: the exit code, an `error:` line naming each fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.lstrip().startswith("error:") and "Traceback" not in result.output
    for fragment in fragments:
        assert flat(fragment) in flat(result.output), result.output


def test_train_prints_each_epoch_and_where_the_run_is(run):
    result, out = run
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        line = (rf"epoch{m['epoch']}loss{m['train_loss']:.4f}acc[0-9.]+%\|testloss{m['test_loss']:.4f}"
                rf"acc{m['test_accuracy']:.2%}\|[0-9]+s[0-9,]+img/s")
        assert re.search(line, flat(result.output)), result.output
    assert flat(f"on digits: test accuracy {metrics[-1]['test_accuracy']:.2%}") in flat(result.output)
    assert flat(f"run saved in {out}") in flat(result.output)
    assert {"config.json", "metrics.jsonl", "last.npz", "best.npz"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("target", ["best.npz", ""], ids=["checkpoint", "run-folder"])
def test_evaluate_prints_the_accuracy(run, target):
    _, out = run
    best = max(json.loads(line)["test_accuracy"] for line in (out / "metrics.jsonl").read_text().splitlines())
    result = runner.invoke(app, ["evaluate", str(out / target)])
    assert result.exit_code == 0, result.output
    assert flat(f"digits test set, 359 images: accuracy {best:.2%}") in flat(result.output)
    as_json = json.loads(runner.invoke(app, ["evaluate", str(out / target), "--json"]).output)
    assert as_json["test_accuracy"] == best and as_json["images"] == 359


def test_predict_prints_class_and_probability(run, tmp_path):
    _, out = run
    test_set = data.load_dataset("digits", "test")
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, image in zip(paths, test_set.images[:2]):
        Image.fromarray(image[0]).save(path)
    result = runner.invoke(app, ["predict", str(out / "best.npz"), *map(str, paths)])
    assert result.exit_code == 0, result.output
    for path in paths:
        assert re.search(rf"{re.escape(flat(str(path)))}:[0-9]\([0-9]+\.[0-9]%\)", flat(result.output)), result.output
    rows = json.loads(runner.invoke(app, ["predict", str(out / "best.npz"), *map(str, paths), "--json"]).output)
    assert [row["image"] for row in rows] == [str(p) for p in paths]
    assert all(row["class"] in [str(d) for d in range(10)] and 0 < row["probability"] <= 1 for row in rows)


def test_resume_of_a_finished_run_has_nothing_left_to_train(run):
    _, out = run
    result = runner.invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing left to train" in result.output


def test_an_unknown_model_suggests_a_name(tmp_path):
    result = runner.invoke(app, ["train", "lenett", "--dataset", "digits", "--out", str(tmp_path / "run")])
    assert_fails(result, 2, "did you mean 'lenet5'")


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a usable GPU")
def test_cuda_without_a_gpu(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert_fails(result, 2, "cuda")
    assert not (tmp_path / "r").exists()


def test_an_unknown_optimizer(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--optimizer", "nosuch", "--out", str(tmp_path / "r")])
    assert_fails(result, 1, "unknown optimizer 'nosuch'", "sgd or adam")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    assert_fails(runner.invoke(app, ["train", "--resume", str(tmp_path)]), 1, "not a minicnn run folder")


def test_training_into_a_folder_holding_a_run(run):
    _, out = run
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--out", str(out)])
    assert_fails(result, 1, "already holds a run", f"--resume {out}")


@pytest.mark.parametrize("content", [b"not a checkpoint", None], ids=["corrupt", "missing"])
def test_evaluate_of_a_bad_checkpoint(tmp_path, content):
    path = tmp_path / "best.npz"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["evaluate", str(path)])
    assert_fails(result, 1, str(path), "not a minicnn checkpoint" if content else "not found")


def test_evaluate_of_a_truncated_checkpoint(run, tmp_path):
    _, out = run
    path = tmp_path / "cut.npz"
    path.write_bytes((out / "best.npz").read_bytes()[:5000])
    assert_fails(runner.invoke(app, ["evaluate", str(path)]), 1, "corrupt or truncated")


def test_predict_of_a_missing_image(run, tmp_path):
    _, out = run
    result = runner.invoke(app, ["predict", str(out / "best.npz"), str(tmp_path / "nothing.png")])
    assert_fails(result, 1, "nothing.png", "not found")


def test_predict_of_a_file_that_is_not_an_image(run, tmp_path):
    _, out = run
    (tmp_path / "text.png").write_text("hello")
    assert_fails(runner.invoke(app, ["predict", str(out / "best.npz"), str(tmp_path / "text.png")]), 1, "not a readable image")


def test_mnist_offline_names_what_was_tried_and_does_not_fall_back(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for fragment in ("dataset 'mnist' is not available", "unreachable", os.environ["MINICNN_MIRROR"].rstrip("/"), str(offline)):
        assert flat(fragment) in flat(result.output), result.output
    assert "digits" not in result.output and "run saved in" not in result.output
    assert "DataUnavailableError" not in result.output and "--debug" not in result.output  # a known error, not a crash
    assert not (tmp_path / "r" / "last.npz").exists()


def test_no_dataset_offline_falls_back_to_digits_with_a_note(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--epochs", "1", "--limit-train", "300", "--seed", "0",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    for fragment in ("note:", "dataset 'mnist' is not available", "Training on the bundled 'digits' dataset instead",
                     "done in", "on digits"):
        assert flat(fragment) in flat(result.output), result.output
    assert np.isfinite(json.loads((tmp_path / "r" / "metrics.jsonl").read_text())["test_loss"])




def test_without_a_c_compiler_training_warns_in_one_line_and_runs(tmp_path, monkeypatch):
    from minicnn.kernels import native

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "kernels"))
    native._load.cache_clear()
    try:
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
                                     "--seed", "0", "--out", str(tmp_path / "r")])
    finally:
        monkeypatch.undo()
        native._load.cache_clear()
    assert result.exit_code == 0, result.output
    assert flat("warning: minicnn: the C kernels were not built") in flat(result.output), result.output
    assert "native.py" not in result.output and "NativeBuildWarning" not in result.output
    assert (tmp_path / "r" / "last.npz").exists()
