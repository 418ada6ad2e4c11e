"""JSON: one object on stdout, raw numbers, ``schema_version`` 1.

Only standard JSON is written: a non-finite float (a ratio or a fit of degenerate data) becomes
``null``, never ``NaN`` or ``Infinity``, which strict parsers (and the schema) refuse.
"""

from __future__ import annotations

import json
import math
from typing import Any, TextIO

from ..report import Envelope


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (dicts and lists walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of standard JSON only (see the module docstring)."""
    return json.dumps(finite(obj), allow_nan=False, **kw)


def render_json(envelope: Envelope, out: TextIO) -> None:
    out.write(dumps(envelope.to_dict(), indent=2))
    out.write("\n")
