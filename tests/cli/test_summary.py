"""`minicnn summary`: the tutorial's LeNet-5 (docs/en/tutorial.md §8) shapes and parameter count, from a model
name, a spec, or a trained model (a checkpoint or its run folder)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minicnn.cli import app

runner = CliRunner()
SPEC = str(Path(__file__).resolve().parents[2] / "examples" / "lenet5.toml")


def test_lenet5_summary_shows_the_seed_shapes_and_61706_parameters():
    result = runner.invoke(app, ["summary", "lenet5", "--input-size", "1,28,28"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for shape in ("6x28x28", "6x14x14", "16x10x10", "16x5x5", "120", "84"):
        assert f" {shape} " in result.output
    assert "61,706" in result.output and "416,520" in result.output


def test_summary_of_a_spec_equals_the_plugin_model():
    by_name = json.loads(runner.invoke(app, ["summary", "lenet5", "--json"]).output)
    by_spec = json.loads(runner.invoke(app, ["summary", SPEC, "--json"]).output)
    assert by_spec["parameters"] == by_name["parameters"] == 61_706
    assert [r["output_shape"] for r in by_spec["rows"]] == [r["output_shape"] for r in by_name["rows"]]


@pytest.mark.parametrize("target", ["best.npz", ""], ids=["checkpoint", "run-folder"])
def test_summary_of_a_trained_model_takes_its_input_size_and_refuses_options(trained_lenet, target):
    out, _ = trained_lenet
    by_name = json.loads(runner.invoke(app, ["summary", "lenet5", "--json"]).output)
    trained = runner.invoke(app, ["summary", str(out / target), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["rows"] == by_name["rows"]
    with_options = runner.invoke(app, ["summary", str(out / target), "--num-classes", "3"])
    assert with_options.exit_code == 1 and "takesnoarguments(num_classes)" in "".join(with_options.output.split())


def test_summary_options_change_the_model():
    rows = json.loads(runner.invoke(app, ["summary", "lenet5", "--num-classes", "3", "--json"]).output)
    assert rows["output_shape"] == [3]


def test_bad_input_gives_one_line_and_an_exit_code():
    unknown = runner.invoke(app, ["summary", "lenett"])
    assert unknown.exit_code == 2 and "did you mean 'lenet5'" in unknown.output
    too_small = runner.invoke(app, ["summary", "lenet5", "--input-size", "1,20,20"])
    assert too_small.exit_code == 1 and "cannot run on input 1x20x20" in too_small.output
    assert "Traceback" not in too_small.output
    malformed = runner.invoke(app, ["summary", "lenet5", "--input-size", "1,2"])
    assert malformed.exit_code == 1 and "C,H,W" in malformed.output
    spec_with_options = runner.invoke(app, ["summary", SPEC, "--num-classes", "3"])
    assert spec_with_options.exit_code == 1 and "takes no arguments" in spec_with_options.output


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "summary", "lenett"])
    assert result.exit_code != 0 and result.exception is not None
