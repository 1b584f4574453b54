"""`minicnn plugins`, `models`, `layers`, `datasets`, `optimizers`, `schedules` (the environment cases are in
tests/plugin/test_manager.py)."""

import json

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
