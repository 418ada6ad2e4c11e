"""The ``fusion`` console script and ``python -m fusioncli``: import only the command that runs.

Typer declares every command it knows before it runs one, so importing all command modules
(``inspect``/``compare``, ``sweep``/``merge``, the listings, ``schema``) and converting their
~25 options each would cost every start-up, ``fusion blocks`` included. ``fusioncli.cli``'s
lazy group (click's pattern) imports the one module that declares the command asked for;
``fusion --help``, a mistyped command that needs the did-you-mean list and shell completion
load them all. The process tricks live here, on the console script's path only: collections
are off while modules import, torch's objects are frozen (:func:`import_frozen`), and the exit
skips the interpreter's teardown. In-process callers (tests, the Python API, ``CliRunner``) get
none of them.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

def import_frozen(name: str):
    """Import ``name`` (the analysis, and torch with it) with the collector off, then freeze what it made.

    torch's import leaves ~170,000 tracked objects; the collector runs ~370 times meanwhile
    (0.25 s here) to free ~7,000 of them, and each later full collection walks them all again
    (0.13 s). So: no collections during the import, then everything moves to the permanent
    generation (``gc.freeze``; those ~7,000 then stay: a process that runs one command)."""
    import importlib

    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> None:
    gc.disable()  # importing makes tens of thousands of long-lived objects: collections meanwhile free little
    try:
        from . import cli
        from .cli.state import state

        state.import_module = import_frozen  # the command modules: fusioncli.cli.LazyGroup
    finally:
        gc.enable()
    try:
        cli.main(argv)
    except SystemExit as e:
        if isinstance(e.code, int) and _can_exit_now():
            _exit_now(e.code)
        raise


def _can_exit_now() -> bool:
    """No compiler state and no other live non-daemon thread: the exit handlers are all that
    has to run. (After ``--compile`` the normal exit path runs: its workers and caches are
    torch's to shut down as it sees fit, and such a run takes far longer than the teardown.)"""
    if "torch._dynamo" in sys.modules or "torch._inductor" in sys.modules:
        return False
    threading = sys.modules.get("threading")
    return threading is None or all(t.daemon or t is threading.main_thread() for t in threading.enumerate())


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown, which frees every module's objects one by one:
    ~0.6 s once torch is imported (``python -c "import torch"`` spends it too), ~40 ms after a
    listing. What an exit must do still happens: the ``atexit`` handlers run (torch's, logging's
    flush, multiprocessing's child reaping, weakref finalizers such as temporary-file removal),
    then the standard streams are flushed. The command has finished its output by then
    (``--output`` files are complete and renamed)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed pipe (`fusion blocks | head -1`), a closed stream
            pass
    os._exit(code)
