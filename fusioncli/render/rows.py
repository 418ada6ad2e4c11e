"""The flat summary row shared by the CSV and Markdown renderers (units in the headers).

Compare rows add the ratios and the Pareto mark; sweep rows add one column per swept
variable (``vary:NAME``) before the figures.
"""

from __future__ import annotations

from ..pareto import METRICS
from ..report import Envelope, ErrorEntry
from ..spec import format_shape

COLUMNS = (
    "name", "block", "inputs", "outputs", "params", "macs", "flops", "bytes_moved", "peak_activation_bytes",
    "latency_median_ms", "latency_iqr_ms", "timed_runs", "roof_percent", "bound",
    "backward_macs", "backward_flops", "train_peak_bytes",
    "params_ratio", "macs_ratio", "flops_ratio", "latency_ratio", "pareto", "error",
)
#: with --deploy: the ONNX export and ONNX Runtime (fusioncli.report.Deploy), after the eager figures
DEPLOY_COLUMNS = ("onnx_status", "onnx_nodes", "onnx_ops", "ort_latency_median_ms", "ort_latency_iqr_ms", "ort_runs",
                  "ort_to_eager", "ort_max_rel_diff", "onnx_error")
#: column -> the metric of fusioncli.pareto whose lowest value Envelope.best names
BEST_COLUMNS = {m.column: name for name, m in METRICS.items()}
VARIABLE_HEADERS = {"size": "size (H of input 1, px)", "channels": "channels (C of input 1)", "batch": "batch",
                    "out": "out (channels)"}


def summary_rows(envelope: Envelope) -> list[dict]:
    ratios = envelope.ratio_table()
    rows = []
    for r in envelope.reports:
        point = {f"vary:{k}": v for k, v in (r.sweep or {}).get("values", {}).items()}
        if isinstance(r, ErrorEntry):
            rows.append({"name": r.name, **point, "error": r.error["message"]})
            continue
        t = r.timing
        ratio = ratios.get(r.name, {})
        rows.append({
            "name": r.name,
            **point,
            "block": r.block,
            "inputs": " ".join(format_shape(s) for s in r.inputs),
            "outputs": " ".join(format_shape(s) for s in r.outputs),
            "params": r.params["total"],
            "macs": r.cost.macs,
            "flops": r.cost.flops,
            "bytes_moved": r.cost.bytes.total,
            "peak_activation_bytes": r.memory.peak_activation_bytes,
            "latency_median_ms": round(t.median_ms, 4) if t else None,
            "latency_iqr_ms": round(t.iqr_ms, 4) if t else None,
            "timed_runs": t.runs if t else None,
            "roof_percent": round(100 * r.roofline.fraction, 1) if r.roofline and r.roofline.fraction else None,
            "bound": r.roofline.bound if r.roofline else None,
            "backward_macs": r.training.backward.macs if r.training else None,
            "backward_flops": r.training.backward.flops if r.training else None,
            "train_peak_bytes": r.training.memory.peak_bytes if r.training else None,
            "params_ratio": ratio.get("params"),
            "macs_ratio": ratio.get("macs"),
            "flops_ratio": ratio.get("flops"),
            "latency_ratio": ratio.get("latency_ms"),
            "pareto": (r.name in envelope.pareto_front) if envelope.pareto_metrics is not None else None,
            "error": None,
            **(deploy_cells(r.deploy) if r.deploy else {}),
        })
    return rows


def deploy_cells(d) -> dict:
    t = d.timing
    return {"onnx_status": d.stage if d.stage == "ok" else f"failed at {d.stage}", "onnx_nodes": sum(d.ops.values()),
            "onnx_ops": " ".join(f"{k}:{v}" for k, v in d.ops.items()),
            "ort_latency_median_ms": round(t.median_ms, 4) if t else None,
            "ort_latency_iqr_ms": round(t.iqr_ms, 4) if t else None, "ort_runs": t.runs if t else None,
            "ort_to_eager": d.latency_ratio, "ort_max_rel_diff": d.max_rel_diff, "onnx_error": d.error}


HEADERS = {
    "name": "name", "block": "block", "inputs": "inputs (batch x shape)", "outputs": "outputs (batch x shape)",
    "params": "params (count)", "macs": "MACs (count)", "flops": "FLOPs (count)",
    "bytes_moved": "bytes moved (B)", "peak_activation_bytes": "peak activations (B)",
    "latency_median_ms": "latency median (ms)", "latency_iqr_ms": "latency IQR (ms)", "timed_runs": "timed runs",
    "roof_percent": "% of roof (achieved / attainable)", "bound": "bound (memory or compute)",
    "backward_macs": "backward MACs (count)", "backward_flops": "backward FLOPs (count)",
    "train_peak_bytes": "training step peak (B)",
    "params_ratio": "params (x baseline)", "macs_ratio": "MACs (x baseline)", "flops_ratio": "FLOPs (x baseline)",
    "latency_ratio": "latency (x baseline)", "pareto": "Pareto front", "error": "error",
    "onnx_status": "ONNX export", "onnx_nodes": "ONNX nodes (count)", "onnx_ops": "ONNX ops (op:count)",
    "ort_latency_median_ms": "ONNX Runtime median (ms)", "ort_latency_iqr_ms": "ONNX Runtime IQR (ms)",
    "ort_runs": "ONNX Runtime runs", "ort_to_eager": "ONNX Runtime (x eager)",
    "ort_max_rel_diff": "ONNX Runtime max rel. diff", "onnx_error": "ONNX error",
}


def header(envelope: Envelope, col: str) -> str:
    """The header of a column, with its unit (and, for ``pareto``, the metrics of the front)."""
    if col.startswith("vary:"):
        name = col[5:]
        return VARIABLE_HEADERS.get(name, f"{name} (option)")
    if col == "pareto" and envelope.pareto_metrics:
        return f"Pareto front ({'+'.join(envelope.pareto_metrics)})"
    return HEADERS[col]


def is_best(envelope: Envelope, col: str, name: str) -> bool:
    """Whether ``name`` holds the lowest value of column ``col`` (only among two or more reports)."""
    metric = BEST_COLUMNS.get(col)
    if not metric or not envelope.best or len(envelope.reports) - len(envelope.failed) < 2:
        return False
    return name in envelope.best.get(metric, ())


def used_columns(envelope: Envelope) -> list[str]:
    cols = list(COLUMNS)
    if envelope.baseline is None:
        cols = [c for c in cols if not c.endswith("_ratio")]
    if envelope.pareto_metrics is None:
        cols.remove("pareto")
    if not envelope.failed:
        cols.remove("error")
    reports = [r for r in envelope.reports if not isinstance(r, ErrorEntry)]
    if not any(r.roofline for r in reports):
        cols = [c for c in cols if c not in ("roof_percent", "bound")]
    if not any(r.training for r in reports):
        cols = [c for c in cols if c not in ("backward_macs", "backward_flops", "train_peak_bytes")]
    if envelope.sweep:
        cols[1:1] = [f"vary:{v}" for v in envelope.sweep.get("vary", {})]
    if any(getattr(r, "deploy", None) for r in envelope.reports):
        cols += DEPLOY_COLUMNS
    return cols
