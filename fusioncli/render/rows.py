"""The flat summary row shared by the CSV and Markdown renderers (units in the headers)."""

from __future__ import annotations

from ..report import Envelope, ErrorEntry
from ..spec import format_shape

COLUMNS = (
    "name", "block", "inputs", "outputs", "params", "macs", "flops", "bytes_moved", "peak_activation_bytes",
    "latency_median_ms", "latency_iqr_ms", "timed_runs",
    "params_ratio", "macs_ratio", "flops_ratio", "latency_ratio", "error",
)


def summary_rows(envelope: Envelope) -> list[dict]:
    ratios = envelope.ratio_table()
    rows = []
    for r in envelope.reports:
        if isinstance(r, ErrorEntry):
            rows.append({"name": r.name, "error": r.error["message"]})
            continue
        t = r.timing
        ratio = ratios.get(r.name, {})
        rows.append({
            "name": r.name,
            "block": r.block,
            "inputs": " ".join(format_shape(s) for s in r.inputs),
            "outputs": " ".join(format_shape(s) for s in r.outputs),
            "params": r.params["total"],
            "macs": r.cost["macs"],
            "flops": r.cost["flops"],
            "bytes_moved": r.cost["bytes"]["total"],
            "peak_activation_bytes": r.memory["peak_activation_bytes"],
            "latency_median_ms": round(t.median_ms, 4) if t else None,
            "latency_iqr_ms": round(t.iqr_ms, 4) if t else None,
            "timed_runs": t.runs if t else None,
            "params_ratio": ratio.get("params"),
            "macs_ratio": ratio.get("macs"),
            "flops_ratio": ratio.get("flops"),
            "latency_ratio": ratio.get("latency_ms"),
            "error": None,
        })
    return rows


HEADERS = {
    "name": "name", "block": "block", "inputs": "inputs (BxCxHxW)", "outputs": "outputs (BxCxHxW)",
    "params": "params (count)", "macs": "MACs (count)", "flops": "FLOPs (count)",
    "bytes_moved": "bytes moved (B)", "peak_activation_bytes": "peak activations (B)",
    "latency_median_ms": "latency median (ms)", "latency_iqr_ms": "latency IQR (ms)", "timed_runs": "timed runs",
    "params_ratio": "params (x baseline)", "macs_ratio": "MACs (x baseline)", "flops_ratio": "FLOPs (x baseline)",
    "latency_ratio": "latency (x baseline)", "error": "error",
}


def used_columns(envelope: Envelope) -> list[str]:
    cols = list(COLUMNS)
    if envelope.baseline is None:
        cols = [c for c in cols if not c.endswith("_ratio")]
    if not envelope.failed:
        cols.remove("error")
    return cols
