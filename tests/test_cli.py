"""The command line, driven through typer's CliRunner: exit codes, JSON, tables, bad input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fusioncli.cli import app
from fusioncli.spec import bundled_presets

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def run_json(*args):
    r = run(*args, "--format", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_worked_example_json():
    d = run_json("inspect", "concat", "--in", "64x32x32", "--in", "64x32x32", "--out", "64", "--no-time")
    assert d["schema_version"] == 1
    assert d["tool"]["name"] == "fusioncli"
    assert set(d["environment"]) >= {"torch", "device", "dtype", "threads"}
    (rep,) = d["reports"]
    assert rep["outputs"] == [[1, 64, 32, 32]]
    assert rep["inputs"] == [[1, 64, 32, 32], [1, 64, 32, 32]]
    assert rep["params"] == {"total": 8_256, "trainable": 8_256}
    assert rep["cost"]["macs"] == 8_388_608
    assert rep["cost"]["flops"] == 16_842_752
    assert rep["cost"]["convention"].startswith("fusion-v1")
    assert rep["timing"] is None
    assert rep["layers"][0] == {"name": "conv", "type": "Conv2d", "depth": 1, "output_shape": [1, 64, 32, 32],
                                "params": 8_256, "calls": 1}


def test_json_short_flag_and_batch():
    r = run("inspect", "add", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--batch", "3", "--no-time", "--json")
    rep = json.loads(r.stdout)["reports"][0]
    assert rep["outputs"] == [[3, 8, 4, 4]]
    assert rep["cost"]["flops"] == 3 * 8 * 4 * 4


def test_inspect_table_names_units():
    r = run("inspect", "concat", "--in", "16x8x8", "--in", "16x8x8", "--out", "16", "--no-time")
    assert r.exit_code == 0
    for text in ("MACs (multiply-accumulates)", "FLOPs", "parameters (count)", "Layers", "conv", "Conv2d",
                 "Counting convention: fusion-v1", "32,768"):  # 32*16*8*8 MACs
        assert text in r.stdout, text


def test_inspect_with_timing_reports_statistics():
    d = run_json("inspect", "add", "--in", "8x8x8", "--in", "8x8x8", "--out", "8", "--min-time", "0.05",
                 "--threads", "1")
    t = d["reports"][0]["timing"]
    assert t["runs"] >= 5 and t["calls"] >= t["runs"]
    assert t["min_ms"] <= t["median_ms"] and t["iqr_ms"] >= 0 and t["threads"] == 1
    assert d["environment"]["threads"] == 1


def test_set_options_and_preset_overrides():
    d = run_json("inspect", "unet-skip-concat", "--in", "8x8x8", "--in", "8x8x8", "--out", "4", "--set", "act=none",
                 "--no-time")
    rep = d["reports"][0]
    assert rep["options"]["norm"] == "bn" and rep["options"]["act"] == "none"
    assert rep["params"]["total"] == 16 * 4 + 2 * 4  # conv without bias (norm=bn) + BN weight and bias
    assert rep["outputs"] == [[1, 4, 8, 8]]


def test_compare_ratios_to_first():
    d = run_json("compare", "add", "concat", "--in", "64x32x32", "--in", "64x32x32", "--out", "64", "--no-time")
    assert d["baseline"] == "add"
    add, concat = d["reports"]
    assert [add["name"], concat["name"]] == ["add", "concat"]
    assert concat["ratios"]["flops"] == pytest.approx(16_842_752 / 65_536)
    assert add["ratios"]["flops"] == 1.0
    assert concat["ratios"]["params"] is None  # baseline has 0 parameters
    assert concat["ratios"]["latency_ms"] is None


def test_compare_table_and_failing_spec_keeps_others():
    r = run("compare", "concat", "nosuchblock", "add", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time")
    assert r.exit_code == 2
    assert "concat" in r.stdout and "add" in r.stdout and "error" in r.stdout
    assert "nosuchblock" in r.stderr and "Traceback" not in r.stderr


def test_compare_same_kind_twice_gets_unique_names():
    d = run_json("compare", "gated", "gated", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time")
    assert [r["name"] for r in d["reports"]] == ["gated", "gated#2"]


def test_csv_and_markdown():
    args = ("compare", "add", "concat", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time")
    r = run(*args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["name"] for row in rows] == ["add", "concat"]
    assert rows[1]["MACs (count)"] == str(16 * 8 * 16)
    assert rows[1]["FLOPs (x baseline)"] != ""
    r = run(*args, "--format", "markdown")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| name | block |") and "MACs (count)" in lines[0]
    assert lines[2].startswith("| add | add |")


def test_blocks_and_presets_listings():
    r = run("blocks", "--json")
    kinds = [b["kind"] for b in json.loads(r.stdout)["blocks"]]
    assert kinds[:4] == ["concat", "add", "gated", "multiscale"]
    assert "Fusion blocks" in run("blocks").stdout
    r = run("presets", "--json")
    names = [p["name"] for p in json.loads(r.stdout)["presets"]]
    assert names == sorted(bundled_presets())
    assert "unet-skip-concat" in run("presets").stdout


@pytest.mark.parametrize("name", sorted(bundled_presets()))
def test_every_bundled_preset_inspects(name):
    d = run_json("inspect", name, "--no-time")
    rep = d["reports"][0]
    assert rep["params"]["total"] >= 0 and rep["cost"]["flops"] > 0
    assert rep["cost"]["uncounted_ops"] == {}


def test_preset_file_path(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('block = "add"\ninputs = ["4x2x2", "4x2x2"]\nout = 4\n')
    d = run_json("inspect", str(p), "--no-time")
    assert d["reports"][0]["name"] == "mine" and d["reports"][0]["cost"]["flops"] == 16


# bad input, one case per field and value: tests/test_hardening.py


def test_bad_input_json_error_object():
    r = run("inspect", "concta", "--json")
    assert r.exit_code == 2
    err = json.loads(r.stdout)
    assert err["schema_version"] == 1 and err["error"]["type"] == "spec_error"


def test_bad_preset_files(tmp_path):
    cases = {
        "syntax.toml": ("block = \n", "TOML syntax error"),
        "unknown.toml": ('block = "add"\nouts = 4\n', "did you mean 'out'"),
        "type.toml": ('block = "add"\nout = "four"\n', "out: invalid value 'four'"),
        "noblock.toml": ("out = 4\n", "'block' is missing"),
        "badopt.toml": ('block = "concat"\n[options]\nnorm = 3\n', "options norm"),
    }
    for name, (text, message) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        r = run("inspect", str(p), "--no-time")
        assert r.exit_code == 2, name
        assert message in r.stderr, (name, r.stderr)


def test_python_dash_m_and_listing_does_not_import_torch():
    out = subprocess.run([sys.executable, "-m", "fusioncli", "blocks", "--json"], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout)["blocks"][0]["kind"] == "concat"
    code = ("import sys; from typer.testing import CliRunner; from fusioncli.cli import app; "
            "r = CliRunner().invoke(app, ['presets']); assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(app, ['blocks']); CliRunner().invoke(app, ['--help']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_listings_honour_csv_and_markdown():
    import csv as csv_module
    import io

    from fusioncli.registry import list_fusions, list_necks

    r = run("blocks", "--format", "csv")
    rows = list(csv_module.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["kind", "what it computes", "source", "default inputs -> out"]
    assert [row[0] for row in rows[1:]] == [*list_fusions(), *list_necks()]
    r = run("presets", "--format", "markdown")
    lines = r.stdout.splitlines()
    assert lines[0] == "| name | block | inputs | out | from |" and len(lines) == 2 + len(bundled_presets())


def test_warnings_print_through_the_live_console_and_the_spinner_needs_a_terminal():
    import io

    from rich.console import Console

    from fusioncli.cli import feedback
    from fusioncli.cli.state import state

    live = Console(file=io.StringIO(), width=200)
    state.live, quiet = live, state.quiet
    state.quiet = False
    try:
        feedback.warn("above the bar")
    finally:
        state.live, state.quiet = None, quiet
    assert "fusion: warning: above the bar" in live.file.getvalue()
    with feedback.activity("counting x"):  # stderr is not a terminal here: no spinner, nothing set
        assert state.live is None


def test_an_optional_option_has_one_word_in_inspect_and_explain():
    """concat's bias is ``bool | None``: None (the automatic choice) reads 'none' in inspect's options line,
    in explain's default column and in what --set takes; booleans and tuples as --set takes them."""
    from cli_helpers import run_main

    code, out, _ = run_main("inspect", "concat", "--no-time")
    line = " ".join(out.split())
    assert code == 0 and "bias=none" in line and "align_corners=false" in line and "None" not in line
    code, out, _ = run_main("explain", "concat")
    assert code == 0 and any(row.split("│")[1:4] and row.split("│")[1].strip() == "bias"
                             and row.split("│")[3].strip() == "none" for row in out.splitlines() if "│" in row)
    code, out, _ = run_main("inspect", "concat", "--no-time", "--set", "bias=none")
    assert code == 0 and "bias=none" in " ".join(out.split())
    code, out, _ = run_main("inspect", "multiscale", "--no-time", "--set", "kernels=3,5")
    assert code == 0 and "kernels=3,5, strides=1," in " ".join(out.split())


