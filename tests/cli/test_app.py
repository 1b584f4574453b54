"""The app itself: `--version`, and `-h` as `--help` on the app and on every command."""

import re
import tomllib
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from minicnn.cli import app

runner = CliRunner()
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
COMMANDS = sorted(typer.main.get_command(app).commands)


def test_version_prints_the_project_version_and_exits_0():
    version = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"minicnn {version}\n"


def test_h_is_help_on_the_app():
    short, long = runner.invoke(app, ["-h"]), runner.invoke(app, ["--help"])
    assert short.exit_code == long.exit_code == 0
    assert short.output == long.output and "Usage:" in short.output
    assert re.search(r"--help\s+-h\s", short.output)  # the options table lists -h beside --help


@pytest.mark.parametrize("command", COMMANDS)
def test_h_is_help_on_every_command(command):
    short, long = runner.invoke(app, [command, "-h"]), runner.invoke(app, [command, "--help"])
    assert short.exit_code == 0, short.output
    assert short.output == long.output and f"Usage: root {command}" in short.output


def test_every_command_is_covered():
    expected = {"check", "summary", "models", "layers", "datasets", "optimizers", "schedules", "plugins", "train"}
    assert expected <= set(COMMANDS)
