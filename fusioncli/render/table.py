"""Rich tables for people: every count carries its unit, big numbers are humanised."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report import Envelope, ErrorEntry, Report
from ..spec import format_input, format_shape
from .formats import printable


def txt(value) -> str:
    """A cell from data (a preset's name, an option's value, a module's name): control characters
    escaped, rich markup (``[bold]``) shown as typed."""
    return escape(printable(value))


def si(value: float | int | None, unit: str = "") -> str:
    """1234567 -> '1.23 M' (decimal prefixes, as FLOP counts are usually quoted)."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()


def binary(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    for factor, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes >= factor:
            return f"{nbytes / factor:.2f} {prefix}"
    return f"{nbytes} B"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def latency(r: Report) -> str:
    t = r.timing
    if t is None:
        return "not timed"
    return f"{t.median_ms:.3f} ± {t.iqr_ms:.3f}"


def shapes_text(r: Report) -> str:
    """A row's ``inputs -> outputs`` cell: the shapes (every output), or for a neck its levels (the node table
    has the shapes)."""
    if r.nodes is not None:
        first = r.inputs[0][2:]
        return f"{len(r.inputs)} levels (finest {format_shape(first)}) -> {len(r.outputs)}"
    return " ".join(format_shape(s[1:]) for s in r.inputs) + " -> " + " ".join(format_shape(s[1:]) for s in r.outputs)


def _summary(r: Report) -> Table:
    t = Table(title="Summary", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("exact", justify="right")
    t.add_row("parameters (count)", si(r.params["total"]), f"{r.params['total']:,}")
    if r.params["trainable"] != r.params["total"]:
        t.add_row("trainable parameters (count)", si(r.params["trainable"]), f"{r.params['trainable']:,}")
    t.add_row("MACs (multiply-accumulates)", si(r.cost.macs, "MAC"), f"{r.cost.macs:,}")
    t.add_row("FLOPs (floating-point ops)", si(r.cost.flops, "FLOP"), f"{r.cost.flops:,}")
    t.add_row("bytes moved (unfused, read + write)", binary(r.cost.bytes.total), f"{r.cost.bytes.total:,}")
    ai = r.cost.arithmetic_intensity
    t.add_row("arithmetic intensity (FLOP/byte)", "-" if ai is None else f"{ai:.2f}", "")
    t.add_row("parameter memory", binary(r.memory.param_bytes), f"{r.memory.param_bytes:,}")
    t.add_row("peak activation memory (forward)", binary(r.memory.peak_activation_bytes),
              f"{r.memory.peak_activation_bytes:,}")
    if r.timing:
        tm = r.timing
        how = [tm.mode, f"{tm.threads} thread{'s' * (tm.threads != 1)}"]
        how += ["channels_last"] * tm.channels_last + ["compiled"] * tm.compiled
        t.add_row(f"latency, median ± IQR (ms) \\[{', '.join(how)}]", latency(r),
                  f"min {tm.min_ms:.3f}, CV {tm.cv:.1%}, {tm.runs} runs / {tm.calls} calls")
        if tm.noisy:
            t.add_row("[yellow]timing noisy[/yellow]", f"CV {tm.cv:.0%} > 10%", "")
        if tm.capped:
            t.add_row("[yellow]timing capped[/yellow]", f"{tm.runs} runs (--max-time)", "")
        if tm.compile_ms is not None:
            t.add_row("compile time (first call, ms)", f"{tm.compile_ms:.1f}", "")
        if tm.gflops_per_s is not None:
            t.add_row("achieved GFLOP/s | GB/s", f"{tm.gflops_per_s:.2f} | {tm.gbytes_per_s:.2f}", "")
        if r.roofline is not None:
            rl = r.roofline
            t.add_row("roofline: % of attainable, bound", roof_text(r),
                      f"attainable {rl.attainable_gflops:,.2f} GFLOP/s = min({rl.peak_gflops:,.1f}, "
                      f"{rl.intensity:.2f} FLOP/B x {rl.bandwidth_gbs:,.1f} GB/s)")
        if tm.samples_per_s is not None:
            t.add_row("throughput (samples/s)", f"{tm.samples_per_s:,.1f}", "")
        if tm.cuda_peak_bytes is not None:
            t.add_row("CUDA peak memory (timed runs)", binary(tm.cuda_peak_bytes), f"{tm.cuda_peak_bytes:,}")
    else:
        t.add_row("latency (ms)", "not timed (--no-time)", "")
    if r.cost.uncounted_ops:
        t.add_row("[red]ops without a FLOP formula[/red]",
                  ", ".join(f"{k} x{v}" for k, v in r.cost.uncounted_ops.items()), "")
    if r.unused_params:
        t.add_row("[yellow]parameters no op used[/yellow]", ", ".join(r.unused_params), "")
    return t


def roof_text(r: Report) -> str:
    """``62% memory``: the achieved share of what the roofline allows, and the roof that binds."""
    rl = r.roofline
    if rl is None or rl.fraction is None:
        return "-"
    return f"{100 * rl.fraction:.0f}% {rl.bound}"


def _training(r: Report) -> list[Table]:
    """A training step: forward and backward costs (inputs and weights apart), then the memory it holds."""
    tr = r.training
    b, m = tr.backward, tr.memory
    cost = Table(title=f"Training step: cost (backward {ratio(b.flops / tr.forward_flops if tr.forward_flops else None)}"
                 " the forward's FLOPs)", header_style="bold")
    for col in ("pass", "MACs", "FLOPs"):
        cost.add_column(col, justify="left" if col == "pass" else "right")
    for label, macs, flops in (("forward", tr.forward_macs, tr.forward_flops), ("backward", b.macs, b.flops),
                               ("  grad w.r.t. inputs", b.grad_input_macs, b.grad_input_flops),
                               ("  grad w.r.t. weights", b.grad_weight_macs, b.grad_weight_flops),
                               ("step (fwd + bwd)", tr.step_macs, tr.step_flops)):
        cost.add_row(label, f"{macs:,}", f"{flops:,}")
    if not tr.input_grad:
        cost.caption = "inputs need no gradient (--no-input-grad): grad w.r.t. inputs stops at the first weights"
    memory = Table(title=f"Training step: memory (optimizer {tr.optimizer})", header_style="bold")
    for col in ("what", "size", "bytes"):
        memory.add_column(col, justify="left" if col == "what" else "right")
    for label, value in (("parameters", m.param_bytes), ("gradients", m.grad_bytes),
                         ("optimizer state", m.optimizer_state_bytes), ("inputs + output grads", m.input_bytes),
                         ("saved for backward", m.saved_activation_bytes), ("forward peak (live)", m.forward_peak_bytes),
                         ("backward peak (live)", m.backward_peak_bytes), ("optimizer temporaries", m.optimizer_temp_bytes),
                         ("peak of the step, all", m.peak_bytes)):
        memory.add_row(label, binary(value), f"{value:,}")
    if b.uncounted_ops:
        memory.caption = "[red]backward ops without a formula: " + ", ".join(
            f"{txt(k)} x{v}" for k, v in b.uncounted_ops.items()) + "[/red]"
    return [cost, memory]


def _layers(r: Report) -> Table:
    t = Table(title="Layers", header_style="bold")
    t.add_column("layer")
    t.add_column("type")
    t.add_column("output shape (batch x shape)")
    t.add_column("params (count)", justify="right")
    for layer in r.layers:
        t.add_row("  " * (layer.depth - 1) + txt(layer.name), txt(layer.type), format_shape(layer.output_shape),
                  f"{layer.params:,}")
    return t


def share(part: float | None, whole: float | None) -> str:
    return "-" if part is None or not whole else f"{100 * part / whole:.1f}%"


def _nodes(r: Report) -> Table:
    """One row per node of a neck, then the totals; shares of the neck's FLOPs (and time, when timed)."""
    timed = any(n.latency_ms is not None for n in r.nodes or ())
    total_ms = sum(n.latency_ms or 0 for n in r.nodes or ())
    t = Table(title="Nodes (merges marked *; shares of the neck's FLOPs" + (" and time" if timed else "") + ")",
              header_style="bold")
    for col in ("node", "lvl", "kind", "inputs -> output", "params", "MACs", "FLOPs", "bytes", "FLOPs %",
                *(("time ms", "time %") if timed else ())):
        t.add_column(col, justify="left" if col in ("node", "kind", "inputs -> output") else "right")
    for n in r.nodes or ():
        shapes = " + ".join(format_shape(s[1:]) for s in n.input_shapes) + " -> " + format_shape(n.output_shape[1:])
        t.add_row(("* " if n.merge else "  ") + txt(n.id), str(n.level), txt(n.kind), shapes, f"{n.params:,}", f"{n.macs:,}",
                  f"{n.flops:,}", f"{n.bytes:,}", share(n.flops, r.cost.flops),
                  *((f"{n.latency_ms:.3f}" if n.latency_ms is not None else "-", share(n.latency_ms, total_ms))
                    if timed else ()))
    t.add_row("  total", "", "", f"{len(r.nodes or ())} nodes", f"{r.params['total']:,}", f"{r.cost.macs:,}",
              f"{r.cost.flops:,}", f"{r.cost.bytes.total:,}", "100.0%",
              *((f"{total_ms:.3f}", "100.0%") if timed else ()), style="bold")
    return t


def _node_comparison(reports: list[Report], metric: str) -> Table:
    """Necks side by side, node by node: one column per design (exact ``params`` or ``macs``)."""
    label = {"params": "params", "macs": "MACs"}[metric]
    t = Table(title=f"{label} per node", header_style="bold")
    t.add_column("node")
    for r in reports:
        t.add_column(txt(r.name), justify="right")
    ids = list(dict.fromkeys(n.id for r in reports for n in r.nodes or ()))
    rows = [{n.id: n for n in r.nodes or ()} for r in reports]
    for node_id in ids:
        cells = [f"{getattr(row[node_id], metric):,}" if node_id in row else "-" for row in rows]
        merge = any(node_id in row and row[node_id].merge for row in rows)
        t.add_row(("* " if merge else "  ") + txt(node_id), *cells)
    totals = [r.params["total"] if metric == "params" else r.cost.macs for r in reports]
    t.add_row("  total", *(f"{v:,}" for v in totals), style="bold")
    return t


def _breakdown(title: str, items: dict) -> Table:
    t = Table(title=title, header_style="bold")
    for col in ("name", "calls", "MACs", "FLOPs", "bytes moved"):
        t.add_column(col, justify="left" if col == "name" else "right")
    for name, v in items.items():
        t.add_row(txt(name) if name else "(whole block)", str(v["calls"]), f"{v['macs']:,}", f"{v['flops']:,}",
                  f"{v['bytes_read'] + v['bytes_written']:,}")
    return t


def _crosscheck(r: Report) -> Table:
    t = Table(title="Cross-check with other counters", header_style="bold")
    for col in ("tool", "figure", "unit", "ratio to fusion", "ops it skipped"):
        t.add_column(col, justify="right" if col in ("figure", "ratio to fusion") else "left")
    t.add_row("fusion", f"{r.cost.macs:,} / {r.cost.flops:,}", "MAC / FLOP (fusion-v1)", "1.00", "")
    for tool, v in (r.crosscheck or {}).items():
        if "error" in v:
            t.add_row(tool, "-", "", "", f"[red]failed: {v['error']}[/red]")
            continue
        skipped = v["skipped_ops"]
        skipped = ", ".join(f"{k} x{n}" for k, n in skipped.items()) if isinstance(skipped, dict) else ", ".join(skipped)
        unit = {"macs": "MACs", "flops": "FLOPs"}[v["compared_with"]]
        t.add_row(tool, f"{v['value']:,}", v["unit"], "-" if v["ratio"] is None else f"{v['ratio']:.3f} of fusion {unit}",
                  skipped)
    notes = [f"{tool}: {n}" for tool, v in (r.crosscheck or {}).items() for n in v.get("notes", ())]
    if notes:
        t.caption = "\n".join(txt(n) for n in notes)
        t.caption_justify = "left"
    return t


def render_inspect(console: Console, r: Report, *, by_op: bool, by_module: bool) -> None:
    console.print(f"[bold]{txt(r.name)}[/bold]  block [cyan]{txt(r.block)}[/cyan]"
                  + (f"  ({txt(r.source)})" if r.source else ""))
    opts = ", ".join(f"{txt(k)}={txt(v)}" for k, v in r.options.items())
    console.print(f"options: {opts}")
    names = r.input_names or [None] * len(r.inputs)
    paths = r.output_paths if len(r.output_paths) == len(r.outputs) and r.output_paths != ["out"] else \
        [None] * len(r.outputs)
    console.print("inputs:  " + ", ".join(format_input(s, n) for s, n in zip(r.inputs, names))
                  + (f" (--pack {r.pack})" if r.pack != "args" else "")
                  + "   ->   outputs: " + ", ".join(format_input(s, p) for s, p in zip(r.outputs, paths)))
    if r.counted_on != "meta":
        console.print(f"[yellow]counted on {r.counted_on} with real tensors (the block cannot run on the meta "
                      "device)[/yellow]")
    if r.layers:
        console.print(_layers(r))
    if r.nodes is not None:
        console.print(_nodes(r))
    console.print(_summary(r))
    if r.training is not None:
        for table in _training(r):
            console.print(table)
    if r.crosscheck:
        console.print(_crosscheck(r))
    if by_op:
        console.print(_breakdown("Cost by aten op", r.cost.by_op))
    if by_module:
        console.print(_breakdown("Cost by module (inclusive)", r.cost.by_module))
    if r.training is not None and by_op:
        console.print(_breakdown("Backward by aten op (grad w.r.t. weights: the part in grad_weight)",
                                 r.training.backward.by_op))
    if r.training is not None and by_module:
        console.print(_breakdown("Backward by module (inclusive)", r.training.backward.by_module))
    console.print(f"[dim]Counting convention: {r.cost.convention}[/dim]")
    if r.training is not None:
        console.print(f"[dim]Training convention: {txt(r.training.convention)}[/dim]")


def render_compare(console: Console, env: Envelope) -> None:
    ratios = env.ratio_table()
    ok = [r for r in env.reports if isinstance(r, Report)]
    best = env.best if env.best and len(ok) > 1 else {}

    def mark(metric: str, name: str, text: str) -> str:  # the lowest value of a column, in bold green
        return f"[bold green]{text}[/bold green]" if name in best.get(metric, ()) else text

    pareto = env.pareto_metrics is not None
    timed = any(r.timing is not None for r in ok)
    t = Table(title=f"Comparison (x: ratio to '{txt(env.baseline)}'; bold green: best of a column)",
              header_style="bold")
    t.add_column("name", no_wrap=True)  # names are never cut: the number columns are narrow
    for col in ("params", "MACs", "FLOPs", "peak act.", *(["latency ms"] if timed else [])):
        t.add_column(col, justify="right", no_wrap=True)
    if pareto:
        t.add_column("✓", justify="center", no_wrap=True)

    def cell(metric: str, name: str, text: str, q: float | None = None, show_ratio: bool = True) -> str:
        return mark(metric, name, text) + (f"\n{ratio(q)}" if show_ratio else "")

    shapes: dict[str, list[str]] = {}
    for r in env.reports:
        if isinstance(r, ErrorEntry):
            t.add_row(txt(r.name), "[red]error[/red]", *["-"] * (3 + timed + pareto))
            continue
        q = ratios.get(r.name, {})
        shapes.setdefault(shapes_text(r) + ("" if r.block == r.name else f" ({txt(r.block)})"), []).append(r.name)
        lat = f"{r.timing.median_ms:.3f}\n± {r.timing.iqr_ms:.3f} {ratio(q.get('latency_ms'))}" if r.timing else "-"
        if r.roofline is not None:
            lat += "\n" + roof_text(r).replace("% memory", "% roof, mem").replace("% compute", "% roof, comp")
        t.add_row(txt(r.name), cell("params", r.name, si(r.params["total"]), q.get("params")),
                  cell("macs", r.name, si(r.cost.macs), q.get("macs")),
                  cell("flops", r.name, si(r.cost.flops), q.get("flops")),
                  mark("memory", r.name, binary(r.memory.peak_activation_bytes)),
                  *([mark("latency", r.name, lat)] if timed else []),
                  *(["✓" if r.name in env.pareto_front else ""] if pareto else []))
    console.print(t)
    necks = [r for r in ok if r.nodes is not None]
    if len(necks) > 1:
        for metric in ("params", "macs"):
            console.print(_node_comparison(necks, metric))
    for r in env.failed:
        console.print(f"[red]{txt(r.name)}: {txt(r.error['message'])}[/red]", markup=True)
    if pareto and env.pareto_metrics:
        console.print(f"[dim]Pareto: ✓ = no other design is at least as good on all of "
                      f"{', '.join(env.pareto_metrics)} and better on one[/dim]")
    for note in env.notes:
        console.print(f"[dim]{txt(note)}[/dim]", markup=True)
    for text, names in shapes.items():
        console.print(f"[dim]inputs -> outputs: {txt(text)}: {txt(', '.join(names))}[/dim]")
    for r in ok:
        if r.training is not None:
            tr = r.training
            console.print(f"[dim]training step of {txt(r.name)} ({tr.optimizer}): {si(tr.step_flops, 'FLOP')} "
                          f"(backward {ratio(tr.backward.flops / tr.forward_flops if tr.forward_flops else None)} "
                          f"the forward), peak {binary(tr.memory.peak_bytes)}[/dim]")
    if timed and any(r.roofline for r in ok):
        console.print("[dim]% roof: achieved GFLOP/s / attainable = min(peak, FLOP/byte x bandwidth) of `fusion "
                      "machine`; mem, comp: memory or compute bound[/dim]")
    first = next((r for r in env.reports if isinstance(r, Report)), None)
    if first:
        console.print(f"[dim]Shapes without the batch (batch {first.inputs[0][0]}); params in count; MACs = multiply-"
                      f"accumulates; FLOPs: {first.cost.convention.split(':')[0]} convention (see README)"
                      + ("; latency: median ± IQR over timed runs" if timed else "") + "[/dim]")


def render_table(env: Envelope, out: TextIO, *, width: int | None = None, by_op: bool = False,
                 by_module: bool = False) -> None:
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    reports = env.reports
    if env.sweep is not None:
        from .sweep_table import render_sweep

        render_sweep(console, env)
    elif env.baseline is None and len(reports) == 1 and isinstance(reports[0], Report):
        render_inspect(console, reports[0], by_op=by_op, by_module=by_module)
    else:
        render_compare(console, env)
