"""`minicnn summary MODEL`: each layer's output shape, parameters, multiply-adds and receptive field, for a
registered model, a spec or a trained model (any reference `resolve_model` takes).

The table keeps every number whole at any terminal width it can: when the columns do not fit, the
descriptive ones give way first (the receptive field's header takes two lines, the type column is
shortened, then dropped, then the layer names wrap), never the numbers.
"""

from __future__ import annotations

import json

import typer
from rich import box
from rich.cells import cell_len
from rich.table import Table

from minicnn.cli import model_args
from minicnn.cli.app import app, console, fail, parse_input_size, warn_about_plugin_problems
from minicnn.tools.summary import ModelSummary, summarize
from minicnn.train.models import resolve_model

NUMBERS = ("output", "parameters", "mult-adds", "receptive field")  # never shortened
TYPE_MIN_WIDTH = 6  # a type column narrower than this says too little to keep


@app.command()
def summary(
    model: str = typer.Argument(..., help="A registered model name (see `minicnn models`), a .toml model spec, or a "
                                          "checkpoint or run folder."),
    input_size: str = typer.Option(None, "--input-size", help="C,H,W, e.g. 1,28,28 (default: the model's own)."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes the model predicts."),
    in_channels: int = typer.Option(None, "--in-channels", help="Input channels (default: the model's own)."),
    model_arg: list[str] = model_args.option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show what every layer of a model does to one input: shapes, parameters, multiply-adds, receptive field."""
    with fail.on_error():
        options = model_options(model_arg, num_classes=num_classes, in_channels=in_channels)
        network, meta = resolve_model(model, **options)
        size = parse_input_size(input_size) if input_size else meta["input_size"]
        if size is None:
            raise ValueError(f"'{model}' names no input size: pass --input-size C,H,W")
        size = tuple(size)
        result = summarize(network, size)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    console.print(summary_table(result, console.width))
    warn_about_plugin_problems()


def model_options(values: list[str], **given) -> dict:
    """--model-arg KEY=VALUE and the named options (--num-classes ...) as one set of factory arguments;
    an option given both ways is refused rather than one silently winning."""
    options = model_args.parse_model_args(values)
    for key, value in given.items():
        if value is None:
            continue
        if key in options:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{key} is given twice ({flag} {value} and --model-arg {key}={options[key]!r}): "
                             "give it once")
        options[key] = value
    return options


def summary_table(result: ModelSummary, width: int) -> Table:
    """The per-layer table of `result`, laid out to fit `width` columns with every number whole."""
    cells = _cells(result)
    columns, compact = _layout(cells, width)
    title = f"{result.model} on a {_joined(result.input_size)} input"
    table = (Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)) if compact
             else Table(title=title))
    for key, header, column_width, overflow in columns:
        table.add_column(header, justify="right" if key in NUMBERS[1:] else "left", width=column_width,
                         no_wrap=key != "layer", overflow=overflow)
    rows = list(zip(*(cells[key] for key, *_ in columns)))
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_section()
    table.add_row(*rows[-1])
    return table


def _joined(dims) -> str:
    return "x".join(map(str, dims))


def _cells(result: ModelSummary) -> dict[str, list[str]]:
    """Each column's text, one per layer call and, last, the totals."""
    rows = result.rows
    return {
        "layer": [row.name for row in rows] + ["total"],
        "type": [row.type for row in rows] + [""],
        "output": [_joined(row.output_shape) for row in rows] + [_joined(result.output_shape)],
        "parameters": [f"{row.parameters:,}" for row in rows] + [f"{result.parameters:,}"],
        "mult-adds": [f"{row.multiply_adds:,}" for row in rows] + [f"{result.multiply_adds:,}"],
        "receptive field": [_joined(row.receptive_field) for row in rows] + [""],
    }


def _layout(cells: dict[str, list[str]], width: int) -> tuple[list[tuple[str, str, int, str]], bool]:
    """(column, header, content width, overflow) of each column shown, in order, and whether the table
    goes without borders (compact).

    The first layout that fits `width`: every column at its natural width; the receptive field's
    header on two lines; the type column shortened (to TYPE_MIN_WIDTH at least); the type column
    dropped; then without borders; then with the layer names wrapped. With borders a column costs
    its content width plus 3 (padding on each side and one border), the table 1 more for its closing
    border; without, two spaces part the columns.
    """
    natural = {key: max(cell_len(text) for text in [key, *texts]) for key, texts in cells.items()}
    layer = ("layer", "layer", natural["layer"], "fold")
    kind = ("type", "type", natural["type"], "ellipsis")
    for rf_header in ("receptive field", "receptive\nfield"):
        rf_width = max(cell_len(text) for text in [*rf_header.split("\n"), *cells["receptive field"]])
        numbers = [*((key, key, natural[key], "fold") for key in NUMBERS[:-1]),
                   ("receptive field", rf_header, rf_width, "fold")]
        room = width - 1 - sum(column_width + 3 for _, _, column_width, _ in numbers)  # for layer and type
        if room >= natural["layer"] + natural["type"] + 6:
            return [layer, kind, *numbers], False
    if room - natural["layer"] - 6 >= TYPE_MIN_WIDTH:
        return [layer, ("type", "type", room - natural["layer"] - 6, "ellipsis"), *numbers], False
    if room >= natural["layer"] + 3:
        return [layer, *numbers], False
    room = width - sum(column_width + 2 for _, _, column_width, _ in numbers)  # for the layer, without borders
    return [("layer", "layer", max(min(room, natural["layer"]), 1), "fold"), *numbers], True
