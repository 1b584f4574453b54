"""`minicnn evaluate` and `minicnn predict`: a trained model used on the data it recorded and on
pictures people draw, and one error line (never a traceback) for every kind of bad input."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from minicnn import data
from minicnn.cli import app
from minicnn.train import RunFolder
from minicnn.train.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror
DOCS = Path(__file__).resolve().parents[2] / "docs"


def flat(text: str) -> str:
    return "".join(text.split())


def assert_fails(result, code: int, *fragments: str):
    """A clean failure: the exit code, an `error:` line naming each fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.lstrip().startswith("error:") and "Traceback" not in result.output
    for fragment in fragments:
        assert flat(fragment) in flat(result.output), result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`minicnn train lenet5 --dataset digits --epochs 2 --seed 0 --out DIR`: DIR."""
    folder = tmp_path_factory.mktemp("use")
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0",
                                     "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("target", ["checkpoint", "run-folder"])
def test_evaluate_prints_the_accuracy(run, target):
    path = RunFolder(run).best if target == "checkpoint" else run
    best = max(m["test_accuracy"] for m in RunFolder(run).read_metrics())
    result = runner.invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"digits test set, 359 images: accuracy {best:.2%}" in result.output
    as_json = json.loads(runner.invoke(app, ["evaluate", str(path), "--json"]).output)
    assert as_json["test_accuracy"] == best and as_json["images"] == 359


def image_folder(root: Path, per_class: int = 12) -> Path:
    """root/train/<0,1,2>/ and root/test/<0,1,2>/ holding PNGs of the bundled digits 0, 1 and 2."""
    for split in ("train", "test"):
        digits = data.load_dataset("digits", split)
        for label in range(3):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i, image in enumerate(digits.images[digits.labels == label][:per_class]):
                Image.fromarray(image[0]).save(folder / f"{i}.png")
    return root


def test_evaluate_reads_the_data_folder_the_run_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image_folder(tmp_path / "pictures")
    trained = runner.invoke(app, ["train", "lenet5", "--dataset", "image-folder", "--data-dir", "pictures",
                                  "--epochs", "1", "--seed", "0", "--out", "run"])  # a relative --data-dir
    assert trained.exit_code == 0, trained.output
    assert RunFolder(tmp_path / "run").read_settings()["data_dir"] == str(tmp_path / "pictures")
    accuracy = RunFolder(tmp_path / "run").read_metrics()[0]["test_accuracy"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"image-folder test set, 36 images: accuracy {accuracy:.2%}" in result.output

    (tmp_path / "pictures").rename(tmp_path / "moved")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    assert_fails(result, 1, f"{tmp_path / 'pictures'}, the data folder the run {tmp_path / 'run'} recorded: no longer "
                 "exists", "--data-dir DIR")
    assert len(result.output.strip().splitlines()) == 4, result.output
    given = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--data-dir", str(tmp_path / "moved")])
    assert given.exit_code == 0, given.output
    assert f"accuracy {accuracy:.2%}" in given.output


def test_predict_prints_class_and_probability(run, tmp_path):
    test_set = data.load_dataset("digits", "test")
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, image in zip(paths, test_set.images[:2]):
        Image.fromarray(image[0]).save(path)
    result = runner.invoke(app, ["predict", str(run), *map(str, paths)])
    assert result.exit_code == 0, result.output
    for path, line in zip(paths, result.output.splitlines()):
        assert re.fullmatch(rf"{re.escape(str(path))}: [0-9] \([0-9]+\.[0-9]%\)", line), result.output
    rows = json.loads(runner.invoke(app, ["predict", str(run), *map(str, paths), "--json"]).output)
    assert [row["image"] for row in rows] == [str(p) for p in paths]
    assert all(row["class"] in [str(d) for d in range(10)] and 0 < row["probability"] <= 1 for row in rows)
    assert not any(row["inverted"] for row in rows)


def test_predict_inverts_a_dark_digit_on_white_and_says_so(run, tmp_path):
    digit = data.load_dataset("digits", "test").images[3, 0]
    as_trained, as_drawn = tmp_path / "light-on-dark.png", tmp_path / "dark-on-white.png"
    Image.fromarray(digit).save(as_trained)
    Image.fromarray(255 - digit).save(as_drawn)
    rows = json.loads(runner.invoke(app, ["predict", str(run), str(as_trained), str(as_drawn), "--json"]).output)
    assert [row["inverted"] for row in rows] == [False, True]
    assert (rows[1]["class"], rows[1]["probability"]) == (rows[0]["class"], rows[0]["probability"])
    result = runner.invoke(app, ["predict", str(run), str(as_drawn)])
    assert result.output.strip() == f"{as_drawn}: {rows[0]['class']} ({rows[0]['probability']:.1%})  (inverted: light background)"
    kept = json.loads(runner.invoke(app, ["predict", str(run), str(as_drawn), "--no-invert", "--json"]).output)[0]
    assert not kept["inverted"] and kept["probability"] != rows[0]["probability"]
    forced = runner.invoke(app, ["predict", str(run), str(as_trained), "--invert"])
    assert forced.output.strip().endswith("(inverted: --invert)"), forced.output


def test_the_drawn_digit_of_the_docs_is_the_script_s_drawing_and_is_read_as_its_inverse(run, tmp_path):
    spec = importlib.util.spec_from_file_location("drawn_digit", DOCS / "drawn_digit.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with Image.open(script.PICTURE) as saved:
        np.testing.assert_array_equal(np.asarray(saved.convert("L")), np.asarray(script.draw_three()))
    inverse = tmp_path / "inverse.png"  # at the model's 28x28, as predict reads the picture, then inverted
    with Image.open(script.PICTURE) as saved:
        small = saved.convert("L").resize((28, 28), Image.Resampling.BILINEAR)
    Image.fromarray(255 - np.asarray(small)).save(inverse)
    rows = json.loads(runner.invoke(app, ["predict", str(run), str(script.PICTURE), "--json"]).output)
    reference = json.loads(runner.invoke(app, ["predict", str(run), str(inverse), "--no-invert", "--json"]).output)
    assert rows[0]["inverted"] and (rows[0]["class"], rows[0]["probability"]) == (reference[0]["class"],
                                                                                 reference[0]["probability"])
    assert "minicnn predict" in (DOCS / "training.md").read_text(encoding="utf-8")
    assert "images/drawn-3.png" in (DOCS / "training.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("content", [b"not a checkpoint", None], ids=["corrupt", "missing"])
def test_evaluate_of_a_bad_checkpoint(tmp_path, content):
    path = tmp_path / "best.safetensors"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["evaluate", str(path)])
    assert_fails(result, 1, str(path), "not a minicnn checkpoint" if content else "not found")


def test_evaluate_of_a_truncated_checkpoint(run, tmp_path):
    best = RunFolder(run).best
    path = tmp_path / f"cut{best.suffix}"
    path.write_bytes(best.read_bytes()[:5000])
    assert_fails(runner.invoke(app, ["evaluate", str(path)]), 1, "corrupt or truncated")


def test_predict_of_a_missing_image(run, tmp_path):
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "nothing.png")])
    assert_fails(result, 1, "nothing.png", "not found")


def test_predict_of_a_file_that_is_not_an_image(run, tmp_path):
    (tmp_path / "text.png").write_text("hello")
    assert_fails(runner.invoke(app, ["predict", str(run), str(tmp_path / "text.png")]), 1, "not a readable image")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_checkpoint_with_nan_weights_is_refused(run, tmp_path, command):
    checkpoint = load_checkpoint(RunFolder(run).best)
    name = next(n for n in checkpoint.model if n.endswith("weight"))
    broken = {**checkpoint.model, name: np.full_like(checkpoint.model[name], np.nan)}
    path = save_checkpoint(tmp_path / RunFolder(run).best.name, broken, checkpoint.optimizer, checkpoint.meta)
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    result = runner.invoke(app, [command, str(path)] + ([str(image)] if command == "predict" else []))
    assert_fails(result, 1, f"weight '{name}' holds NaN or infinite values")


def test_a_long_image_path_is_printed_whole(run, tmp_path, monkeypatch):
    from rich.console import Console

    folder = tmp_path / "a-folder-with-a-name-far-longer-than-the-console-is-wide"
    folder.mkdir()
    image = folder / "digit.png"
    Image.fromarray(data.load_dataset("digits", "test").images[0, 0]).save(image)
    monkeypatch.setattr("minicnn.cli.use.console", Console(width=40))
    result = runner.invoke(app, ["predict", str(run), str(image)])
    assert result.exit_code == 0 and result.output.startswith(f"{image}: "), result.output
