"""Rich tables for a sweep: one row per grid point, then the fitted scaling exponents."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..report import Envelope, ErrorEntry
from ..pareto import METRICS
from .formats import counted
from .table import binary, latency, si, txt


def _points(env: Envelope, vary: list[str], stacked: bool) -> Table:
    """One row per grid point; ``stacked`` puts FLOPs under MACs and peak activations under bytes (two lines
    a row), for a table that would not fit the width otherwise (several --vary)."""
    sweep = env.sweep or {}
    shard = sweep.get("shard")
    where = f"shard {shard['index']}/{shard['count']}: " if shard else ""
    t = Table(title=f"Sweep ({where}{len(env.reports)} of {counted(sweep.get('points', len(env.reports)), 'grid point')})",
              header_style="bold")
    timed = any(not isinstance(r, ErrorEntry) and r.timing is not None for r in env.reports)
    t.add_column("name", no_wrap=True)
    metrics = ("params", "MACs\nFLOPs", "bytes\npeak act.") if stacked else \
        ("params", "MACs", "FLOPs", "bytes", "peak act.")
    for col in (*vary, *metrics, *(["latency ms"] if timed else [])):
        t.add_column(col, justify="right", no_wrap=True)
    for r in env.reports:
        values = [txt((r.sweep or {}).get("values", {}).get(v, "")) for v in vary]
        if isinstance(r, ErrorEntry):  # its message below the table
            t.add_row(txt(r.name), *values, "[red]error[/red]", *["-"] * (len(metrics) - 1 + timed))
            continue
        cells = (si(r.params["total"]), si(r.cost.macs), si(r.cost.flops), binary(r.cost.bytes.total),
                 binary(r.memory.peak_activation_bytes))
        if stacked:
            cells = (cells[0], f"{cells[1]}\n{cells[2]}", f"{cells[3]}\n{cells[4]}")
        t.add_row(txt(r.name), *values, *cells, *([latency(r)] if timed else []))
    return t


def render_sweep(console: Console, env: Envelope) -> None:
    sweep = env.sweep or {}
    vary = list(sweep.get("vary", {}))
    t = _points(env, vary, stacked=False)
    if Measurement.get(console, console.options.update_width(10_000), t).maximum > console.width:
        t = _points(env, vary, stacked=True)
    console.print(t)
    failed: dict[tuple[str, str], int] = {}
    for r in env.reports:
        if isinstance(r, ErrorEntry):
            key = (r.name, r.error["message"])
            failed[key] = failed.get(key, 0) + 1
    for (name, message), n in failed.items():
        console.print(f"[red]{txt(name)} ({n} point{'s' if n > 1 else ''}): {txt(message)}[/red]")

    exps = sweep.get("exponents", [])
    if exps:
        e = Table(title="Scaling exponents k (metric ∝ variable^k: least-squares slope of log metric on log "
                  "variable)", header_style="bold")
        metrics = [m for m in METRICS if any(x["metric"] == m for x in exps)]
        e.add_column("spec", no_wrap=True)
        e.add_column("variable", no_wrap=True)
        for m in metrics:
            e.add_column(METRICS[m].short, justify="right", no_wrap=True)
        rows: dict[tuple[str, str], dict[str, str]] = {}
        for x in exps:
            rows.setdefault((x["spec"], x["variable"]), {})[x["metric"]] = (
                "no fit" if x["exponent"] is None else f"{x['exponent']:.2f}")
        for (spec, var), cells in rows.items():
            e.add_row(txt(spec), txt(var), *(cells.get(m, "-") for m in metrics))
        console.print(e)
    elif sweep:
        console.print("[dim]No scaling exponents: no numeric --vary with two or more values[/dim]")
    for note in env.notes:
        console.print(f"[dim]{txt(note)}[/dim]")
    first = next((r for r in env.reports if not isinstance(r, ErrorEntry)), None)
    if first:
        console.print(f"[dim]Each point's shapes: --format csv or json; params in count; MACs = multiply-accumulates; FLOPs: "
                      f"{first.cost.convention.split(':')[0]} convention (see README)[/dim]")
