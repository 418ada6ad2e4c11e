"""Turning a :class:`FusionError` into one stderr line (or a JSON error object) and an exit code."""

from __future__ import annotations

import json
import sys
import traceback
from typing import NoReturn

import typer

from ..errors import FusionError
from ..report import SCHEMA_VERSION
from .state import state


def fail(err: FusionError, fmt: str = "table") -> NoReturn:
    if state.debug:
        traceback.print_exception(err)
    sys.stderr.write(f"fusion: error: {err.message}\n")
    if fmt == "json":
        json.dump({"schema_version": SCHEMA_VERSION, "error": err.to_dict()}, sys.stdout)
        sys.stdout.write("\n")
    raise typer.Exit(err.exit_code)
