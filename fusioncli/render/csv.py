"""CSV: one row per report, raw numbers, units in the header."""

from __future__ import annotations

import csv
from typing import TextIO

from ..report import Envelope
from .rows import HEADERS, summary_rows, used_columns


def render_csv(envelope: Envelope, out: TextIO) -> None:
    cols = used_columns(envelope)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([HEADERS[c] for c in cols])
    for row in summary_rows(envelope):
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
