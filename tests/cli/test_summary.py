"""`minicnn summary`: the tutorial's LeNet-5 (docs/en/tutorial.md §8) shapes and parameter count, from a model
name, a spec, or a trained model (a checkpoint or its run folder); every number whole in a narrow terminal;
model options from --model-arg."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import minicnn as mc
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


@pytest.mark.parametrize("target", ["best.safetensors", ""], ids=["checkpoint", "run-folder"])
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


def rows_shown_in_order(output: str, expected: list[list[str]]) -> int:
    """How many of the `expected` rows (each the numbers at the end of one table line) appear, in order,
    each whole at the end of a line, with or without the table's borders."""
    found = 0
    for line in output.splitlines():
        tokens = line.replace("│", " ").split()
        if found < len(expected) and tokens[-len(expected[found]):] == expected[found]:
            found += 1
    return found


def expected_numbers(summary: dict) -> list[list[str]]:
    """(output, parameters, mult-adds, receptive field) of each row, the totals (no field) last."""
    joined = lambda dims: "x".join(map(str, dims))  # noqa: E731
    rows = [[joined(r["output_shape"]), f"{r['parameters']:,}", f"{r['multiply_adds']:,}", joined(r["receptive_field"])]
            for r in summary["rows"]]
    total = ["total", joined(summary["output_shape"]), f"{summary['parameters']:,}", f"{summary['multiply_adds']:,}"]
    return rows + [total]


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("name, size", [("resnet50", "3,224,224"), ("lenet5", "1,28,28"),
                                        ("googlenet_small", "3,32,32")])
def test_every_number_stays_whole_in_a_narrow_terminal(name, size, width):
    as_json = json.loads(runner.invoke(app, ["summary", name, "--input-size", size, "--json"]).stdout)
    result = runner.invoke(app, ["summary", name, "--input-size", size], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= width
    expected = expected_numbers(as_json)
    assert rows_shown_in_order(result.stdout, expected) == len(expected)
    assert expected[-1][2] == f"{mc.create_model(name).num_parameters():,}"
    if name == "resnet50":
        assert expected[-1][2] == "25,557,032"  # torchvision's resnet50


def test_a_wide_terminal_shows_every_column_and_narrower_ones_give_up_descriptive_columns_first():
    wide = runner.invoke(app, ["summary", "resnet50", "--input-size", "3,224,224"], env={"COLUMNS": "200"}).stdout
    header = next(line for line in wide.splitlines() if "parameters" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "layer", "type", "output", "parameters", "mult-adds", "receptive field"]
    assert "layer4.0.downsample.0" in wide and "BatchNorm2d" in wide
    narrow = runner.invoke(app, ["summary", "resnet50", "--input-size", "3,224,224"], env={"COLUMNS": "60"}).stdout
    assert "BatchNorm2d" not in narrow and "receptive" in narrow and "field" in narrow


def test_model_args_reach_the_factory():
    padded = json.loads(runner.invoke(app, ["summary", "lenet5", "--json"]).stdout)
    unpadded = runner.invoke(app, ["summary", "lenet5", "--model-arg", "padding=0", "--input-size", "1,32,32", "--json"])
    assert unpadded.exit_code == 0, unpadded.output
    rows = json.loads(unpadded.stdout)["rows"]
    assert rows[0]["output_shape"] == [6, 28, 28]  # (32 - 5) / 1 + 1 with no padding
    assert [r["output_shape"] for r in rows] == [r["output_shape"] for r in padded["rows"]]
    too_small = runner.invoke(app, ["summary", "lenet5", "--model-arg", "padding=0", "--input-size", "1,28,28"])
    assert too_small.exit_code == 1 and "cannot run on input 1x28x28" in too_small.output


def test_a_wrong_model_arg_names_the_model_and_the_key_without_a_traceback():
    result = runner.invoke(app, ["summary", "lenet5", "--model-arg", "width=32"])
    assert result.exit_code == 1 and result.exception is not None and "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    assert text.startswith("error: model 'lenet5' (plugin 'lenet') could not be built") and "'width'" in text
    twice = runner.invoke(app, ["summary", "lenet5", "--num-classes", "3", "--model-arg", "num_classes=4"])
    assert twice.exit_code == 1 and "num_classes is given twice" in twice.stderr
    malformed = runner.invoke(app, ["summary", "lenet5", "--model-arg", "width"])
    assert malformed.exit_code == 1 and "KEY=VALUE" in malformed.stderr
    on_a_spec = runner.invoke(app, ["summary", SPEC, "--model-arg", "padding=0"])
    assert on_a_spec.exit_code == 1 and "takes no arguments (padding)" in " ".join(on_a_spec.stderr.split())
