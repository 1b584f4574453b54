"""`minicnn check NAME`: the conformance check a plugin author runs on a layer or model."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from rich.text import Text

from minicnn.tools import conformance
from minicnn.cli.app import app, console, fail, warn_about_plugin_problems

_MARKS = {"passed": ("✓", "green"), "failed": ("✗", "red"), "skipped": ("-", "yellow")}


@app.command("check")
def check_command(
    name: str = typer.Argument(..., help="A registered model (e.g. lenet5) or layer (e.g. Conv2d)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Build NAME, run forward and backward, gradcheck it in float64, round-trip its state_dict and
    compare CPU with GPU (when one is usable). Exit code 0: passed; 1: a step failed; 2: unknown name."""
    with fail.on_error():
        report = conformance.check(name)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(Text(f"{report.kind} '{report.name}' (plugin '{report.plugin}')", style="bold"))
        table = Table.grid(padding=(0, 1))
        for step in report.steps:
            mark, color = _MARKS[step.status]
            table.add_row(Text(mark, style=color), Text(step.name, style=color), f"{step.seconds:5.2f}s", Text(step.detail))
        console.print(table)
        failed = ", ".join(step.name for step in report.failures())
        verdict = f"{report.name}: failed ({failed})" if failed else f"{report.name}: passed"
        console.print(Text(verdict, style="bold red" if failed else "bold green"))
    warn_about_plugin_problems()
    if not report.passed:
        raise typer.Exit(1)
