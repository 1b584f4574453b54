"""`python -m minicnn` runs the command-line interface."""

from minicnn.cli import app

app(prog_name="minicnn")
