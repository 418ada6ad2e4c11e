"""The ``fusion`` command line: a thin Typer layer over :mod:`fusioncli.analysis`.

Exit codes: 0 success; 2 usage or spec error (bad flag, shape, kind, option or preset
file); 1 run-time failure (device unavailable, out of memory, a block that raises);
130 interrupted. :mod:`.entry` maps every outcome to these.
Errors are one line on stderr; ``--debug`` shows the traceback. stdout carries data only.
Importing this module does not import torch: listing commands and ``--help`` stay fast.
"""

from __future__ import annotations

import typer

from .. import __version__
from .state import state

app = typer.Typer(
    name="fusion",
    help="Explore feature fusion blocks: shapes, parameters, exact MACs/FLOPs, memory and latency.\n\n"
    "Exit codes: 0 success, 1 run-time failure (device absent, out of memory, refused by the memory guard, "
    "a block that raises), 2 usage or spec error (bad flag, shape, kind, option or preset file), "
    "130 interrupted (Ctrl-C). Errors are one line on stderr; with --format json, stdout carries "
    "the error object (see `fusion schema`).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fusioncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    state.debug = debug


from . import analyze as _analyze  # noqa: E402,F401  (registers inspect, compare)
from . import listing as _listing  # noqa: E402,F401  (registers blocks, presets)
from . import sweep as _sweep  # noqa: E402,F401  (registers sweep, merge)
from . import schema as _schema  # noqa: E402,F401  (registers schema)
from .entry import main  # noqa: E402,F401  (the console script: one-line errors, exit codes, Ctrl-C)