def _inspect_text(report, width=80):
    import io

    from fusioncli.report import Envelope
    from fusioncli.render.table import render_table

    out = io.StringIO()
    render_table(Envelope("test", {}, [report]), out, width=width, by_op=True, by_module=True)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_inspect_tables_are_whole_at_80_columns(width):
    """Every layer name, node id, node kind and figure whole (no cut cell, no line past the width), for every
    block and neck kind with --by-op and --by-module, as a pipe gets them at 80 columns."""
    from fusioncli import analyze, list_fusions, registry
    from fusioncli.render.table import si

    for kind in [*list_fusions(), *registry.list_necks()]:
        r = analyze(kind, time=False)
        text = _inspect_text(r, width)
        lines = text.splitlines()
        assert "…" not in text and max(map(len, lines)) <= width, kind
        cells = {c.strip() for line in lines for c in line.split("│")}
        for layer in r.layers:  # each under its parent, by its own name
            assert any(c == layer.name.rsplit(".", 1)[-1] or c.startswith(layer.name.rsplit(".", 1)[-1] + " (")
                       for c in cells), (kind, layer.name)
        for n in r.nodes or ():
            assert {("* " if n.merge else "") + n.id, n.kind, si(n.params)} <= cells, (kind, n.id)
        assert f"{r.params['total']:,}" in cells and f"{r.cost.flops:,}" in cells


