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
    assert r.cost.flops == 65_536


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
    assert "Cross-check with other counters" in table.stdout and "sigmoid x1" in table.stdout


def test_crosscheck_table_is_whole_at_80_columns():
    import io

    from fusioncli.report import Envelope
    from fusioncli.render.table import render_table

    r = analyze("crossattn", time=False, crosscheck=True)
    out = io.StringIO()
    render_table(Envelope("test", {}, [r]), out, width=80)
    text = out.getvalue()
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    cells = {c.strip() for line in text.splitlines() for c in line.split("│")}
    for tool, v in r.crosscheck.items():
        assert tool in cells and f"{v['value']:,}" in cells and f"{v['ratio']:.3f}" in " ".join(cells)


def test_explain_block_and_costs():
    runner = CliRunner()
    r = runner.invoke(app, ["explain", "multiscale"])
    assert r.exit_code == 0 and "Szegedy" in r.stdout and "kernels" in r.stdout and "1,3,5" in r.stdout
    r = runner.invoke(app, ["explain", "costs"])
    assert r.exit_code == 0 and "softmax" in r.stdout and "bilinear" in r.stdout
    r = runner.invoke(app, ["explain", "nosuch"])
    assert r.exit_code == 2 and "KIND: invalid value 'nosuch'" in r.stderr


def test_crosscheck_torchinfo_notes_name_what_it_misses():
    # crossattn at its defaults: queries 64x16x16 (256 tokens), keys/values 64x8x8 (64 tokens), 8 heads
    r = analyze("crossattn", time=False, crosscheck=True)
    ti = r.crosscheck["torchinfo"]
    # torchinfo: parameters x the output's first dimension (batch 1) for every layer with weights:
    # wq, wk, wv, proj 64*64 each, their biases 64 each (qkv_bias by default), two LayerNorms 2*64 each
    assert ti["value"] == 4 * 64 * 64 + 4 * 64 + 2 * (2 * 64)
    assert "aten.bmm" in ti["skipped_ops"] and "aten.addmm" not in ti["skipped_ops"]
    # q @ k^T and attn @ v: 8 heads x 256 queries x 64 keys x 8 channels each
    bmm = 2 * 8 * 256 * 64 * 8
    assert r.cost.by_op["aten.bmm"]["macs"] == bmm == 2_097_152
    assert f"{bmm:,} MACs of products outside modules with weights (aten.bmm" in ti["notes"][0]
    assert "wq 1/256" in ti["notes"][1] and "wk 1/64" in ti["notes"][1] and "proj 1/256" in ti["notes"][1]
    table = CliRunner().invoke(app, ["inspect", "crossattn", "--no-time", "--crosscheck"])
    assert "torchinfo: 2,097,152 MACs of products" in table.stdout.replace("\n", " ")
    # a conv block has neither note
    assert analyze("concat", time=False, crosscheck=True).crosscheck["torchinfo"]["notes"] == []
