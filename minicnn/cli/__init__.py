"""The `minicnn` command: parses, calls the library, renders. The only package that prints or exits.

Each module here adds its commands to the one typer app.
"""

from minicnn.cli import check, listing, pictures, plugin_new, summary, tour, train, use  # noqa: F401  (each registers its commands)
from minicnn.cli.app import app

__all__ = ["app"]
