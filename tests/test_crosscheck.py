"""--crosscheck: each other counter's figure, in its own unit, and the ops it skipped."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fusioncli.analysis import analyze
from fusioncli.cli import app


def test_crosscheck_concat_figures():
    r = analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False, crosscheck=True)
    c = r.crosscheck
    assert c["fvcore"]["value"] == 8_388_608 and c["fvcore"]["ratio"] == 1.0  # MACs, fvcore calls them flops
    assert c["torch_flop_counter"]["value"] == 2 * 8_388_608  # no bias add
    assert c["torch_flop_counter"]["ratio"] == 2 * 8_388_608 / 16_842_752
    assert c["torchinfo"]["value"] == 8_388_608 + 64 * 32 * 32  # torchinfo counts the bias as MACs


def test_crosscheck_add_shows_what_others_skip():
    r = analyze("add", inputs=["64x32x32", "64x32x32"], out=64, time=False, crosscheck=True)
    c = r.crosscheck
    assert c["fvcore"]["value"] == 0 and c["fvcore"]["skipped_ops"] == {"aten::add": 1}
    assert c["torch_flop_counter"]["value"] == 0 and c["torch_flop_counter"]["skipped_ops"] == ["aten.add"]
    assert r.cost["flops"] == 65_536


def test_crosscheck_cli_json_and_table():
    runner = CliRunner()
    out = runner.invoke(app, ["inspect", "gated", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time",
                              "--crosscheck", "--json"])
    rep = json.loads(out.stdout)["reports"][0]
    assert set(rep["crosscheck"]) == {"fvcore", "torch_flop_counter", "torchinfo"}
    assert rep["crosscheck"]["fvcore"]["skipped_ops"]["aten::sigmoid"] == 1
    plain = runner.invoke(app, ["inspect", "gated", "--no-time", "--json"])
    assert "crosscheck" not in json.loads(plain.stdout)["reports"][0]
    table = runner.invoke(app, ["inspect", "gated", "--no-time", "--crosscheck"])
    assert "Cross-check with other counters" in table.stdout and "aten::sigmoid x1" in table.stdout


def test_explain_block_and_costs():
    runner = CliRunner()
    r = runner.invoke(app, ["explain", "multiscale"])
    assert r.exit_code == 0 and "Szegedy" in r.stdout and "kernels" in r.stdout and "1,3,5" in r.stdout
    r = runner.invoke(app, ["explain", "costs"])
    assert r.exit_code == 0 and "softmax" in r.stdout and "bilinear" in r.stdout
    r = runner.invoke(app, ["explain", "nosuch"])
    assert r.exit_code == 2 and "KIND: invalid value 'nosuch'" in r.stderr
