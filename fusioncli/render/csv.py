"""CSV: one row per report (per grid point in a sweep), raw numbers, units in the header.

Booleans (the Pareto mark) are ``true``/``false``; a missing value is an empty cell. A text cell
that a spreadsheet would evaluate (starting with ``=``, ``+``, ``-``, ``@``, tab or CR, and not a
number) gets a leading ``'``; control characters are escaped.
"""

from __future__ import annotations

import csv
from typing import TextIO

from ..report import Envelope
from .formats import printable
from .rows import header, summary_rows, used_columns


_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP, CSV injection)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value.startswith(_FORMULA) and not _number(value):
            value = "'" + value  # neutralised: shown as text, never evaluated
        return printable(value)
    return value


def render_csv(envelope: Envelope, out: TextIO) -> None:
    cols = used_columns(envelope)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header(envelope, c) for c in cols])
    for row in summary_rows(envelope):
        writer.writerow([_cell(row.get(c)) for c in cols])
