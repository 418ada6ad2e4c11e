"""Running the real console entry point in-process (it maps parser errors and Ctrl-C too)."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from fusioncli.cli import main

runner = CliRunner()


def run_main(*args: str):
    """The console script in-process: (exit code, stdout, stderr)."""
    with runner.isolation() as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return code, out, err
