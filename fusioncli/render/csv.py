"""CSV: one row per report (per grid point in a sweep), raw numbers, units in the header.

Booleans (the Pareto mark) are ``true``/``false``; a missing value is an empty cell.
"""

from __future__ import annotations

import csv
from typing import TextIO

from ..report import Envelope
from .rows import header, summary_rows, used_columns


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def render_csv(envelope: Envelope, out: TextIO) -> None:
    cols = used_columns(envelope)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header(envelope, c) for c in cols])
    for row in summary_rows(envelope):
        writer.writerow([_cell(row.get(c)) for c in cols])
