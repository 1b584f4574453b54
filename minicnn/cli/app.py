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
