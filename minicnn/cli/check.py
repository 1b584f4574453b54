"""`minicnn check NAME`: the conformance check a plugin author runs on a layer, a model or a model spec."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from rich.text import Text

from minicnn.cli import model_args
from minicnn.cli.app import app, console, fail, warn_about_plugin_problems
from minicnn.tools import conformance

_MARKS = {"passed": ("✓", "green"), "failed": ("✗", "red"), "skipped": ("-", "yellow")}


@app.command("check")
def check_command(
    name: str = typer.Argument(..., help="A registered model (e.g. lenet5) or layer (e.g. Conv2d), or a .toml "
                                         "model spec."),
    input_size: str = typer.Option(None, "--input-size", metavar="N,C,H,W",
                                   help="The input to feed, batch first (default: the registered one; for a model or "
                                        "spec, C,H,W means a batch of 2)."),
    model_arg: list[str] = model_args.option(),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
) -> None:
    """Build NAME, run forward and backward, gradcheck it in float64, round-trip its state_dict and
    compare CPU with GPU (when one is usable). --model-arg passes a model's factory options, or a
    layer's arguments. Exit code 0: passed; 1: a step failed; 2: unknown name."""
    with fail.on_error():
        size = parse_shape(input_size) if input_size is not None else None
        report = conformance.check(name, input_size=size, options=model_args.parse_model_args(model_arg))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        plugin = f" (plugin '{report.plugin}')" if report.plugin else ""
        console.print(Text(f"{report.kind} '{report.name}'{plugin}", style="bold"))
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


def parse_shape(text: str) -> tuple[int, ...]:
    """'2,1,28,28' -> (2, 1, 28, 28): the whole input, batch first, any number of axes."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input-size must be whole numbers separated by commas, batch first (e.g. 2,1,28,28), "
                         f"got '{text}'") from None
    if min(shape) < 1:
        raise ValueError(f"--input-size must be positive numbers, batch first (e.g. 2,1,28,28), got '{text}'")
    return shape
