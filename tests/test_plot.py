"""--plot: files written and non-empty, bad file names refused, a clear message without matplotlib."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from fusioncli.cli import app

pytest.importorskip("matplotlib")
runner = CliRunner()
SHAPES = ("--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time")


def run(*args):
    return runner.invoke(app, list(args))


def test_sweep_plot_png_and_svg(tmp_path):
    png, svg = tmp_path / "sweep.png", tmp_path / "sweep.svg"
    r = run("sweep", "add", "concat", *SHAPES, "--vary", "size=4,8,16", "--vary", "batch=1,2", "--plot", str(png),
            "--format", "json")
    assert r.exit_code == 0, r.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    r = run("compare", "add", "concat", *SHAPES, "--plot", str(svg), "--format", "csv")
    assert r.exit_code == 0, r.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "</svg>" in text


def test_compare_plot(tmp_path):
    png = tmp_path / "compare.png"
    r = run("compare", "add", "concat", "gated", *SHAPES, "--plot", str(png))
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_compare_plot_with_a_failing_spec_still_drawn(tmp_path):
    png = tmp_path / "compare.png"
    r = run("compare", "add", "nosuch", "concat", *SHAPES, "--plot", str(png))
    assert r.exit_code == 2
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args,message", [
    (("compare", "add", "concat", *SHAPES, "--plot", "out.gif"), "--plot: invalid value 'out.gif'"),
    (("compare", "add", *SHAPES, "--plot", "no/such/dir/x.png"), "does not exist"),
    (("sweep", "concat", *SHAPES, "--vary", "norm=bn,none", "--plot", "x.png"), "needs a numeric --vary"),
])
def test_plot_refusals(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(*args)
    assert r.exit_code == 2 and message in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    r = run("compare", "add", "concat", *SHAPES, "--plot", str(tmp_path / "x.png"))
    assert r.exit_code == 1
    assert r.stderr.strip() == ("fusion: error: --plot: matplotlib is not installed; install the extra with "
                                "pip install 'fusioncli[plot]'")
    assert r.stdout == ""  # refused before any work


def _drawn(monkeypatch, *args):
    """The figure a command draws (instead of its file)."""
    from fusioncli.render import plot

    figs = []
    monkeypatch.setattr(plot, "_save", lambda fig, path: figs.append(fig))
    r = run(*args)
    assert r.exit_code == 0, r.stderr
    (fig,) = figs
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def test_compare_plot_names_do_not_overlap(monkeypatch, tmp_path):
    """se and cbam, concat and gated sit on nearly the same point: their names are drawn apart."""
    fig = _drawn(monkeypatch, "compare", "add", "concat", "gated", "se", "cbam", "aff", "iaff", "--in", "64x32x32",
                 "--in", "64x32x32", "--out", "64", "--no-time", "--plot", str(tmp_path / "c.png"))
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}  # the text, not its leader
    assert set(boxes) == {"add", "concat", "gated", "se", "cbam", "aff", "iaff"}
    names = sorted(boxes)
    overlaps = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if boxes[a].overlaps(boxes[b])]
    assert overlaps == []


def test_sweep_plot_lines_of_equal_values_stay_visible(monkeypatch, tmp_path):
    """concat and gated have the same parameters at every size: each spec has its own marker, and each later
    one is drawn thinner with a smaller marker, so the line underneath shows around it."""
    fig = _drawn(monkeypatch, "sweep", "concat", "gated", "--in", "8x4x4", "--in", "8x4x4", "--out", "8",
                 "--vary", "size=4,8", "--no-time", "--plot", str(tmp_path / "s.png"))
    ax = fig.axes[0]  # params
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    assert [list(ln.get_ydata()) for ln in lines][0] == [list(ln.get_ydata()) for ln in lines][1]  # same values
    a, b = lines
    assert a.get_marker() != b.get_marker()
    assert a.get_linewidth() > b.get_linewidth() and a.get_markersize() > b.get_markersize()
