"""`minicnn summary MODEL`: each layer's output shape, parameters, multiply-adds and receptive field, for a
registered model, a spec or a trained model (any reference `resolve_model` takes)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from minicnn.cli.app import app, console, fail, parse_input_size, warn_about_plugin_problems
from minicnn.tools.summary import summarize
from minicnn.train.models import resolve_model


@app.command()
def summary(
    model: str = typer.Argument(..., help="A registered model name (see `minicnn models`), a .toml model spec, or a "
                                          "checkpoint or run folder."),
    input_size: str = typer.Option(None, "--input-size", help="C,H,W, e.g. 1,28,28 (default: the model's own)."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes the model predicts."),
    in_channels: int = typer.Option(None, "--in-channels", help="Input channels (default: the model's own)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show what every layer of a model does to one input: shapes, parameters, multiply-adds, receptive field."""
    with fail.on_error():
        network, meta = resolve_model(model, num_classes=num_classes, in_channels=in_channels)
        size = parse_input_size(input_size) if input_size else meta["input_size"]
        if size is None:
            raise ValueError(f"'{model}' names no input size: pass --input-size C,H,W")
        size = tuple(size)
        result = summarize(network, size)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title=f"{result.model} on a {'x'.join(map(str, size))} input")
    for column, justify in (("layer", "left"), ("type", "left"), ("output", "left"), ("parameters", "right"),
                            ("mult-adds", "right"), ("receptive field", "right")):
        table.add_column(column, justify=justify, no_wrap=column != "receptive field")
    for row in result.rows:
        table.add_row(row.name, row.type, "x".join(map(str, row.output_shape)), f"{row.parameters:,}",
                      f"{row.multiply_adds:,}", "x".join(map(str, row.receptive_field)))
    table.add_section()
    table.add_row("total", "", "x".join(map(str, result.output_shape)), f"{result.parameters:,}", f"{result.multiply_adds:,}", "")
    console.print(table)
    warn_about_plugin_problems()
