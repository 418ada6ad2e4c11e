"""Pictures: a sweep's metrics against the swept variable (log-log), a comparison's cost-latency scatter.

matplotlib is an optional extra (``pip install 'fusioncli[plot]'``), imported only here and
only when a plot is asked for. Figures are drawn with matplotlib's object API on the Agg
canvas (no GUI, no global pyplot state); the format follows the file's extension.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import RunError, SpecError
from ..pareto import METRICS, front, value
from ..report import Envelope, Report
from ..sweep import numeric

FORMATS = (".png", ".svg", ".pdf")
STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")  # one per spec: equal values stay visible
VARIABLE_LABELS = {
    "size": "size: height of the first input (px)",
    "channels": "channels: width of the first input (count)",
    "batch": "batch size (count)",
    "out": "output channels (count)",
}


def _config_dir() -> None:
    """matplotlib writes a font cache under ``MPLCONFIGDIR`` (default ``~/.config/matplotlib``) and warns
    on stderr when it cannot; with a read-only or missing HOME, use a private temporary folder."""
    import os
    import tempfile

    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="fusion-mpl-")


def check_plot(path: str | None) -> Path | None:
    """Validate ``--plot FILE`` before any work: extension, folder, and matplotlib installed."""
    if path is None:
        return None
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise SpecError.bad("--plot", path, "expected a file name ending in " + ", ".join(FORMATS))
    if not p.parent.is_dir():
        raise SpecError.bad("--plot", path, f"folder '{p.parent}' does not exist")
    _config_dir()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RunError("--plot: matplotlib is not installed; install the extra with pip install 'fusioncli[plot]'",
                       field="--plot") from None
    return p


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kw)


def _save(fig, path: Path) -> None:
    try:
        if path.suffix.lower() == ".png":
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(fig)
            fig.savefig(path, dpi=150)
        else:
            fig.savefig(path)
    except OSError as e:
        raise RunError(f"--plot: cannot write {str(path)!r}: {e.strerror or e}", field="--plot") from None


def _scale(ax, axis: str, values) -> None:
    """Log scale; symlog (linear around 0) when a value is 0."""
    pos = [v for v in values if v is not None and v > 0]
    if values and len(pos) == len(values):
        getattr(ax, f"set_{axis}scale")("log")
    elif pos:
        getattr(ax, f"set_{axis}scale")("symlog", **{"linthresh": min(pos)})


def plot_variable(vary: dict) -> str:
    """The swept variable on the x axis: the first numeric --vary with two values or more."""
    for name, vals in vary.items():
        if numeric(vals) and len(vals) >= 2:
            return name
    raise SpecError.bad("--plot", "sweep", "a sweep plot needs a numeric --vary with at least two values "
                        "(size, channels, batch, out or a numeric option)")


def plot_sweep(env: Envelope, path: Path) -> None:
    """One panel per metric against the swept variable, log-log, one line per spec (and per other values)."""
    sweep = env.sweep or {}
    vary = sweep.get("vary", {})
    var = plot_variable(vary)
    others = [o for o in vary if o != var]
    reports = [r for r in env.reports if isinstance(r, Report) and r.sweep]
    if not reports:
        raise RunError("--plot: nothing to draw, every grid point failed", field="--plot")
    metrics = [m for m in METRICS if any((value(r, m) or 0) > 0 for r in reports)]
    slopes = {(e["spec"], e["metric"]): e["exponent"] for e in sweep.get("exponents", []) if e["variable"] == var}
    labels = _spec_labels(reports)

    specs = list(dict.fromkeys(r.sweep["spec"] for r in reports))
    combos = list(dict.fromkeys(tuple(r.sweep["values"].get(o) for o in others) for r in reports))
    color = {s: f"C{i % 10}" for i, s in enumerate(specs)}  # one colour per spec, the same in every panel
    style = {c: STYLES[i % len(STYLES)] for i, c in enumerate(combos)}  # one line style per value of the others
    # specs with equal values draw one line over another: each later spec thinner, with a smaller hollow
    # marker of its own shape, so every one shows (the widest at the bottom)
    n = len(specs)
    width = {s: 1.2 + 2.4 * (n - 1 - i) / max(1, n - 1) for i, s in enumerate(specs)}
    marker = {s: (MARKERS[i % len(MARKERS)], 4 + 6 * (n - 1 - i) / max(1, n - 1)) for i, s in enumerate(specs)}

    ncols = min(3, max(1, len(metrics)))
    nrows = max(1, math.ceil((len(metrics) + bool(others and len(metrics) % ncols == 0)) / ncols))
    fig = _figure(figsize=(5.2 * ncols, 4.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    xunit = VARIABLE_LABELS.get(var, f"{var} (option value)")
    for ax, m in zip(axes, metrics):
        for spec in specs:
            rs = [r for r in reports if r.sweep["spec"] == spec]
            if all(value(r, m) == 0 for r in rs):
                ax.plot([], [], " ", label=f"{labels[spec]}: 0 at every point")
                continue
            k = slopes.get((spec, m))
            label = labels[spec] + ("" if k is None else rf"  ($\propto$ {var}$^{{{k:.2f}}}$)")
            for combo in combos:
                pts = sorted((r.sweep["values"][var], value(r, m)) for r in rs
                             if tuple(r.sweep["values"].get(o) for o in others) == combo)
                pts = [(x, y) for x, y in pts if y is not None and y > 0]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color[spec], linestyle=style[combo],
                            linewidth=width[spec], marker=marker[spec][0], markersize=marker[spec][1],
                            markerfacecolor="none", markeredgewidth=1.2, label=label)
                    label = "_"  # one legend entry per spec
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted(vary[var]), [str(v) for v in sorted(vary[var])])
        ax.minorticks_off()
        ax.set_xlabel(xunit)
        ax.set_ylabel(METRICS[m].label)
        ax.set_title(METRICS[m].short if m != "memory" else "peak activations")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    if others:  # the key to the line styles, in the first free panel
        key = axes[len(metrics)]
        for combo in combos:
            key.plot([], [], color="0.3", linestyle=style[combo],
                     label=", ".join(f"{o}={v}" for o, v in zip(others, combo)))
        key.legend(loc="center", title="line style", fontsize=9)
    fig.suptitle(f"Scaling with {var} (log-log; exponent = least-squares slope)", fontsize=11)
    _save(fig, path)


def _spec_labels(reports: list[Report]) -> dict[str, str]:
    """Spec as given -> the name of its reports (falls back to the spec text)."""
    labels: dict[str, str] = {}
    for r in reports:
        labels.setdefault(r.sweep["spec"], r.name)
    return labels


def _labels(ax, pts: dict, fontsize: float = 7) -> None:
    """Name each point without two names on one another: from the top right down, a name that would
    overlap one already placed moves down a line at a time (a thin leader to its point once moved)."""
    fig = ax.figure
    to_pt = 72 / fig.dpi
    ax.autoscale_view()
    pos = {n: ax.transData.transform(xy) * to_pt for n, xy in pts.items()}  # in points
    line, char = 1.5 * fontsize, 0.65 * fontsize  # a text line with its descenders; a wide character
    placed: list[tuple[float, float, float, float]] = []
    for n in sorted(pts, key=lambda n: (-pos[n][1], pos[n][0])):
        x0, y0 = pos[n]
        dy = 4.0
        while True:
            box = (x0 + 5, y0 + dy, x0 + 5 + char * len(n), y0 + dy + line)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
            dy -= line
        placed.append(box)
        moved = dy < 0
        ax.annotate(n, pts[n], textcoords="offset points", xytext=(5, dy), fontsize=fontsize,
                    arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.5, shrinkA=0, shrinkB=3) if moved
                    else None)


def plot_compare(env: Envelope, path: Path) -> None:
    """FLOPs against latency (or, untimed, FLOPs against params), each design a point, the front drawn."""
    reports = [r for r in env.reports if isinstance(r, Report)]
    if not reports:
        raise RunError("--plot: nothing to draw, every spec failed", field="--plot")
    timed = bool(reports) and all(r.latency_ms is not None for r in reports)
    xm, ym = ("flops", "latency") if timed else ("flops", "params")
    pts = {r.name: (value(r, xm), value(r, ym)) for r in reports}
    plane = front(pts)
    on_front = set(env.pareto_front)
    roofs = [r for r in reports if r.roofline is not None]
    fig = _figure(figsize=(14, 5.5) if roofs else (7.5, 5.5))
    ax = fig.add_subplot(1, 2 if roofs else 1, 1)
    if roofs:
        plot_roofline(fig.add_subplot(1, 2, 2), roofs)
    for group, style in ((False, dict(color="0.55", marker="o", s=30)), (True, dict(color="tab:red", marker="*", s=110))):
        names = [n for n in pts if (n in on_front) is group]
        if not names:
            continue
        metrics = ", ".join(METRICS[m].short for m in (env.pareto_metrics or []))
        label = f"on the Pareto front ({metrics})" if group else "dominated"
        ax.scatter([pts[n][0] for n in names], [pts[n][1] for n in names], label=label, zorder=3, **style)
    stair = sorted(pts[n] for n in plane)
    if len(stair) >= 2:
        ax.step([p[0] for p in stair], [p[1] for p in stair], where="post", linestyle="--", color="tab:red",
                alpha=0.6, label=f"Pareto front of {METRICS[xm].short} and {METRICS[ym].short}")
    _scale(ax, "x", [p[0] for p in pts.values()])
    _scale(ax, "y", [p[1] for p in pts.values()])
    _labels(ax, pts)
    ax.set_xlabel(METRICS[xm].label + " (log)")
    ax.set_ylabel(METRICS[ym].label + " (log)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    what = "Latency" if timed else "Parameters (not timed: --no-time)"
    first = reports[0] if reports else None
    shapes = f", batch {first.inputs[0][0]}" if first else ""
    ax.set_title(f"{what} against FLOPs{shapes}; lower-left is better", fontsize=10)
    _save(fig, path)


def plot_roofline(ax, reports: list[Report]) -> None:
    """This machine's roofline (``fusion machine``): the memory roof (intensity x bandwidth) up to the
    ridge, the compute roof beyond it, and each timed design at (FLOP/byte, achieved GFLOP/s)."""
    import math

    rl = reports[0].roofline
    peak, bw = rl.peak_gflops, rl.bandwidth_gbs
    xs = [r.roofline.intensity for r in reports]
    lo = 10 ** math.floor(math.log10(max(min(xs + [peak / bw]) / 4, 1e-6)))
    hi = 10 ** math.ceil(math.log10(max(xs + [peak / bw]) * 4))
    ridge = peak / bw
    ax.plot([lo, ridge, hi], [lo * bw, peak, peak], color="black", linewidth=1.5,
            label=f"roof: {bw:,.1f} GB/s, {peak:,.1f} GFLOP/s (ridge {ridge:.2f} FLOP/B)")
    ax.axvline(ridge, color="0.7", linestyle=":", linewidth=1)
    colors = {"memory": "tab:blue", "compute": "tab:orange"}
    for bound in ("memory", "compute"):
        group = [r for r in reports if r.roofline.bound == bound]
        if group:
            ax.scatter([r.roofline.intensity for r in group], [r.roofline.achieved_gflops for r in group], zorder=3,
                       s=40, color=colors[bound], label=f"{bound}-bound design (achieved)")
    for r in reports:
        pct = "-" if r.roofline.fraction is None else f"{100 * r.roofline.fraction:.0f}%"
        ax.annotate(f"{r.name} {pct}", (r.roofline.intensity, r.roofline.achieved_gflops), textcoords="offset points",
                    xytext=(5, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved, log)")
    ax.set_ylabel("GFLOP/s (log)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Roofline of this machine: % = achieved / attainable", fontsize=10)


__all__ = ["check_plot", "plot_sweep", "plot_compare", "plot_roofline", "plot_variable"]
