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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from ..errors import RunError, SpecError


def check_output(path: str | None, *, inputs: Iterable[str] = (), others: dict[str, str | None] | None = None,
                 field: str = "--output") -> None:
    """Up front, before any work: FILE's directory exists and is writable, FILE is not a directory, and
    FILE is neither one of the run's ``inputs`` (preset files, user block files, merged files) nor
    another of its outputs (``others``: ``{"--plot": path}``)."""
    if path is None:
        return
    _not_an_input(path, inputs, others or {}, field)
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


def _same_file(a: str, b: str) -> bool:
    try:
        pa, pb = Path(a), Path(b)
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
        return os.path.realpath(pa) == os.path.realpath(pb)
    except (OSError, ValueError):
        return False


def _not_an_input(path: str, inputs: Iterable[str], others: dict[str, str | None], field: str) -> None:
    """An output never replaces what the run reads, nor another of its outputs (special files aside:
    ``-o /dev/null`` may go with anything)."""
    if _is_special(Path(path)):
        return
    for source in inputs:
        if _same_file(path, source):
            raise SpecError(f"{field}: {path!r} is an input of this run ({source}); writing it would replace it: "
                            "choose another file", field=field)
    for other, value in others.items():
        if value is not None and _same_file(path, value):
            raise SpecError(f"{field}: {path!r} is also {other}; give each output its own file", field=field)


def spec_files(texts: Iterable[str], nodes: Iterable[str | None] = ()) -> list[str]:
    """The files a run reads for its SPECs (and ``--node`` references): preset files, bundled presets
    by name, the ``FILE.py`` of ``FILE.py:NAME``. Checked as text: nothing is imported or parsed."""
    from ..spec import bundled_presets, is_file

    presets = bundled_presets()
    files: list[str] = []
    for text in [*texts, *(n for n in nodes if n)]:
        head, sep, _name = text.rpartition(":")
        if sep and head.endswith(".py"):
            files.append(head)
        elif text in presets:
            files.append(str(presets[text]))
        else:
            files.append(text)
    return [f for f in files if is_file(f)]



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
def atomic_output(path: str | None, *, binary: bool = False) -> Iterator[TextIO]:
    """A text stream (``binary``: a bytes stream) that becomes FILE only when the block completes (stdout
    without ``path``)."""
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    target = Path(path)
    how = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
    if _is_special(target):  # written in place: there is nothing to replace atomically
        try:
            with open(target, **how) as stream:
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
        with os.fdopen(fd, **how) as stream:
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
