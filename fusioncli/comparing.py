"""What ``compare`` (and ``sweep``) add around ``run_spec``: spec globs, --baseline, --sort, --pareto, --plot.

Validation happens before any block runs, so a typo costs nothing; the decisions
(front, best values, order) are made by :mod:`fusioncli.pareto` and stored on the
envelope, which the renderers only format.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path


from . import pareto as P
from .errors import FusionError, SpecError
from .render.formats import counted
from .report import Envelope, ErrorEntry, Report

GLOB_CHARS = set("*?[")


def expand_specs(texts: list[str]) -> list[str]:
    """Expand quoted glob patterns of preset files (``'presets/*.toml'``), sorted; a pattern matching nothing is an error.

    The shell expands unquoted patterns itself; an existing file whose name holds ``*?[`` is kept as is.
    """
    out: list[str] = []
    for text in texts:
        if GLOB_CHARS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise SpecError.bad("SPEC", text, "the pattern matches no file; expected preset files, e.g. "
                                    "'presets/*.toml'")
            out.extend(matches)
        else:
            out.append(text)
    return out


def output_sizes_note(entries) -> str | None:
    """A note when the designs compared (in a sweep: those of one grid point) do not all output at one
    spatial size (blocks align their inputs to the first, the largest or the smallest by default,
    ``align``): their costs are not like for like. Table and JSON ``notes`` of compare, sweep and merge."""
    points: dict[tuple, dict[tuple, list[str]]] = {}  # grid point (() in compare) -> output size -> names
    for r in entries:
        if isinstance(r, Report) and r.outputs and len(r.outputs[0]) >= 3:
            point = tuple((r.sweep or {}).get("values", {}).items())
            points.setdefault(point, {}).setdefault(tuple(r.outputs[0][2:]), []).append(r.name)
    differing = [(point, sizes) for point, sizes in points.items() if len(sizes) > 1]
    if not differing:
        return None
    point, sizes = differing[0]
    shown = "; ".join(f"{'x'.join(map(str, size))}: {', '.join(names)}" for size, names in sizes.items())
    where = "" if not point else (f" at {len(differing)} of {counted(len(points), 'grid point')}, e.g. at "
                                  + ", ".join(f"{k}={v}" for k, v in point))
    return (f"outputs at different sizes{where} ({shown}): blocks align their inputs to the first, the largest or "
            "the smallest by default; --set align=first (or largest) compares them at one size")


@dataclass
class CompareChoice:
    """The validated --baseline, --sort, --pareto and --plot of one compare run."""

    baseline: str | None
    sort: str | None
    pareto: list[str]
    plot: Path | None
    timed: bool

    @classmethod
    def parse(cls, *, baseline: str | None, sort: str | None, pareto: str, plot: str | None,
              timed: bool) -> CompareChoice:
        from .render.plot import check_plot

        if sort is not None:
            if sort not in P.SORT_KEYS:
                raise SpecError.bad("--sort", sort, "allowed: " + ", ".join(P.SORT_KEYS), choices=P.SORT_KEYS)
            if sort == "latency" and not timed:
                raise SpecError.bad("--sort", sort, "nothing is timed with --no-time; allowed here: "
                                    + ", ".join(k for k in P.SORT_KEYS if k != "latency"))
        metrics = P.parse_metrics(pareto)
        if not timed and metrics == ["latency"]:
            raise SpecError.bad("--pareto", pareto, "latency is not measured with --no-time; add another metric")
        return cls(baseline, sort, metrics, check_plot(plot), timed)

    def check_baseline(self, specs: list[str], resolved: list) -> None:
        """``--baseline`` must name one of the specs, as given or by its report name (checked before running);
        ``resolved`` holds each spec's Spec, or the error resolving it raised."""
        if self.baseline is None or self.baseline in specs:
            return
        names: list[str] = []
        seen: dict[str, int] = {}
        for spec in resolved:
            if isinstance(spec, FusionError):
                continue
            name = spec.name
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        if self.baseline not in names:
            raise SpecError.bad("--baseline", self.baseline, "allowed: one of the specs: "
                                + ", ".join(dict.fromkeys([*specs, *names])), choices=[*specs, *names])

    def apply(self, env: Envelope, specs: list[str]) -> Envelope:
        """Set baseline, Pareto front, best values and row order on ``env`` (one entry per spec, in spec order)."""
        entries = env.reports
        if self.baseline is None:
            base = next((r.name for r in entries if isinstance(r, Report)), "")
        else:
            base = next(r.name for text, r in zip(specs, entries) if self.baseline in (text, r.name))
            if isinstance(next(r for r in entries if r.name == base), ErrorEntry):
                env.notes.append(f"baseline '{base}' failed: no ratios")
        env.baseline = base
        metrics, missing = P.available_metrics(entries, self.pareto)
        if missing and any(isinstance(r, Report) for r in entries):
            why = "not timed with --no-time" if not self.timed else "missing in some reports"
            env.notes.append(f"Pareto front over {', '.join(metrics)} ({', '.join(missing)} left out: {why})")
        env.pareto_metrics = metrics
        env.pareto_front = P.pareto_front(entries, metrics) if metrics else []
        note = output_sizes_note(entries)
        if note:
            env.notes.append(note)
        env.best = P.best(entries)
        if self.sort:
            env.reports = P.sort_entries(entries, self.sort)
        return env

    def write_plot(self, env: Envelope) -> None:
        if self.plot is not None:
            from .render.plot import plot_compare

            plot_compare(env, self.plot)
