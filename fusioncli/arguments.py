"""Constructor arguments typed by a signature: ``--set name=value`` and preset ``[options]``.

One place for every block, built-in or the user's: a parameter's annotation (or, without
one, its default's type) says how a value from the command line (a string) or from TOML
is converted. Supported: ``int``, ``float``, ``bool``, ``str``, ``None`` (``Optional[...]``
accepts ``none``), ``Literal[...]`` choices, tuples and lists of numbers or strings
(``1,3,5``), and unions of those (``Union[str, Callable]`` takes the string). A parameter
without annotation or default takes a literal: an int, a float, ``true``/``false``,
``none`` or else the text. Torch-free: the listings and the size checks use it without
importing torch.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

_EMPTY = object()  # no default: a required parameter
INT64 = 2**63  # integers are taken in [-2**63, 2**63): what torch's int64 holds
_SEQUENCES = (tuple, list, collections.abc.Sequence, collections.abc.Iterable)


@dataclass(frozen=True)
class OptionInfo:
    name: str
    type: Any  # the annotation (Any when there is none)
    default: Any = _EMPTY

    @property
    def required(self) -> bool:
        return self.default is _EMPTY

    @property
    def choices(self) -> tuple | None:
        ann = _strip_optional(self.type)
        if typing.get_origin(ann) is typing.Literal:
            return typing.get_args(ann)
        return None

    def describe(self) -> str:
        text = _describe(_strip_optional(self.type))
        return text + (" or none" if _is_optional(self.type) else "")

    def shown_default(self) -> Any:
        """The default as a report or a listing shows it (JSON-safe)."""
        return json_safe(None if self.required else self.default)


def json_safe(value: Any) -> Any:
    """Numbers, strings, booleans, None and lists of them as they are; anything else as its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return getattr(value, "__qualname__", None) or repr(value)


def _describe(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return "one of " + "|".join(map(str, typing.get_args(ann)))
    if ann is Any:
        return "any value (int, float, true/false, none or text)"
    if ann in _SEQUENCES or origin in _SEQUENCES:
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        elem = getattr(args[0], "__name__", "value") if args else "value"
        return f"comma-separated {elem}s"
    if _is_union(ann):
        return " or ".join(_describe(a) for a in typing.get_args(ann) if _settable(a))
    if ann is int:
        return "an integer from -2**63 to 2**63-1"
    if ann is float:
        return "a finite number (not nan or inf)"
    return getattr(ann, "__name__", str(ann))


def _is_union(ann: Any) -> bool:
    return typing.get_origin(ann) in (typing.Union, getattr(types, "UnionType", None))


def _is_optional(ann: Any) -> bool:
    return _is_union(ann) and type(None) in typing.get_args(ann)


def _strip_optional(ann: Any) -> Any:
    if _is_optional(ann):
        rest = [a for a in typing.get_args(ann) if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return ann


def _settable(ann: Any) -> bool:
    """Whether a value of this annotation can be written on a command line."""
    if ann in (bool, int, float, str, Any) or ann in _SEQUENCES:
        return True
    origin = typing.get_origin(ann)
    if origin is typing.Literal or origin in _SEQUENCES:
        return True
    if _is_union(ann):
        return any(_settable(a) for a in typing.get_args(ann) if a is not type(None))
    return False


def annotation_of(param, hints: dict[str, Any]) -> Any:
    """A parameter's usable annotation: its resolved type hint, else its default's type, else ``Any``."""
    ann = hints.get(param.name, param.annotation)
    if ann is param.empty or isinstance(ann, str):  # none, or a string annotation that did not resolve
        ann = _BY_NAME.get(ann, _EMPTY) if isinstance(ann, str) else _EMPTY
        if ann is _EMPTY:
            default = param.default
            ann = type(default) if default is not param.empty and type(default) in (bool, int, float, str) else Any
    return ann


_BY_NAME = {"int": int, "float": float, "bool": bool, "str": str}


def coerce_options(known: dict[str, OptionInfo], raw: dict[str, Any], *, owner: str,
                   field: str = "--set") -> dict[str, Any]:
    """Validate option names against ``known`` and convert their values (strings from ``--set`` or TOML values)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            listed = ", ".join(known) if known else "none (it takes no options)"
            raise SpecError.bad(f"{field} {key}", key, f"options of '{owner}': {listed}", choices=known)
        out[key] = coerce_value(known[key], value, field=f"{field} {key}")
    return out


def coerce_value(info: OptionInfo, value: Any, *, field: str) -> Any:
    ann = info.type
    if _is_optional(ann) and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    allowed = "allowed: " + info.describe()
    try:
        return _convert(_strip_optional(ann), value, field, allowed)
    except (ValueError, TypeError):
        raise SpecError.bad(field, value, allowed) from None


def _convert(ann: Any, value: Any, field: str, allowed: str) -> Any:
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        choices = typing.get_args(ann)
        for c in choices:
            if value == c or (isinstance(value, str) and not isinstance(c, str) and value == str(c).lower()) or \
                    (isinstance(value, str) and value == str(c)):
                return c
        raise SpecError.bad(field, value, allowed, choices=[str(c) for c in choices])
    if ann in _SEQUENCES or origin in _SEQUENCES:
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        elem = args[0] if args else Any
        items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) \
            else [value]
        result = [_scalar(elem, v.strip() if isinstance(v, str) else v) for v in items
                  if not (isinstance(v, str) and v.strip() == "")]
        if not result:
            raise ValueError
        return result if origin is list or ann is list else tuple(result)
    if _is_union(ann):
        arms = [a for a in typing.get_args(ann) if _settable(a)]
        for arm in sorted(arms, key=lambda a: a is str):  # text last: "3" is an int where an int is allowed
            try:
                return _convert(arm, value, field, allowed)
            except (ValueError, TypeError, SpecError):
                continue
        raise ValueError
    return _scalar(ann, value)


def _scalar(ann: Any, value: Any) -> Any:
    if ann is Any:
        return _literal(value)
    if ann is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError
    if ann is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        if isinstance(value, str) and len(value.strip()) > 20:  # past int64; also Python's 4,300-digit limit
            raise ValueError
        n = int(value) if not isinstance(value, str) else int(value.strip())
        if not -INT64 <= n < INT64:
            raise ValueError
        return n
    if ann is float:
        if isinstance(value, bool):
            raise ValueError
        x = float(value)
        if not math.isfinite(x):  # nan, inf: no block takes them
            raise ValueError
        return x
    if ann is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    raise TypeError(ann)


def _literal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for convert in (int, float):
        try:
            number = convert(text) if len(text) <= 20 else None
        except ValueError:
            continue
        if number is not None and (isinstance(number, int) and -INT64 <= number < INT64
                                   or isinstance(number, float) and math.isfinite(number)):
            return number
    return value


__all__ = ["OptionInfo", "annotation_of", "coerce_options", "coerce_value", "json_safe"]
