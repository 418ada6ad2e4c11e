"""The process entry point around the Typer app: exit codes and one-line errors for everything.

Typer's standalone mode prints usage errors as a multi-line box and turns Ctrl-C into
a silent exit; here the app runs with ``standalone_mode=False`` and every outcome is
mapped: usage errors (bad flag, bad option value) are one line and exit 2, Ctrl-C is
"fusion: interrupted" and exit 130, an unexpected exception is one line and exit 1
(``--debug`` shows its traceback). With ``--format json`` each of them also writes the
JSON error object, so a script never parses an empty stdout.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Sequence

from ..errors import FusionError, SpecError
from .errors import error_object, report_error
from .state import state

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as _click_exc

from typer import Abort  # noqa: E402  (typer's own class in 0.29, click's before)

ClickException = _click_exc.ClickException
NoArgsIsHelpError = getattr(_click_exc, "NoArgsIsHelpError", ())

INTERRUPTED = 130


class UsageError(SpecError):
    """A bad command line caught by the parser (unknown flag, value of the wrong type): exit code 2."""

    kind = "usage_error"


class InternalError(FusionError):
    """An exception nothing anticipated: exit code 1."""

    kind = "internal_error"


class Interrupted(FusionError):
    """Ctrl-C: exit code 130."""

    kind = "interrupted"
    exit_code = INTERRUPTED


TERMINATED = 143  # 128 + SIGTERM


class Terminated(Interrupted):
    """SIGTERM (``kill``, ``timeout``, a scheduler's end of job): exit code 143."""

    kind = "terminated"
    exit_code = TERMINATED


class SigTerm(KeyboardInterrupt):
    """Raised where SIGTERM lands, so that it unwinds exactly as Ctrl-C does: ``--output`` files left as
    they were, temporary files removed, finished jsonl lines complete."""


_signals = {"term": False}


def _on_sigterm(signum, frame) -> None:
    if _signals["term"]:  # a second SIGTERM while unwinding: let the first one finish the clean-up
        return
    _signals["term"] = state.signalled = True
    raise SigTerm()


def _on_sigint(signum, frame) -> None:
    state.signalled = True  # remembered: torch's compile path can catch the exception and carry on
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM handled as Ctrl-C for the duration, and both signals remembered in ``state.signalled``
    (main thread only; the previous handlers restored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # not where SIGINT is ignored (a background job)
        signal.signal(signal.SIGINT, _on_sigint)
    _signals["term"] = state.signalled = False
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _option_value(args: Sequence[str], names: Sequence[str]) -> str | None:
    """The last value given on the command line to an option named ``names`` (``--x V``, ``--x=V``, ``-xV``)."""
    value = None
    for i, a in enumerate(args):
        if a == "--":
            break
        for n in names:
            if a == n and i + 1 < len(args):
                value = args[i + 1]
            elif n.startswith("--") and a.startswith(n + "="):
                value = a[len(n) + 1:]
            elif not n.startswith("--") and len(n) == 2 and a.startswith(n) and len(a) > 2 and not a.startswith("--"):
                value = a[2:]
    return value


def wanted_format(args: Sequence[str]) -> str:
    args = list(args[:args.index("--")] if "--" in args else args)
    if "--json" in args:
        return "json"
    return _option_value(args, ("--format", "-f")) or "table"


def wanted_output(args: Sequence[str]) -> str | None:
    from .output import check_output

    path = _option_value(args, ("--output", "-o"))
    try:
        check_output(path)
    except FusionError:
        return None
    return path


def usage_error(e: ClickException, args: Sequence[str]) -> UsageError:
    """One line naming the field, the bad value and what is allowed, from a parser error."""
    message = e.format_message().strip().replace("Value error, ", "")
    param = getattr(e, "param", None)
    field = getattr(e, "option_name", None)
    if param is not None:
        opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
        field = max(opts, key=len) if opts else str(getattr(param, "metavar", None) or param.name).upper()
        m = re.match(r"Invalid value for [^:]+:\s*(.*)$", message, re.S)
        if m:
            reason = m.group(1).rstrip(".")
            value = _option_value(args, opts) if opts else None
            choices = re.match(r"'(.*)' is not one of (.*?)$", reason, re.S)
            if choices:
                value, allowed = choices.group(1), re.findall(r"'([^']*)'", choices.group(2))
                message = SpecError.bad(field, value, "allowed: " + ", ".join(allowed), choices=allowed).message
            elif value is not None:
                message = f"{field}: invalid value {value!r}; {reason[:1].lower()}{reason[1:]}"
            else:
                message = f"{field}: {reason}"
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else "fusion"
    message = message[:-1] if message.endswith(".") else message
    return UsageError(f"{message} (see '{path} --help')", field=field)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0]


BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away (`| head`)

#: what a terminal that is not UTF-8 gets for the symbols fusion prints (PYTHONIOENCODING=ascii, LANG=C)
ASCII = {"∝": "~", "✓": "yes", "±": "+/-", "…": "...", "×": "x", "→": "->", "≤": "<=", "≥": ">=", "µ": "u",
         "━": "-", "─": "-", "┃": "|", "│": "|", "┏": "+", "┓": "+", "┗": "+", "┛": "+", "┡": "+", "┩": "+",
         "┳": "+", "┻": "+", "╇": "+", "┼": "+", "└": "+", "┘": "+", "┌": "+", "┐": "+", "├": "+", "┤": "+",
         "┬": "+", "┴": "+", "╸": "-", "•": "*", "█": "#", "░": ".", "▏": "|"}


def _ascii_fallback(err: UnicodeEncodeError):
    text = err.object[err.start:err.end]
    return "".join(ASCII.get(ch, "?") for ch in text), err.end


def prepare_streams(args: Sequence[str]) -> int | None:
    """The standard streams as a command needs them: a closed stderr (``2>&-``) swallows warnings (the exit
    code is the command's); a closed stdout (``>&-``) is an error unless ``--output`` takes the data; an
    encoding that lacks fusion's symbols gets ASCII stand-ins. Returns an exit code to stop with, or None."""
    import codecs
    import os

    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (for the process's life)
    if sys.stdout is None:
        if _option_value(list(args), ("--output", "-o")) is None and any(a in args for a in ("inspect", "compare",
                                                                                            "sweep", "merge", "blocks",
                                                                                            "presets", "explain",
                                                                                            "schema")):
            sys.stderr.write("fusion: error: standard output is closed; give --output FILE for the data\n")
            return 1
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        codecs.lookup_error("fusion-ascii")
    except LookupError:
        codecs.register_error("fusion-ascii", _ascii_fallback)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding and not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="fusion-ascii")
    return None


def run(app, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` on ``argv`` (default: ``sys.argv[1:]``); return the exit code, print any error as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    extra = {} if argv is None else {"prog_name": "fusion"}
    was_devnull = _is_devnull()
    try:
        rv = app(args=args, standalone_mode=False, **extra)
    except SystemExit:
        # rich (Console.on_broken_pipe) and click answer a broken pipe by pointing stdout at /dev/null
        # (or wrapping it) and exiting 1, silently: say it the conventional way
        if type(sys.stdout).__name__ == "PacifyFlushWrapper" or (_is_devnull() and not was_devnull):
            _silence_stdout()
            return BROKEN_PIPE
        raise
    except NoArgsIsHelpError as e:  # bare `fusion`: the help, as Typer shows it
        if e.format_message().strip():
            e.show()
        return e.exit_code
    except ClickException as e:
        err = usage_error(e, args)
        report_error(err, wanted_format(args), wanted_output(args))
        return err.exit_code
    except (KeyboardInterrupt, Abort) as e:
        if isinstance(e, Abort) and not isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            sys.stderr.write("fusion: aborted\n")
            return 1
        rv = INTERRUPTED
    except FusionError as e:  # raised outside a command's own handling
        report_error(e, wanted_format(args), wanted_output(args))
        return e.exit_code
    except BrokenPipeError:  # the reader left (`| head`): nothing more to say, to anyone
        _silence_stdout()
        return BROKEN_PIPE
    except Exception as e:
        if state.debug:
            raise
        err = InternalError(f"internal error: {type(e).__name__}: {_first_line(e)} (run with --debug for the "
                            "traceback)")
        report_error(err, wanted_format(args), wanted_output(args))
        return err.exit_code
    if rv == INTERRUPTED:  # Typer turns Ctrl-C into a silent exit 130; an --output FILE is left as it was
        err = Terminated("terminated") if _signals["term"] else Interrupted("interrupted")
        sys.stderr.write(f"fusion: {err.message}\n")
        if wanted_format(args) == "json" and _option_value(args, ("--output", "-o")) is None:
            sys.stdout.write(json.dumps(error_object(err)) + "\n")
        return err.exit_code
    return rv if isinstance(rv, int) else 0


def _is_devnull() -> bool:
    """Whether file descriptor 1 is /dev/null now."""
    import os

    try:
        a, b = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not raise a second BrokenPipeError
    (the recipe of Python's signal documentation)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> None:
    from . import app

    stop = prepare_streams(sys.argv[1:] if argv is None else argv)
    with sigterm_as_interrupt():
        code = stop if stop is not None else run(app, argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _silence_stdout()
            code = code or BROKEN_PIPE
        except (OSError, ValueError, AttributeError):  # a stream closed or absent (None)
            pass
    sys.exit(code)
