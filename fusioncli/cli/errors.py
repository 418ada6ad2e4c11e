"""Turning a :class:`FusionError` into one stderr line (or a JSON error object) and an exit code."""

from __future__ import annotations

import json
import sys
import traceback
from typing import NoReturn

import typer

from ..errors import FusionError
from .state import state


def one_line(text: str) -> str:
    """Messages quote user input: keep them on one line whatever it contains."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def error_object(err: FusionError) -> dict:
    """``{"schema_version": 1, "error": {"type", "message", "field"}}`` (see ``fusion schema``)."""
    from ..report import SCHEMA_VERSION  # not at start-up: only errors need it
    return {"schema_version": SCHEMA_VERSION, "error": {**err.to_dict(), "message": one_line(err.message)}}


def error_line(err: FusionError, where: str | None = None) -> None:
    """``fusion: error: [where: ]message`` on stderr, one line (``--debug`` adds the traceback)."""
    if state.debug:
        traceback.print_exception(err)
    prefix = f"{where}: " if where else ""
    sys.stderr.write(f"fusion: error: {prefix}{one_line(err.message)}\n")


def report_error(err: FusionError, fmt: str = "table", output: str | None = None) -> None:
    """The stderr line and, with ``--format json``, the error object (on stdout, or in ``--output`` FILE)."""
    error_line(err)
    if fmt == "json":
        text = json.dumps(error_object(err)) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            from .output import write_atomic

            try:
                write_atomic(output, text)
            except FusionError as e:  # the file cannot be written either: say so, keep the first error's code
                error_line(e)


def fail(err: FusionError, fmt: str = "table", output: str | None = None) -> NoReturn:
    report_error(err, fmt, output)
    raise typer.Exit(err.exit_code)
