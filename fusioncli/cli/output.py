"""``--output FILE``: write a rendered report atomically.

The report is written to a temporary file in FILE's directory, flushed to disk, then
renamed over FILE (``os.replace``, atomic on POSIX and Windows): a reader sees the old
file or the whole new one, and an interrupted or failed run leaves FILE as it was and
no temporary file behind.

Special files are written in place, not replaced: a character device (``-o /dev/null``,
``-o /dev/stdout``), a FIFO or a socket is opened and written like stdout (renaming over
``/dev/null`` would turn it into a regular file). A symbolic link is followed: the file it
points to is replaced, the link stays.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ..errors import RunError, SpecError


def check_output(path: str | None) -> None:
    """Up front, before any work: FILE's directory exists and is writable, FILE is not a directory."""
    if path is None:
        return
    if path in ("", "-"):
        raise SpecError.bad("--output", path, "expected a file path (leave --output out to write to stdout)")
    target = Path(path)
    try:
        if target.is_dir():
            raise SpecError.bad("--output", path, "expected a file path, not a directory")
        if _is_special(target):
            if not os.access(target, os.W_OK):
                raise SpecError.bad("--output", path, "is not writable")
            return
        target = _resolved(target)
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise SpecError.bad("--output", path, f"its directory {str(parent)!r} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SpecError.bad("--output", path, f"its directory {str(parent)!r} is not writable")
    except (OSError, ValueError) as e:  # a name too long, an embedded NUL, ...
        raise SpecError.bad("--output", path, f"not a usable path ({type(e).__name__})") from None


def _is_special(target: Path) -> bool:
    """An existing file that is not a regular file (device, FIFO, socket), links followed."""
    try:
        return not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        return False


def _resolved(target: Path) -> Path:
    """The file a symbolic link points to (the link is kept, its target replaced)."""
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777  # keep an existing file's permissions
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str | None) -> Iterator[TextIO]:
    """A text stream that becomes FILE only when the block completes (stdout without ``path``)."""
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    if _is_special(target):  # written in place: there is nothing to replace atomically
        try:
            with open(target, "w", encoding="utf-8", newline="") as stream:
                yield stream
        except OSError as e:
            raise RunError(f"--output: cannot write {path!r}: {e.strerror or e}", field="--output") from None
        return
    target = _resolved(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent if str(target.parent)
                                   else ".")
    except OSError as e:
        raise RunError(f"--output: cannot write {path!r}: {e.strerror or e}", field="--output") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException as e:  # failure, Ctrl-C: FILE stays as it was, no temporary file is left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise RunError(f"--output: cannot write {path!r}: {e.strerror or e}", field="--output") from None
        raise


def write_atomic(path: str, text: str) -> None:
    with atomic_output(path) as stream:
        stream.write(text)


__all__ = ["atomic_output", "check_output", "write_atomic"]
