"""``fusion schema``: print the JSON Schema of the JSON output (no torch)."""

from __future__ import annotations

from ..errors import FusionError
from . import app
from .errors import fail
from .options import OutputOpt
from .output import atomic_output, check_output


@app.command("schema")
def schema_cmd(output: OutputOpt = None) -> None:
    """Print the JSON Schema (draft 2020-12) of what --format json writes: reports, error entries and the
    error object, versioned with schema_version."""
    from ..schema import schema_text

    try:
        check_output(output)
        with atomic_output(output) as stream:
            stream.write(schema_text())
    except FusionError as e:
        fail(e)
