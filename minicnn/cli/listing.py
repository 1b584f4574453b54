"""`minicnn plugins`, `models`, `layers`, `datasets`, `optimizers`, `schedules`: what the installed plugins provide."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from minicnn.cli.app import app, console, errors, fail, warn_about_plugin_problems
from minicnn.plugin.manager import KINDS, plugin_system
from minicnn.plugin.registry import did_you_mean

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
EXTRA_COLUMN = {  # kind -> (table column, its text for an entry), shown before the description
    "models": ("input size", lambda e: "x".join(map(str, e.input_size)) if e.input_size else ""),
    "optimizers": ("default lr", lambda e: f"{e.default_lr:g}"),
}


@app.command()
def plugins(as_json: bool = JSON_OPTION) -> None:
    """List the plugins: version, distribution, hooks, what each provides, and load errors."""
    with fail.on_error():
        infos = list(plugin_system().plugins.values())
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    table = Table(title="minicnn plugins")
    for column in ("plugin", "distribution", "status", "provides", "errors"):
        table.add_column(column, overflow="fold")
    for info in infos:
        provides = "; ".join(f"{kind}: {', '.join(info.provides[kind])}" for kind in KINDS if kind in info.provides)
        status = {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]", "unknown": "[yellow]unknown[/]"}.get(info.status, info.status)
        table.add_row(info.name, f"{info.distribution} {info.version}", status, provides, "\n".join(info.errors))
    console.print(table)


def _list(kind: str, pattern: str, as_json: bool) -> None:
    """Print the entries of `kind` whose names match `pattern`; a pattern that matches nothing exits 1,
    saying so on stderr (`--json` still prints its empty list), like grep."""
    with fail.on_error():
        registry = plugin_system().registries[kind]
    entries = [registry.get(name) for name in registry.names(pattern)]
    if as_json:
        rows = [
            {"name": e.name, "plugin": e.plugin, "description": e.description,
             "input_size": list(e.input_size) if e.input_size else None,
             **({"default_lr": e.default_lr} if kind == "optimizers" else {})}
            for e in entries
        ]
        typer.echo(json.dumps(rows, indent=2))
    elif entries:
        table = Table(title=f"minicnn {kind}" + (f" matching '{pattern}'" if pattern != "*" else ""))
        extra = [EXTRA_COLUMN[kind]] if kind in EXTRA_COLUMN else []
        for column in ("name", "plugin", *(column for column, _ in extra), "description"):
            table.add_column(column, overflow="fold")
        for e in entries:
            table.add_row(e.name, e.plugin, *(text(e) for _, text in extra), e.description)
        console.print(table)
    elif pattern == "*":
        console.print(f"no {kind} are registered")
    warn_about_plugin_problems()
    if not entries and pattern != "*":
        hint = did_you_mean(pattern, registry.names())
        errors.print(f"[red]error:[/] {escape(f'no {kind} match {pattern!r}{hint} (`minicnn {kind}` lists them all)')}",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def models(pattern: str = typer.Argument("*", help="Shell pattern, e.g. 'resnet*'."), as_json: bool = JSON_OPTION) -> None:
    """List the registered models."""
    _list("models", pattern, as_json)


@app.command()
def layers(pattern: str = typer.Argument("*", help="Shell pattern, e.g. '*Pool*'."), as_json: bool = JSON_OPTION) -> None:
    """List the registered layers (usable by name in TOML model specs)."""
    _list("layers", pattern, as_json)


@app.command()
def datasets(pattern: str = typer.Argument("*", help="Shell pattern."), as_json: bool = JSON_OPTION) -> None:
    """List the registered datasets."""
    _list("datasets", pattern, as_json)


@app.command()
def optimizers(pattern: str = typer.Argument("*", help="Shell pattern."), as_json: bool = JSON_OPTION) -> None:
    """List the registered optimizers (for `minicnn train --optimizer`), with their default learning rates."""
    _list("optimizers", pattern, as_json)


@app.command()
def schedules(pattern: str = typer.Argument("*", help="Shell pattern."), as_json: bool = JSON_OPTION) -> None:
    """List the registered learning-rate schedules (for `minicnn train --schedule`)."""
    _list("schedules", pattern, as_json)
