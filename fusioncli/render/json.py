"""JSON: one object on stdout, raw numbers, ``schema_version`` 1."""

from __future__ import annotations

import json
from typing import TextIO

from ..report import Envelope


def render_json(envelope: Envelope, out: TextIO) -> None:
    json.dump(envelope.to_dict(), out, indent=2)
    out.write("\n")
