"""The ``fusion`` console script and ``python -m fusioncli``: import only the command that runs.

Typer declares every command it knows before it runs one, so importing all command modules
(``inspect``/``compare``, ``sweep``/``merge``, the listings, ``schema``) and converting their
~25 options each costs every start-up, ``fusion blocks`` included. Here the first word of the
command line picks the one module that declares it; anything else (``fusion --help``, a
mistyped command that needs the did-you-mean list, shell completion) loads them all.
``import fusioncli.cli`` elsewhere (tests, the Python API) always loads them all.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

lazy = False  # read by fusioncli.cli at import: True only on the paths below


def command_word(args: Sequence[str]) -> str | None:
    """The subcommand of a command line: its first word that is not a root flag (``--debug``, ...)."""
    for a in args:
        if a == "--":
            return None
        if not a.startswith("-"):
            return a
    return None


def main(argv: Sequence[str] | None = None) -> None:
    global lazy
    args = sys.argv[1:] if argv is None else argv
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    lazy = not completing
    gc.disable()  # importing makes tens of thousands of long-lived objects: collections meanwhile free little
    try:
        from . import cli

        if lazy:
            cli.load_commands(command_word(args))
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
        except (OSError, ValueError):  # a closed pipe (`fusion blocks | head -1`): nothing left to say
            pass
    os._exit(code)
