"""`minicnn visualize` and `minicnn plot`: the PNG files they write and print, and one error line with
exit code 1 (never a traceback) for a bad checkpoint, image or run folder, or a missing matplotlib."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from minicnn.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror
needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode != 0,
    reason='matplotlib is not installed (pip install -e ".[plot]")',
)


def flat(text: str) -> str:
    """The output with its line wrapping undone (the console wraps at 80 columns when not a terminal)."""
    return "".join(text.split())


def assert_fails(result, *fragments: str):
    """A clean failure: exit code 1, one `error:` line naming each fragment, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.lstrip().startswith("error:") and "Traceback" not in result.output
    assert result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert flat(fragment) in flat(result.output), result.output


@needs_matplotlib
@pytest.mark.parametrize("target", ["best.safetensors", ""], ids=["checkpoint", "run-folder"])
def test_visualize_writes_and_prints_the_filters_and_each_convolution_s_maps(trained_lenet, target, tmp_path, assert_picture):
    out, digit = trained_lenet
    result = runner.invoke(app, ["visualize", str(out / target), str(digit), "--out", str(tmp_path / "pictures")])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "pictures").iterdir())
    assert [path.name for path in written] == [
        "feature-maps-01-features.0.png", "feature-maps-02-features.3.png", "filters-features.0.png"]
    assert sorted(result.output.split()) == sorted(map(str, written))
    for path in written:
        assert_picture(path, width=600 if path.name.startswith("filters") else 900)


@needs_matplotlib
def test_plot_writes_the_curves_into_the_run_folder_or_where_asked(trained_lenet, tmp_path, assert_picture):
    out, _ = trained_lenet
    result = runner.invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "curves.png")
    assert_picture(out / "curves.png", width=1000, height=400)
    for target, expected in ((tmp_path / "mine.png", tmp_path / "mine.png"), (tmp_path / "here", tmp_path / "here" / "curves.png")):
        result = runner.invoke(app, ["plot", str(out), "--out", str(target)])
        assert result.exit_code == 0 and result.output.strip() == str(expected), result.output
        assert_picture(expected, width=1000, height=400)


@needs_matplotlib
def test_visualize_fails_cleanly_for_a_bad_checkpoint_or_image(trained_lenet, tmp_path):
    out, digit = trained_lenet
    assert_fails(runner.invoke(app, ["visualize", str(tmp_path / "none.npz"), str(digit)]), "checkpoint", "none.npz not found")
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    assert_fails(runner.invoke(app, ["visualize", str(tmp_path / "junk.npz"), str(digit)]), "not a minicnn checkpoint")
    assert_fails(runner.invoke(app, ["visualize", str(out / "best.safetensors"), str(tmp_path / "none.png")]), "image", "none.png not found")


@needs_matplotlib
def test_plot_fails_cleanly_without_a_run_or_its_metrics(tmp_path):
    assert_fails(runner.invoke(app, ["plot", str(tmp_path / "nowhere")]), "run folder", "nowhere not found")
    assert_fails(runner.invoke(app, ["plot", str(tmp_path)]), "has no metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text("", encoding="utf-8")
    assert_fails(runner.invoke(app, ["plot", str(tmp_path)]), "metrics.jsonl holds no finished epoch")


@pytest.mark.parametrize("command", ["plot", "visualize"])
def test_without_matplotlib_each_command_says_how_to_install_it(trained_lenet, command, monkeypatch, tmp_path):
    out, digit = trained_lenet
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    arguments = [str(out)] if command == "plot" else [str(out), str(digit), "--out", str(tmp_path / "pictures")]
    result = runner.invoke(app, [command, *arguments])
    assert_fails(result, f'minicnn {command} needs matplotlib: install it with `pip install "minicnn-framework[plot]"` '
                         '(from a source checkout: `pip install -e ".[plot]"`)')
    assert not (tmp_path / "pictures").exists()
