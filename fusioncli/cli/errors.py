"""Turning a :class:`FusionError` into one stderr line (or a JSON error object) and an exit code."""

from __future__ import annotations

import copy
import json
import re
import sys
import traceback
from collections.abc import Iterable
from typing import NoReturn

import typer

from ..errors import FusionError
from .state import state

#: the Python API's words for a block's arguments -> the command line's
FLAGS = {"in_channels": "--in", "out_channels": "--out"}


def in_cli_words(err: FusionError, options: Iterable[str]) -> FusionError:
    """A block's error, raised in the Python API's words (an option's name, ``in_channels``,
    ``out_channels``, ``project=True``), in the command line's (``--set r``, ``--in``, ``--out``,
    ``--set project=true``). ``options`` are the block's option names."""
    names = set(options)
    message, field = err.message, err.field
    lead = re.match(r"(\w+):", message)
    if field in names and lead and lead.group(1) == field:
        message, field = f"--set {message}", f"--set {field}"
    elif field in FLAGS:
        field = FLAGS[field]
    for word, flag in FLAGS.items():
        message = re.sub(rf"\b{word}\b", flag, message)
    if names:
        alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
        message = re.sub(rf"\b({alternatives})=True\b", r"--set \1=true", message)
        message = re.sub(rf"\b({alternatives})='([^']*)'", r"--set \1=\2", message)
    if (message, field) == (err.message, err.field):
        return err
    new = copy.copy(err)
    new.message, new.field, new.args = message, field, (message,)
    return new


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
    from ..render.formats import printable  # plain data, no imports

    prefix = f"{where}: " if where else ""
    sys.stderr.write(f"fusion: error: {printable(one_line(prefix + err.message))}\n")


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
