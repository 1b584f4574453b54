"""The typer application and the console every command renders to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="minicnn: a small, readable framework for convolutional networks.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.callback()
def main() -> None:
    """minicnn: a small, readable framework for convolutional networks."""


def warn_about_plugin_problems() -> None:
    """One line on stderr per plugin that failed, so a broken plugin is visible but harmless."""
    from minicnn.plugins import plugin_system

    for info in plugin_system().problems():
        errors.print(f"[yellow]warning:[/] plugin '{info.name}' ({info.distribution}): {info.errors[0]}; see `minicnn plugins`")