def test_inspect_timed_neck_table_is_whole_at_80_columns():
    from fusioncli import analyze

    r = analyze("neck:fpn", inputs=["8x16x16", "16x8x8", "32x4x4"], out=8, time=True, min_time=0.01, threads=1)
    text = _inspect_text(r)
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "time %" in text and "[forward, 1 thread]" in " ".join(text.split())
    cells = {c.strip() for line in text.splitlines() for c in line.split("│")}
    assert {f"{n.latency_ms:.3f}" for n in r.nodes} <= cells


def test_layer_table_is_a_tree_with_one_row_per_module():
    """crossattn's LayerNorm is shared by both token sets: one row, called twice, under a token header;
    a neck's nodes live in a ModuleDict that never runs itself: it is the parent row of every node,
    with no output shape and all the neck's parameters."""
    from fusioncli import analyze

    r = analyze("crossattn", time=False)
    assert [(l.name, l.calls, l.output_shape) for l in r.layers if l.name == "norm"] == [("norm", 2, [1, 256, 64])]
    text = _inspect_text(r)
    assert "norm (2 calls)" in text and "output (BxNxC)" in text and "BxCxHxW" not in text
    assert "output (BxCxHxW)" in _inspect_text(analyze("aff", time=False))
    assert "output (BxCxDxHxW)" in _inspect_text(analyze("examples/volume_fusion.py:volume_fusion",
                                                         inputs=["8x4x8x8", "8x4x8x8"], out=8, time=False))
    import torch

    conv1d = analyze(torch.nn.Sequential(torch.nn.Conv1d(8, 8, 3, padding=1), torch.nn.ReLU()), inputs=["8x32"],
                     time=False)  # channels-first 1-D maps: not tokens
    assert "output (batch first)" in _inspect_text(conv1d)
    r = analyze("neck:bifpn", inputs=["8x16x16", "16x8x8", "32x4x4"], out=8, time=False, depth=2)
    assert (r.layers[0].name, r.layers[0].type, r.layers[0].output_shape, r.layers[0].calls) == \
        ("nodes", "ModuleDict", [], 0)
    assert r.layers[0].params == r.params["total"]
    assert all(l.depth == 2 and l.name.startswith("nodes.") for l in r.layers[1:])
    rows = [line.split("│")[1] for line in _inspect_text(r).splitlines() if line.startswith("│")]
    assert rows[0].strip() == "nodes" and rows[1].startswith("   extra_P6")  # one indent under its parent


@pytest.mark.parametrize("args", [["blocks"], ["presets"], ["explain", "aff"], ["explain", "neck:bifpn"],
                                  ["explain", "backbones"]])
def test_listings_are_whole_at_80_columns(args, monkeypatch):
    """Every kind, preset and option name whole and no cell cut (long words fold instead) at 80 columns."""
    from cli_helpers import run_main
    from fusioncli import registry
    from fusioncli.spec import bundled_presets

    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_main(*args)
    lines = out.splitlines()
    assert code == 0 and "…" not in out and max(map(len, lines)) <= 80
    cells = {c.strip() for line in lines for c in line.split("│")}
    if args == ["blocks"]:
        assert set(registry.kinds()) <= cells
    if args == ["presets"]:
        assert set(bundled_presets()) <= cells
    if args[0] == "explain" and args[1] in registry.kinds():
        assert set(registry.block_options(args[1])) <= cells


def test_explain_reflows_prose_and_keeps_formulas():
    """Docstring paragraphs and list items become one line each for the console to wrap at its width;
    indented formulas and space-aligned lines stay as written."""
    from fusioncli.sourcedoc import reflow

    text = ("Prose that was\nwrapped at 90.\n\n    Z = M * X + (1 - M) * Y\n    out = conv(Z)\n\n"
            "AFF:   Z = a\niAFF:  Z = b\n\n- one item\n  continued\n- two\n\n1. first\n   more\n2. second")
    assert reflow(text) == ("Prose that was wrapped at 90.\n\n    Z = M * X + (1 - M) * Y\n    out = conv(Z)\n\n"
                            "AFF:   Z = a\niAFF:  Z = b\n\n- one item continued\n- two\n\n1. first more\n2. second")
