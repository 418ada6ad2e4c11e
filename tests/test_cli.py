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
                                "params": 8_256}


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
