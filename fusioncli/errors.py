"""One exception family for everything a user can get wrong or that can fail at run time.

The CLI maps :class:`SpecError` to exit code 2 (usage or spec error) and
:class:`RunError` to exit code 1 (a run-time failure). Every message is one line
that names the field, the bad value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable


class FusionError(Exception):
    """Base class; ``field`` names the flag, option or preset key at fault."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"type": self.kind, "message": self.message, "field": self.field}


class SpecError(FusionError):
    """Bad flag, shape, kind, option or preset file: exit code 2."""

    exit_code = 2
    kind = "spec_error"

    @classmethod
    def bad(cls, field: str, value: object, allowed: str, *, choices: Iterable[str] = ()) -> SpecError:
        """``field: invalid value 'x'; allowed: ... (did you mean 'y'?)``"""
        text = f"{field}: invalid value {shorten(value)}; {allowed}"
        hint = did_you_mean(str(value), choices)
        if hint:
            text += f" (did you mean {hint!r}?)"
        return cls(text, field=field)


class RunError(FusionError):
    """A run-time failure (device unavailable, out of memory, a block that raises): exit code 1."""

    exit_code = 1
    kind = "run_error"


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut in the middle when longer than ``limit`` (messages stay readable)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...{text[-(limit // 2 - 3):]}"


def did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    if len(value) > 100:  # nothing registered is that long; difflib would only be slow
        return None
    import difflib  # only on an error: keeps start-up of listings short

    matches = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None
