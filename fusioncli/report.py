"""The report data model: plain frozen dataclasses that every renderer reads.

Numbers are raw (counts, bytes, milliseconds); only the table renderer humanises them.
``to_dict()`` gives the JSON form (``schema_version`` 1); keys are only ever added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    depth: int
    output_shape: list[int]
    params: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float
    min_ms: float
    mean_ms: float
    cv: float  # standard deviation / mean of the per-call times
    runs: int  # timed measurements
    calls: int  # forward calls timed in all (runs x calls per run)
    threads: int
    warmup: int
    noisy: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    name: str
    block: str
    options: dict[str, Any]
    inputs: list[list[int]]
    outputs: list[list[int]]
    params: dict[str, int]
    cost: dict[str, Any]
    memory: dict[str, int]
    timing: Timing | None
    layers: list[Layer]
    unused_params: list[str] = field(default_factory=list)
    crosscheck: dict[str, Any] | None = None  # only when requested
    source: str = ""
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timing"] = self.timing.to_dict() if self.timing else None
        if self.crosscheck is None:
            del d["crosscheck"]
        return d

    @property
    def latency_ms(self) -> float | None:
        return self.timing.median_ms if self.timing else None


@dataclass(frozen=True)
class ErrorEntry:
    """A spec that failed inside a ``compare``: reported in its row, the others still run."""

    name: str
    error: dict[str, Any]

    def to_dict(self) -> dict:
        return {"name": self.name, "error": self.error}


RATIO_METRICS = ("params", "macs", "flops", "latency_ms")


def metric(report: Report, name: str) -> float | None:
    if name == "params":
        return report.params["total"]
    if name in ("macs", "flops"):
        return report.cost[name]
    if name == "latency_ms":
        return report.latency_ms
    raise KeyError(name)


def ratios(report: Report, baseline: Report) -> dict[str, float | None]:
    """Each metric of ``report`` divided by the baseline's (None where either is missing or zero)."""
    out: dict[str, float | None] = {}
    for m in RATIO_METRICS:
        a, b = metric(report, m), metric(baseline, m)
        out[m] = (a / b) if (a is not None and b) else None
    return out


@dataclass
class Envelope:
    """What one command run produced: environment, reports in spec order, and for compare the ratios."""

    tool_version: str
    environment: dict[str, Any]
    reports: list[Report | ErrorEntry]
    baseline: str | None = None

    def ratio_table(self) -> dict[str, dict[str, float | None]]:
        base = next((r for r in self.reports if isinstance(r, Report) and r.name == self.baseline), None)
        if base is None:
            return {}
        return {r.name: ratios(r, base) for r in self.reports if isinstance(r, Report)}

    def to_dict(self) -> dict:
        table = self.ratio_table()
        reports = []
        for r in self.reports:
            d = r.to_dict()
            if self.baseline is not None and isinstance(r, Report):
                d["ratios"] = table.get(r.name)
            reports.append(d)
        d = {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "fusioncli", "version": self.tool_version},
            "environment": self.environment,
            "reports": reports,
        }
        if self.baseline is not None:
            d["baseline"] = self.baseline
        return d

    @property
    def failed(self) -> list[ErrorEntry]:
        return [r for r in self.reports if isinstance(r, ErrorEntry)]
