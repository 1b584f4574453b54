"""`minicnn plugins`, `models`, `layers`, `datasets`, `optimizers`, `schedules` (the environment cases are in
tests/plugin/test_manager.py)."""

import json
import re
from pathlib import Path

from typer.testing import CliRunner

import minicnn.plugin.manager
from minicnn.cli import app

runner = CliRunner()


def test_plugins_table_names_each_plugin_and_what_it_provides():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "lenet" in result.output and "models: lenet5" in result.output and "loaded" in result.output


def test_plugins_json_has_every_field():
    rows = json.loads(runner.invoke(app, ["plugins", "--json"]).output)
    lenet = next(r for r in rows if r["name"] == "lenet")
    assert set(lenet) == {"name", "distribution", "version", "status", "hooks", "provides", "errors"}
    assert lenet["hooks"] == ["minicnn_register_models"] and lenet["errors"] == []


def test_models_with_a_pattern():
    assert "lenet5" in runner.invoke(app, ["models", "len*"]).output
    assert "no models match 'zzz*'" in runner.invoke(app, ["models", "zzz*"]).output
    rows = json.loads(runner.invoke(app, ["models", "--json"]).output)
    assert {"name": "lenet5", "plugin": "lenet"}.items() <= next(r for r in rows if r["name"] == "lenet5").items()


def test_layers_json_lists_the_core_layers():
    names = [r["name"] for r in json.loads(runner.invoke(app, ["layers", "--json"]).output)]
    assert {"Conv2d", "Linear", "MaxPool2d", "BatchNorm2d", "LocalResponseNorm", "Dropout"} <= set(names)


def test_a_misspelled_plugin_name_shows_in_the_plugins_table_and_as_a_warning(monkeypatch):
    monkeypatch.setenv("MINICNN_DISABLE_PLUGINS", "lenett")
    monkeypatch.setattr(minicnn.plugin.manager, "_system", None)  # load with this environment; restored afterwards
    monkeypatch.setenv("COLUMNS", "300")
    table = runner.invoke(app, ["plugins"])
    assert table.exit_code == 0
    row = next(line for line in table.output.splitlines() if "lenett" in line)
    assert "not installed" in row and "unknown" in row and "did you mean 'lenet'" in row
    models = runner.invoke(app, ["models", "len*"])
    assert models.exit_code == 0 and "lenet5" in models.output
    assert "warning: plugin 'lenett' (not installed): MINICNN_DISABLE_PLUGINS names 'lenett'" in models.output


def test_optimizers_and_schedules_list_minicnn_s_own():
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["optimizers", "--json"]).output)}
    assert {name: (r["plugin"], r["default_lr"]) for name, r in rows.items()} == {
        "adam": ("optimizers", 0.001), "sgd": ("optimizers", 0.03)}
    table = runner.invoke(app, ["optimizers"], terminal_width=200).output
    assert "default lr" in table and "0.03" in table
    names = [r["name"] for r in json.loads(runner.invoke(app, ["schedules", "--json"]).output)]
    assert names == ["cosine", "none", "step"]
    assert "no schedules match 'zzz*'" in runner.invoke(app, ["schedules", "zzz*"]).output


def test_a_pattern_that_matches_nothing_exits_1_and_says_what_to_do():
    result = runner.invoke(app, ["models", "zzz*"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no models match 'zzz*' (`minicnn models` lists them all)"
    close = runner.invoke(app, ["models", "lenet6"])
    assert close.exit_code == 1 and "no models match 'lenet6'; did you mean 'lenet5'" in " ".join(close.stderr.split())
    layers = runner.invoke(app, ["layers", "Conv3d"])
    assert layers.exit_code == 1 and "did you mean 'Conv2d'" in layers.stderr and "`minicnn layers`" in layers.stderr
    as_json = runner.invoke(app, ["datasets", "zzz*", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout) == [] and "no datasets match" in as_json.stderr


def test_models_are_listed_in_natural_order_in_the_table_and_as_json():
    names = [r["name"] for r in json.loads(runner.invoke(app, ["models", "resnet*", "--json"]).stdout)]
    numbers = [int(name.removeprefix("resnet")) for name in names if name.removeprefix("resnet").isdigit()]
    assert numbers == sorted(numbers) and {18, 34, 50, 101} <= set(numbers)
    table = runner.invoke(app, ["models", "resnet*"], env={"COLUMNS": "200"}).stdout
    rows = [line.split()[1] for line in table.splitlines() if line.startswith("│ resnet")]
    assert rows == names


def test_the_readme_shows_no_command_line_that_pipes_minicnn_into_minicnn():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    piped = [line for line in readme.splitlines() if re.search(r"^\s*(\$ )?minicnn\b[^#]*\|\s*minicnn\b", line)]
    assert piped == []
