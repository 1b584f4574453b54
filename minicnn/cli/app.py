"""The typer application, the consoles every command renders to, and the one way commands fail."""

from __future__ import annotations

import contextlib
import re
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from minicnn import __version__
from minicnn.backend import DeviceError
from minicnn.data import DataError
from minicnn.distributed.communicator import DistributedUnavailable
from minicnn.kernels.native import NativeBuildWarning
from minicnn.plugin.manager import SlowPluginWarning, plugin_system
from minicnn.plugin.registry import RegistryError

app = typer.Typer(help="minicnn: a small, readable framework for convolutional networks.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})  # every command inherits -h
console = Console()
errors = Console(stderr=True)

# Errors that mean "you asked for something that does not exist here": exit code 2, like bad usage.
_NOT_AVAILABLE = (RegistryError, DeviceError, DistributedUnavailable)


class Failure:
    """Turns any exception inside a command into one red line and a non-zero exit code.

    `minicnn --debug COMMAND` re-raises instead, to show the traceback.
    """

    debug = False

    @contextlib.contextmanager
    def on_error(self):
        try:
            yield
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if self.debug:
                raise
            known = isinstance(error, (ValueError, TypeError, LookupError, OSError, RuntimeError, FloatingPointError, DataError))
            message = str(error) if known else f"{type(error).__name__}: {error}"
            errors.print(f"[red]error:[/] {escape(in_cli_terms(message))}", highlight=False, soft_wrap=True)
            if not known:
                errors.print("run `minicnn --debug ...` to see the traceback", highlight=False)
            raise typer.Exit(2 if isinstance(error, _NOT_AVAILABLE) else 1) from None


fail = Failure()


def in_cli_terms(message: str) -> str:
    """A library message as the CLI says it: the device keyword becomes its flag (device='cpu', or
    "device='cpu' (--device cpu)" where the library gives both, -> --device cpu)."""
    return re.sub(r"\bdevice='([^']*)'(?: \(--device \1\))?", r"--device \1", message)


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """minicnn's own warnings (the C kernels not built, a plugin slow to import) as one yellow line, not
    Python's source-line format."""
    if issubclass(category, (NativeBuildWarning, SlowPluginWarning)):
        errors.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"minicnn {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback when a command fails."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print minicnn's version and exit."),
) -> None:
    """minicnn: a small, readable framework for convolutional networks."""
    fail.debug = debug
    warnings.showwarning = _show_warning


def parse_input_size(text: str) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28)."""
    try:
        size = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input-size must be C,H,W (three whole numbers, e.g. 1,28,28), got '{text}'") from None
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"--input-size must be C,H,W with three positive numbers, got '{text}'")
    return size


def warn_about_plugin_problems() -> None:
    """One line on stderr per plugin with a problem (its first one), so a broken plugin is visible but harmless."""
    for info in plugin_system().problems():
        more = len(info.errors) - 1
        where = f"{more} more in `minicnn plugins`" if more else "see `minicnn plugins`"
        errors.print(f"[yellow]warning:[/] {escape(f'plugin {info.name!r} ({info.distribution}): {info.errors[0]}')} "
                     f"({where})", highlight=False)
