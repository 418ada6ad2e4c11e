"""Rich tables for people: every count carries its unit, big numbers are humanised."""

from __future__ import annotations

import os
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report import Envelope, ErrorEntry, Report
from ..spec import format_input, format_shape
from .formats import counted, option_text, printable


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
        how = [tm.mode, counted(tm.threads, "thread")]
        how += ["channels_last"] * tm.channels_last + ["compiled"] * tm.compiled
        t.add_row("latency, median ± IQR (ms)", latency(r), f"min {tm.min_ms:.3f}")
        t.add_row(f"timed \\[{', '.join(how)}]", f"{counted(tm.runs, 'run')} / {counted(tm.calls, 'call')}",
                  f"CV {tm.cv:.1%}")
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


#: the output's dimensions by rank, batch first, for the layer table's header
RANK_NAMES = {2: "BxC", 4: "BxCxHxW", 5: "BxCxDxHxW"}
#: 1-D layers of channels-first maps (B x C x L); rank-3 outputs of any other layers are read as B x N x C tokens
CHANNELS_FIRST_1D = ("Conv1d", "ConvTranspose1d", "BatchNorm1d", "InstanceNorm1d", "MaxPool1d", "AvgPool1d",
                     "AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "Upsample")


def _layers(r: Report) -> Table:
    """The module tree: each layer under its parent, named relative to it (the full names are in JSON);
    the header names the dimensions when every shape has one rank."""
    shaped = [layer for layer in r.layers if layer.output_shape]
    ranks = {len(layer.output_shape) for layer in shaped}
    dims = "batch first"
    if ranks == {3} and not any(layer.type in CHANNELS_FIRST_1D for layer in shaped):
        dims = "BxNxC"
    elif len(ranks) == 1:
        dims = RANK_NAMES.get(ranks.pop(), dims)
    t = Table(title="Layers", header_style="bold")
    t.add_column("layer", overflow="fold")
    t.add_column("type", no_wrap=True)
    t.add_column(f"output ({dims})", no_wrap=True)
    t.add_column("params", justify="right", no_wrap=True)
    shown: list[str] = []
    for layer in r.layers:
        parents = [p for p in shown if layer.name.startswith(p + ".")]
        name = layer.name[len(max(parents, key=len)) + 1:] if parents else layer.name
        calls = f" ({layer.calls} calls)" if layer.calls > 1 else ""
        t.add_row("  " * len(parents) + txt(name) + calls, txt(layer.type),
                  format_shape(layer.output_shape) if layer.output_shape else "-", f"{layer.params:,}")
        shown.append(layer.name)
    return t


def share(part: float | None, whole: float | None) -> str:
    return "-" if part is None or not whole else f"{100 * part / whole:.1f}%"


def _nodes(r: Report) -> Table:
    """One row per node of a neck (its kind under its id, one input shape a line), then the totals; the
    shares of the neck's FLOPs (and time, when timed). Exact figures and bytes: --format json or markdown."""
    timed = any(n.latency_ms is not None for n in r.nodes or ())
    total_ms = sum(n.latency_ms or 0 for n in r.nodes or ())
    t = Table(title="Nodes (merges marked *; shares of the neck's" + (" FLOPs and time)" if timed else " FLOPs)"),
              header_style="bold")
    for col in ("node / kind", "inputs -> output", "params", *(("time ms", "time %") if timed else ("MACs",)),
                "FLOPs %"):
        t.add_column(col, justify="left" if col in ("node / kind", "inputs -> output") else "right", no_wrap=True)
    for n in r.nodes or ():
        shapes = " +\n".join(format_shape(s[1:]) for s in n.input_shapes) + "\n-> " + format_shape(n.output_shape[1:])
        t.add_row(("* " if n.merge else "  ") + txt(n.id) + "\n  " + txt(n.kind), shapes, si(n.params),
                  *((f"{n.latency_ms:.3f}" if n.latency_ms is not None else "-", share(n.latency_ms, total_ms))
                    if timed else (si(n.macs),)), share(n.flops, r.cost.flops))
    t.add_row("  total", f"{len(r.nodes or ())} nodes", si(r.params["total"]),
              *((f"{total_ms:.3f}", "100.0%") if timed else (si(r.cost.macs),)), "100.0%", style="bold")
    return t


def _short_names(names: list[str]) -> tuple[list[str], str]:
    """Column headers for designs that share a prefix and suffix (``resnet50-fpn[add]``, ``...[aff]``): what
    differs (``add``, ``aff``), and the caption naming the common part; the names as they are otherwise."""
    if len(names) < 2:
        return names, ""
    pre = os.path.commonprefix(names)
    suf = os.path.commonprefix([n[len(pre):][::-1] for n in names])[::-1]
    short = [n[len(pre):len(n) - len(suf)] for n in names]
    if not all(short) or len(set(short)) < len(short):
        return names, ""
    return short, f"columns: {pre}COLUMN{suf}"


def _node_comparison(reports: list[Report], metric: str, width: int) -> list[Table]:
    """Necks side by side, node by node: one column per design (humanised ``params`` or ``macs``); as many
    tables as it takes for the columns to fit ``width``."""
    label = {"params": "params", "macs": "MACs"}[metric]
    ids = list(dict.fromkeys(n.id for r in reports for n in r.nodes or ()))
    rows = [{n.id: n for n in r.nodes or ()} for r in reports]
    headers, caption = _short_names([r.name for r in reports])
    node_w = max(len(i) for i in [*ids, "total"]) + 2
    col_w = [max(len(h), 9) for h in headers]
    tables, start = [], 0
    while start < len(reports):
        end, used = start + 1, 1 + node_w + 3 + col_w[start] + 3
        while end < len(reports) and used + col_w[end] + 3 <= width:
            used += col_w[end] + 3
            end += 1
        t = Table(title=f"{label} per node", header_style="bold", caption=caption or None)
        t.add_column("node", no_wrap=True)
        for h in headers[start:end]:
            t.add_column(txt(h), justify="right", no_wrap=True)
        for node_id in ids:
            cells = [si(getattr(row[node_id], metric)) if node_id in row else "-" for row in rows[start:end]]
            merge = any(node_id in row and row[node_id].merge for row in rows[start:end])
            t.add_row(("* " if merge else "  ") + txt(node_id), *cells)
        totals = [r.params["total"] if metric == "params" else r.cost.macs for r in reports[start:end]]
        t.add_row("  total", *(si(v) for v in totals), style="bold")
        tables.append(t)
        start = end
    return tables


def _breakdown(title: str, items: dict) -> Table:
    """Per op or module: calls and humanised MACs, FLOPs and bytes (the exact counts: --format json)."""
    t = Table(title=title, header_style="bold")
    for col in ("name", "calls", "MACs", "FLOPs", "bytes"):
        t.add_column(col, justify="left" if col == "name" else "right", no_wrap=col != "name",
                     overflow="fold")
    for name, v in items.items():
        t.add_row(txt(name.removeprefix("aten.")) if name else "(whole block)", str(v["calls"]), si(v["macs"]),
                  si(v["flops"]), binary(v["bytes_read"] + v["bytes_written"]))
    return t


def _crosscheck(r: Report) -> Table:
    """Each counter's figure and its ratio to fusion's, then its unit and the ops it skipped ('aten' left out)."""
    t = Table(title="Cross-check with other counters (ops: aten. left out)", header_style="bold")
    t.add_column("tool", no_wrap=True)
    t.add_column("figure", justify="right", no_wrap=True)
    t.add_column("x fusion", justify="right", no_wrap=True)
    t.add_column("unit; ops it skipped", overflow="fold")
    t.add_row("fusion", f"{r.cost.macs:,}\n{r.cost.flops:,}", "1.00", "MAC, FLOP (fusion-v1)")
    for tool, v in (r.crosscheck or {}).items():
        if "error" in v:
            t.add_row(tool, "-", "", f"[red]failed: {txt(v['error'])}[/red]")
            continue
        skipped = v["skipped_ops"]
        skipped = [f"{k} x{n}" for k, n in skipped.items()] if isinstance(skipped, dict) else list(skipped)
        skipped = ", ".join(op.removeprefix("aten::").removeprefix("aten.") for op in skipped)
        unit = {"macs": "MACs", "flops": "FLOPs"}[v["compared_with"]]
        t.add_row(tool, f"{v['value']:,}", "-" if v["ratio"] is None else f"{v['ratio']:.3f} {unit}",
                  txt(v["unit"]) + (f"; {txt(skipped)}" if skipped else ""))
    notes = [f"{tool}: {n}" for tool, v in (r.crosscheck or {}).items() for n in v.get("notes", ())]
    if notes:
        t.caption = "\n".join(txt(n) for n in notes)
        t.caption_justify = "left"
    return t


def _ops_text(ops: dict[str, int]) -> str:
    n = sum(ops.values())
    return f"{n} node{'s' * (n != 1)}: " + ", ".join(f"{txt(k)}:{v}" for k, v in ops.items())  # op:count never wraps


def _deploy(r: Report) -> Table:
    """The deployment check of one report: export, ops, ONNX Runtime outputs against eager, latency."""
    d = r.deploy
    t = Table(title=f"Deployment (ONNX opset {d.opset}, {d.exporter} exporter; ONNX Runtime {d.provider})",
              header_style="bold")
    t.add_column("check")
    t.add_column("result", overflow="fold")
    t.add_row("exported", f"yes, {d.file_bytes:,} bytes" if d.exported else f"[red]no[/red]: {txt(d.error)}")
    if d.exported:
        t.add_row("onnx.checker", "passed" if d.stage != "checker" else f"[red]failed[/red]: {txt(d.error)}")
        t.add_row("ONNX ops", _ops_text(d.ops))
        t.add_row("ops without an ONNX Runtime kernel", ", ".join(map(txt, d.unsupported_ops)) or "none")
    if d.stage in ("session", "run"):
        t.add_row("[red]ONNX Runtime failed[/red]", txt(d.error))
    if d.max_abs_diff is not None:
        t.add_row("outputs vs eager (max abs | rel.)", f"{d.max_abs_diff:.3g} | {d.max_rel_diff:.3g}")
    if d.timing:
        tm = d.timing
        threads = f"{tm.threads} thread" + "s" * (tm.threads != 1)
        t.add_row("ONNX Runtime latency, median ± IQR (ms)", f"{tm.median_ms:.3f} ± {tm.iqr_ms:.3f} (min "
                  f"{tm.min_ms:.3f}, CV {tm.cv:.1%}, {tm.runs} runs / {tm.calls} calls, {threads})")
        t.add_row("ONNX Runtime / eager latency", ratio(d.latency_ratio))
    if d.failing_op:
        t.add_row("failing op", txt(d.failing_op))
    return t


def _deploy_compare(env: Envelope) -> Table:
    """Every design's deployment check in one table: export status, ONNX ops, ONNX Runtime latency and ratio."""
    first = next(r.deploy for r in env.reports if isinstance(r, Report) and r.deploy)
    t = Table(title=f"Deployment (ONNX opset {first.opset}, {first.exporter}; ONNX Runtime "
              f"{first.provider.replace('ExecutionProvider', '')}; x: ORT / eager)", header_style="bold")
    t.add_column("name", no_wrap=True)
    t.add_column("export", no_wrap=True)
    t.add_column("ONNX ops", overflow="fold")
    t.add_column("ORT ms", justify="right", no_wrap=True)
    for r in env.reports:
        d = r.deploy if isinstance(r, Report) else None
        if d is None:
            t.add_row(txt(r.name), "[red]error[/red]", "-", "-")
            continue
        status = "ok" if d.stage == "ok" else f"[red]no ({d.stage})[/red]"
        ops = _ops_text(d.ops) if d.ops else "-"
        if d.unsupported_ops:
            ops += f"\n[red]no ORT kernel: {', '.join(map(txt, d.unsupported_ops))}[/red]"
        lat = f"{d.timing.median_ms:.3f}\n± {d.timing.iqr_ms:.3f} {ratio(d.latency_ratio)}" if d.timing else "-"
        t.add_row(txt(r.name), status, ops, lat)
    return t


def render_inspect(console: Console, r: Report, *, by_op: bool, by_module: bool) -> None:
    console.print(f"[bold]{txt(r.name)}[/bold]  block [cyan]{txt(r.block)}[/cyan]"
                  + (f"  ({txt(r.source)})" if r.source else ""))
    opts = ", ".join(f"{txt(k)}={escape(option_text(v))}" for k, v in r.options.items())
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
    if r.deploy:
        console.print(_deploy(r))
    if by_op:
        console.print(_breakdown("Cost by aten op (aten. left out)", r.cost.by_op))
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
    if any(r.deploy for r in ok):
        console.print(_deploy_compare(env))
        for r in ok:
            if r.deploy and r.deploy.error:
                op = f" ({txt(r.deploy.failing_op)})" if r.deploy.failing_op else ""
                console.print(f"[red]{txt(r.name)}: ONNX {r.deploy.stage} failed{op}: {txt(r.deploy.error)}[/red]")
    necks = [r for r in ok if r.nodes is not None]
    if len(necks) > 1:
        for metric in ("params", "macs"):
            for table in _node_comparison(necks, metric, console.width):
                console.print(table)
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
                      + ("; latency: median ± IQR over timed runs" if timed else "")
                      + "".join(f" ({b})" for b in {r.timing.backend for r in ok if r.timing} - {"eager"}) + "[/dim]")


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
