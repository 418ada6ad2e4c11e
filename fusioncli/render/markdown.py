"""Markdown: a summary table ready for a paper or a README (units in the headers)."""

from __future__ import annotations

from typing import TextIO

from ..report import Envelope, Report
from .rows import HEADERS, summary_rows, used_columns


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def render_markdown(envelope: Envelope, out: TextIO) -> None:
    cols = used_columns(envelope)
    out.write("| " + " | ".join(HEADERS[c] for c in cols) + " |\n")
    out.write("|" + "|".join("---:" if c not in ("name", "block", "inputs", "outputs", "error") else "---"
                             for c in cols) + "|\n")
    for row in summary_rows(envelope):
        out.write("| " + " | ".join(_cell(row.get(c)) for c in cols) + " |\n")
    reports = [r for r in envelope.reports if isinstance(r, Report)]
    if len(reports) == 1 and reports[0].layers:
        out.write("\n| layer | type | output shape | params |\n|---|---|---|---:|\n")
        for layer in reports[0].layers:
            shape = "x".join(map(str, layer.output_shape))
            out.write(f"| {'  ' * (layer.depth - 1)}{layer.name} | {layer.type} | {shape} | {layer.params:,} |\n")
    if reports:
        out.write(f"\nCounting convention: {reports[0].cost['convention']}\n")
