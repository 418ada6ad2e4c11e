"""Markdown: a summary table ready for a paper or a README (units in the headers).

Compare: the best value of each column in bold, the Pareto front marked ✓. Sweep: one
row per grid point, then the fitted scaling exponents. Columns empty in every row
(latency with --no-time) are left out.
"""

from __future__ import annotations

from typing import TextIO

from ..report import Envelope, Report
from ..pareto import METRICS
from ..sweep import exponent_table
from .formats import printable
from .rows import header, is_best, summary_rows, used_columns

TEXT_COLUMNS = ("name", "block", "inputs", "outputs", "error", "onnx_status", "onnx_ops", "onnx_error")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(value).replace("|", "\\|")


def _exponents(envelope: Envelope, out: TextIO) -> None:
    rows = exponent_table(envelope.sweep.get("exponents", []))
    if not rows:
        return
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    out.write("\nFitted scaling exponents k (metric ∝ variable^k; least-squares slope of log metric on log variable)\n\n")
    out.write("| spec | variable | " + " | ".join(METRICS[m].short for m in metrics) + " |\n")
    out.write("|---|---|" + "---:|" * len(metrics) + "\n")
    for r in rows:
        cells = ["" if r.get(m) is None else f"{r[m]:.2f}" for m in metrics]
        out.write(f"| {_cell(r['spec'])} | {r['variable']} | " + " | ".join(cells) + " |\n")


def _nodes(r: Report, out: TextIO, titled: bool) -> None:
    """A neck's nodes (merges marked *), exact figures and the share of the neck's FLOPs."""
    if titled:
        out.write(f"\nNodes of {_cell(r.name)}\n")
    timed = any(n.latency_ms is not None for n in r.nodes or ())
    out.write("\n| node | level | kind | inputs -> output | params | MACs | FLOPs | bytes moved (B) | FLOPs share |"
              + (" time (ms) |" if timed else "") + "\n|---|---:|---|---|---:|---:|---:|---:|---:|"
              + ("---:|" if timed else "") + "\n")
    for n in r.nodes or ():
        shapes = " + ".join("x".join(map(str, s[1:])) for s in n.input_shapes) + " -> " + "x".join(
            map(str, n.output_shape[1:]))
        share = f"{100 * n.flops / r.cost.flops:.1f}%" if r.cost.flops else ""
        mark = "\\* " if n.merge else ""
        out.write(f"| {mark}{_cell(n.id)} | {n.level} | {_cell(n.kind)} | {shapes} | {n.params:,} | "
                  f"{n.macs:,} | {n.flops:,} | {n.bytes:,} | {share} |"
                  + (f" {_cell(n.latency_ms)} |" if timed else "") + "\n")


def render_markdown(envelope: Envelope, out: TextIO) -> None:
    rows = summary_rows(envelope)
    cols = [c for c in used_columns(envelope) if c == "name" or any(row.get(c) is not None for row in rows)]
    out.write("| " + " | ".join(header(envelope, c) for c in cols) + " |\n")
    out.write("|" + "|".join("---" if c in TEXT_COLUMNS or c.startswith("vary:") else ":---:" if c == "pareto"
                             else "---:" for c in cols) + "|\n")
    for row in rows:
        cells = []
        for c in cols:
            text = _cell(row.get(c))
            cells.append(f"**{text}**" if text and is_best(envelope, c, row["name"]) else text)
        out.write("| " + " | ".join(cells) + " |\n")
    reports = [r for r in envelope.reports if isinstance(r, Report)]
    if envelope.sweep:
        _exponents(envelope, out)
    elif len(reports) == 1 and reports[0].layers and envelope.baseline is None:
        out.write("\n| layer | type | output shape | params |\n|---|---|---|---:|\n")
        for layer in reports[0].layers:
            shape = "x".join(map(str, layer.output_shape)) or "-"  # "-": a container that never runs itself
            calls = f" ({layer.calls} calls)" if layer.calls > 1 else ""
            out.write(f"| {'  ' * (layer.depth - 1)}{_cell(layer.name)}{calls} | {_cell(layer.type)} | {shape} | "
                      f"{layer.params:,} |\n")
    for r in reports if not envelope.sweep else ():
        if r.nodes is not None:
            _nodes(r, out, titled=len(reports) > 1)
    if envelope.best and len(reports) > 1:
        out.write("\nBold: the lowest value of its column.")
        if envelope.pareto_metrics:
            out.write(f" ✓: on the Pareto front over {', '.join(envelope.pareto_metrics)} "
                      "(no other design is at least as good on all of them and better on one).")
        out.write("\n")
    for note in envelope.notes:
        out.write(f"\n{_cell(note)}\n")
    if reports:
        out.write(f"\nCounting convention: {reports[0].cost.convention}\n")
