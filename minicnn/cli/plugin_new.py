"""`minicnn plugin new NAME`: write a plugin package to start from (minicnn.tools.plugin_template)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.markup import escape

from minicnn.cli.app import app, console, fail
from minicnn.tools.plugin_template import write_plugin

plugin_app = typer.Typer(help="Start a plugin of your own.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("new")
def new(
    name: str = typer.Argument(..., help="The plugin's name, e.g. scaled-tanh: a layer ScaledTanh, a model scaled_tanh_net."),
    directory: Path = typer.Option(Path("."), "--dir", help="The folder in which to make the plugin's folder."),
) -> None:
    """Write a plugin package (pyproject.toml with the entry point, a layer with its own backward, a
    model, a README and tests) that installs with pip and passes `minicnn check` as written."""
    with fail.on_error():
        names, folder, paths = write_plugin(name, directory)
    console.print(f"wrote plugin '{names.plugin}' (distribution {names.distribution}) in {escape(str(folder))}:",
                  highlight=False, soft_wrap=True)
    for path in paths:
        console.print(f"  {escape(path)}", highlight=False, soft_wrap=True)
    console.print("next:", highlight=False)
    for command in (f"pip install -e {shlex.quote(str(folder))}", f"minicnn check {names.layer}",
                    f"minicnn check {names.model}", f"python -m pytest {shlex.quote(str(folder / 'tests'))}"):
        console.print(f"  {escape(command)}", highlight=False, soft_wrap=True)
