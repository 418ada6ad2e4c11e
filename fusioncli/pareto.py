"""Choosing among designs: metric values, the Pareto front, the best value per column, sort order.

Plain functions over :class:`fusioncli.report.Report` objects (no torch, no typer, no rich).
Every metric is a cost, so lower is better. A design is *on the Pareto front* over a
set of metrics when no other design is at least as good on all of them and strictly
better on one; designs with identical values do not dominate each other, so both stay
on the front. Latency compares medians (noise is not modelled).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import SpecError
from .report import ErrorEntry, Report

@dataclass(frozen=True)
class Metric:
    label: str  # with its unit: plot axes
    short: str  # in sentences and exponent tables: "MACs ∝ size^2.00"
    column: str  # its column in summary rows (CSV, tables, Markdown)


#: the one vocabulary of metrics: the names of --sort, --pareto and a sweep's exponents, in column order
METRICS = {
    "params": Metric("parameters (count)", "params", "params"),
    "macs": Metric("MACs (count, multiply-accumulates)", "MACs", "macs"),
    "flops": Metric("FLOPs (count, fusion-v1)", "FLOPs", "flops"),
    "bytes": Metric("bytes moved (B)", "bytes", "bytes_moved"),
    "memory": Metric("peak activation memory (B)", "peak act.", "peak_activation_bytes"),
    "latency": Metric("latency, median (ms)", "latency", "latency_median_ms"),
}
SORT_KEYS = ("name", *METRICS)
DEFAULT_PARETO = ("params", "flops", "latency")


def value(report: Report, metric: str) -> float | None:
    """The value of a metric: ``bytes`` moved (unfused), ``memory`` peak activation bytes, ``latency`` median ms."""
    if metric == "params":
        return report.params["total"]
    if metric in ("macs", "flops"):
        return getattr(report.cost, metric)
    if metric == "bytes":
        return report.cost.bytes.total
    if metric == "memory":
        return report.memory.peak_activation_bytes
    if metric == "latency":
        return report.latency_ms
    raise KeyError(metric)


def parse_metrics(text: str, field: str = "--pareto") -> list[str]:
    """``"params,flops,latency"`` -> ``["params", "flops", "latency"]`` (validated, no duplicates)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise SpecError.bad(field, text, "expected comma-separated metrics from: " + ", ".join(METRICS))
    for name in names:
        if name not in METRICS:
            raise SpecError.bad(field, name, "allowed: " + ", ".join(METRICS), choices=METRICS)
    return list(dict.fromkeys(names))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and strictly better somewhere (lower is better)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front(points: dict[str, Sequence[float]]) -> list[str]:
    """Names of the non-dominated points, in the given order."""
    return [n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)]


def pareto_front(reports: Iterable[Report | ErrorEntry], metrics: Sequence[str]) -> list[str]:
    """Names of the reports on the Pareto front over ``metrics`` (error rows and reports missing a metric are out)."""
    points = {}
    for r in reports:
        if isinstance(r, Report):
            vals = [value(r, m) for m in metrics]
            if all(v is not None for v in vals):
                points[r.name] = vals
    return front(points)


def available_metrics(reports: Iterable[Report | ErrorEntry], metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``metrics`` into those every successful report has and those some lack (latency without timing)."""
    rs = [r for r in reports if isinstance(r, Report)]
    have = [m for m in metrics if rs and all(value(r, m) is not None for r in rs)]
    return have, [m for m in metrics if m not in have]


def best(reports: Iterable[Report | ErrorEntry], metrics: Sequence[str] = tuple(METRICS)) -> dict[str, list[str]]:
    """For each metric, the names of the reports with the lowest value (ties share it); metrics nobody has are left out."""
    rs = [r for r in reports if isinstance(r, Report)]
    out: dict[str, list[str]] = {}
    for m in metrics:
        vals = {r.name: value(r, m) for r in rs}
        vals = {n: v for n, v in vals.items() if v is not None}
        if vals:
            low = min(vals.values())
            out[m] = [n for n, v in vals.items() if v == low]
    return out


def sort_entries(entries: Sequence[Report | ErrorEntry], key: str) -> list[Report | ErrorEntry]:
    """Reports ascending by ``key`` (``name`` alphabetically), stable; missing values, then error rows, last."""
    if key not in SORT_KEYS:
        raise SpecError.bad("--sort", key, "allowed: " + ", ".join(SORT_KEYS), choices=SORT_KEYS)
    reports = [r for r in entries if isinstance(r, Report)]
    errors = [r for r in entries if isinstance(r, ErrorEntry)]
    if key == "name":
        return sorted(reports, key=lambda r: r.name) + errors
    have = [r for r in reports if value(r, key) is not None]
    missing = [r for r in reports if value(r, key) is None]
    return sorted(have, key=lambda r: value(r, key)) + missing + errors
