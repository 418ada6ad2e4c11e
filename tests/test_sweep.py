"""Sweeps: grid, shards, point overrides, fitted exponents on blocks whose laws are known, merge, formats."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from typer.testing import CliRunner

from fusioncli import sweep as S
from fusioncli.cli import app
from fusioncli.errors import SpecError
from fusioncli.spec import Spec

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def run_json(*args, code=0):
    r = run(*args, "--format", "json")
    assert r.exit_code == code, r.stderr
    return json.loads(r.stdout)


def exps(d, spec, variable):
    return {e["metric"]: e["exponent"] for e in d["sweep"]["exponents"]
            if e["spec"] == spec and e["variable"] == variable}


# --------------------------------------------------------------------------- the pieces


def test_parse_vary():
    v = S.parse_vary(["size=16,32", "norm=bn,gn", "kernels=1,3;1,3,5", "r=4,8"])
    assert v == {"size": [16, 32], "norm": ["bn", "gn"], "kernels": ["1,3", "1,3,5"], "r": [4, 8]}
    for bad, message in (("size=16,x", "positive integers"), ("size", "NAME=V1,V2"), ("size=", "NAME=V1,V2"),
                         ("batch=0,1", "positive integers"), ("size=8,8", "each value at most once")):
        with pytest.raises(SpecError, match=message):
            S.parse_vary([bad])
    with pytest.raises(SpecError, match="varied twice"):
        S.parse_vary(["size=8", "size=16"])


def test_grid_order():
    pts = S.grid(["a", "b"], {"size": [8, 16], "batch": [1, 2, 3]})
    assert len(pts) == 12 and [p.index for p in pts] == list(range(12))
    assert [(p.spec, p.values["size"], p.values["batch"]) for p in pts[:4]] == [
        ("a", 8, 1), ("a", 8, 2), ("a", 8, 3), ("a", 16, 1)]
    assert pts[6].spec == "b" and pts[6].values == {"size": 8, "batch": 1}


@pytest.mark.parametrize("total_specs,sizes,shards", [(1, 1, 1), (1, 5, 2), (2, 7, 3), (3, 4, 5), (2, 3, 13)])
def test_shards_cover_the_grid_exactly_once(total_specs, sizes, shards):
    grid = S.grid([f"s{i}" for i in range(total_specs)], {"size": list(range(1, sizes + 1)), "batch": [1, 2]})
    seen = [p.index for i in range(1, shards + 1) for p in S.shard(grid, (i, shards))]
    assert sorted(seen) == list(range(len(grid)))  # every point, none twice
    sizes_of = [len(S.shard(grid, (i, shards))) for i in range(1, shards + 1)]
    assert max(sizes_of) - min(sizes_of) <= 1  # balanced


def test_parse_shard():
    assert S.parse_shard("2/4") == (2, 4) and S.parse_shard(None) is None
    for bad in ("0/4", "5/4", "1", "a/b", "1/0"):
        with pytest.raises(SpecError, match="--shard"):
            S.parse_shard(bad)


def test_apply_point_keeps_ratios():
    base = Spec("x", "concat", [(64, 56, 56), (128, 28, 14)], out=32, batch=2)
    assert S.apply_point(base, {"size": 112}) == {"inputs": ["64x112x112", "128x56x28"]}
    assert S.apply_point(base, {"channels": 16, "batch": 4}) == {"inputs": ["16x56x56", "32x28x14"], "out": 8,
                                                                  "batch": 4}
    assert S.apply_point(base, {"size": 7})["inputs"] == ["64x7x7", "128x4x2"]  # 3.5 -> 4, 1.75 -> 2
    assert S.apply_point(base, {"out": 5, "norm": "bn", "r": 4}) == {"out": 5, "options": {"norm": "bn", "r": "4"}}


def test_fit_slope_exact_laws():
    k, r2, n = S.fit_slope([[(x, 3 * x**2.5) for x in (2, 4, 8, 16)]])
    assert k == pytest.approx(2.5, abs=1e-12) and r2 == pytest.approx(1.0) and n == 4
    # two groups with different intercepts, one common slope: the pooled fit recovers it exactly
    k, _, n = S.fit_slope([[(x, 7 * x**3) for x in (1, 2, 4)], [(x, 1e6 * x**3) for x in (8, 16)]])
    assert k == pytest.approx(3.0, abs=1e-12) and n == 5
    assert S.fit_slope([[(2, 0), (4, 0)]]) is None  # no positive value: no fit
    assert S.fit_slope([[(2, 5), (4, 5)]])[0] == 0.0


def test_exponent_text():
    assert S.exponent_text({"metric": "macs", "variable": "size", "exponent": 1.9999999}) == "MACs ∝ size^2.00"
    assert S.exponent_text({"metric": "params", "variable": "size", "exponent": -1e-9}) == "params ∝ size^0.00"


# --------------------------------------------------------------------------- known laws, through the command


def test_concat_macs_exactly_quadratic_in_size_linear_in_batch():
    d = run_json("sweep", "concat", "--in", "8x8x8", "--in", "8x8x8", "--out", "8", "--vary", "size=4,8,16",
                 "--vary", "batch=1,3", "--no-time")
    reports = d["reports"]
    assert len(reports) == 6 and d["sweep"]["points"] == 6 and d["sweep"]["shard"] is None
    # MACs = B * H * W * 16 * 8 exactly (1x1 conv from 16 to 8 channels, bias excluded)
    for r in reports:
        b, s = r["sweep"]["values"]["batch"], r["sweep"]["values"]["size"]
        assert r["cost"]["macs"] == b * s * s * 16 * 8 and r["inputs"] == [[b, 8, s, s]] * 2
    size, batch = exps(d, "concat", "size"), exps(d, "concat", "batch")
    assert size["macs"] == pytest.approx(2.0, abs=1e-9) and batch["macs"] == pytest.approx(1.0, abs=1e-9)
    assert size["params"] == 0.0 and batch["params"] == 0.0
    assert "latency" not in size  # not timed: no latency exponent


def test_crossattn_flops_grow_as_size_to_the_fourth():
    d = run_json("sweep", "crossattn", "--vary", "size=64,128,256", "--no-time")
    # FLOPs = a*s^4 (the two N1 x N2 products) + b*s^2 (projections): the slope tends to 4 from below
    k = exps(d, "crossattn", "size")["flops"]
    assert 3.9 < k < 4.0
    f = [r["cost"]["flops"] for r in d["reports"]]
    assert math.log2(f[2] / f[1]) > 3.95


def test_channels_scale_all_widths_and_out():
    d = run_json("sweep", "add", "--in", "8x4x4", "--in", "16x2x2", "--out", "8", "--vary", "channels=4,16",
                 "--no-time")
    assert [r["inputs"] for r in d["reports"]] == [[[1, 4, 4, 4], [1, 8, 2, 2]], [[1, 16, 4, 4], [1, 32, 2, 2]]]
    assert [r["outputs"] for r in d["reports"]] == [[[1, 4, 4, 4]], [[1, 16, 4, 4]]]


def test_option_sweep_without_numeric_variable_has_no_exponents():
    d = run_json("sweep", "concat", "--in", "8x4x4", "--in", "8x4x4", "--vary", "norm=none,bn", "--no-time")
    assert [r["options"]["norm"] for r in d["reports"]] == ["none", "bn"]
    assert d["sweep"]["exponents"] == []


# --------------------------------------------------------------------------- failures keep the others


def test_failing_spec_and_failing_point_keep_the_others():
    # nosuch fails everywhere; crossattn at channels=12 gets out=12, not divisible by its 8 heads
    r = run("sweep", "crossattn", "nosuch", "--in", "16x4x4", "--in", "16x2x2", "--out", "16",
            "--vary", "channels=8,12,16", "--no-time", "--json")
    assert r.exit_code == 2
    d = json.loads(r.stdout)
    rows = d["reports"]
    assert len(rows) == 6
    assert [("error" in x) for x in rows] == [False, True, False, True, True, True]
    assert "num_heads" in rows[1]["error"]["message"] and rows[1]["sweep"]["values"] == {"channels": 12}
    assert exps(d, "crossattn", "channels")["params"] is not None  # fitted on the points that ran
    assert "nosuch" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,message", [
    (("--vary", "nrom=bn,gn"), "did you mean 'norm'"),
    (("--vary", "size=0"), "positive integers"),
    (("--shard", "3/2", "--vary", "size=4"), "--shard"),
    ((), "--vary: at least one"),
])
def test_sweep_bad_options(args, message):
    r = run("sweep", "concat", "--no-time", *args)
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- shards, jsonl, merge


SWEEP = ("sweep", "concat", "add", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--vary", "size=4,8,16",
         "--vary", "batch=1,2", "--no-time")


def test_jsonl_shards_merge_into_the_full_sweep(tmp_path):
    full = run_json(*SWEEP)
    files = []
    for i in (1, 2, 3):
        r = run(*SWEEP, "--shard", f"{i}/3", "--format", "jsonl")
        assert r.exit_code == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert len(lines) == 4  # 12 points / 3 shards
        for line in lines:
            assert line["schema_version"] == 1 and line["sweep"]["shard"] == {"index": i, "count": 3}
            assert line["report"]["sweep"]["index"] % 3 == i - 1
        p = tmp_path / f"part{i}.jsonl"
        p.write_text(r.stdout)
        files.append(str(p))
    merged = run_json("merge", *reversed(files))
    assert merged["reports"] == full["reports"]
    assert merged["sweep"]["exponents"] == full["sweep"]["exponents"]
    assert exps(merged, "concat", "size")["macs"] == pytest.approx(2.0)
    assert "notes" not in merged

    r = run("merge", files[0], "--format", "json")  # one shard alone: missing points are named
    assert r.exit_code == 0
    assert "8 of 12 grid points missing" in json.loads(r.stdout)["notes"][0] and "missing" in r.stderr


def test_merge_json_envelopes_and_refusals(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(run(*SWEEP, "--shard", "1/2", "--format", "json").stdout)
    b = tmp_path / "b.json"
    b.write_text(run(*SWEEP, "--shard", "2/2", "--format", "json").stdout)
    d = run_json("merge", str(a), str(b))
    assert [r["sweep"]["index"] for r in d["reports"]] == list(range(12))

    other = tmp_path / "other.json"
    other.write_text(run("sweep", "add", "--vary", "size=4,8", "--no-time", "--format", "json").stdout)
    plain = tmp_path / "plain.json"
    plain.write_text(run("inspect", "add", "--no-time", "--format", "json").stdout)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("{}\nnot json\n")
    for files, message in (([a, other], "from a different sweep"), ([plain], "not a sweep output"),
                           ([junk], "junk.jsonl:2: not JSON"), ([tmp_path / "none.json"], "file not found")):
        r = run("merge", *map(str, files))
        assert r.exit_code == 2, (files, r.stderr)
        assert message in r.stderr


def test_sweep_csv_markdown_table_headers():
    r = run(*SWEEP, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 12
    assert rows[0]["size (H of input 1, px)"] == "4" and rows[0]["batch"] == "1"
    assert rows[-1]["MACs (count)"] == "0" and rows[5]["MACs (count)"] == str(2 * 16 * 16 * 16 * 8)
    r = run(*SWEEP, "--format", "markdown")
    text = r.stdout
    assert text.startswith("| name | size (H of input 1, px) | batch | block |")
    assert "latency" not in text.splitlines()[0]  # empty columns left out
    assert "| concat | size | 0.00 | 2.00 | 2.00 |" in text
    r = run(*SWEEP)
    cells = {tuple(c.strip() for c in line.split("│")[1:3]): [c.strip() for c in line.split("│")[3:-1]]
             for line in r.stdout.splitlines() if line.startswith("│")}
    assert cells[("concat", "size")][:3] == ["0.00", "2.00", "2.00"]  # params, MACs, FLOPs exponents
    assert cells[("concat", "batch")][1] == "1.00"
    assert cells[("add", "size")][1] == "no fit"  # add has no MACs


def test_outputs_match_the_json_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from fusioncli.schema import load_schema

    validator = jsonschema.Draft202012Validator(load_schema())
    r = run("sweep", "concat", "nosuch", "--vary", "size=4,8", "--vary", "batch=1,2", "--no-time", "--format", "json")
    envelope = json.loads(r.stdout)
    validator.validate(envelope)
    r = run("sweep", "concat", "nosuch", "--vary", "size=4,8", "--no-time", "--format", "jsonl")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    for line in lines:
        validator.validate(line)
    p = tmp_path / "s.jsonl"
    p.write_text(r.stdout)
    validator.validate(json.loads(run("merge", str(p), "--format", "json").stdout))
    broken = json.loads(json.dumps(lines[0]))
    del broken["report"]["sweep"]
    assert not validator.is_valid(broken)  # a jsonl report without its grid point is not a sweep line


def test_merge_does_not_call_a_different_load_average_a_different_environment(tmp_path):
    import json

    from cli_helpers import run_main

    paths = []
    for i in (1, 2):
        path = tmp_path / f"s{i}.jsonl"
        code, out, err = run_main("sweep", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--vary",
                                  "size=4,8", "--no-time", "--shard", f"{i}/2", "-f", "jsonl", "-o", str(path))
        assert code == 0, err
        paths.append(path)

    def rewrite(path, **env):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        for line in lines:
            line["environment"].update(env)
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))

    rewrite(paths[0], load_average=0.25)
    rewrite(paths[1], load_average=3.5)
    code, out, err = run_main("merge", *map(str, paths), "--json")
    assert code == 0 and not any("different environments" in n for n in json.loads(out).get("notes", []))
    rewrite(paths[1], threads=7)
    code, out, err = run_main("merge", *map(str, paths), "--json")
    assert any("different environments" in n for n in json.loads(out)["notes"])


def test_sweep_notes_different_output_sizes_within_a_grid_point(tmp_path):
    """aff aligns to the largest input and concat to the first: at size=8 the inputs are 16x8x8 and 16x16x16,
    so aff outputs 16x16 and concat 8x8; size=16 keeps the ratio (16x16 and 32x32: 32x32 against 16x16). The
    note (compare's, from one function) counts the differing points and names the first; merge of the shards
    says the same; align=first gives one size at every point."""
    args = ("aff", "concat", "--in", "16x8x8", "--in", "16x16x16", "--out", "16", "--vary", "size=8,16", "--no-time")
    d = run_json("sweep", *args)
    note = ("outputs at different sizes at 2 of 2 grid points, e.g. at size=8 (16x16: aff; 8x8: concat): blocks "
            "align their inputs to the first, the largest or the smallest by default")
    assert [n for n in d["notes"] if n.startswith(note)], d["notes"]
    assert note.split(" at 2")[0] in run("sweep", *args, "--format", "markdown").stdout
    shards = []
    for i in (1, 2):
        path = tmp_path / f"s{i}.json"
        path.write_text(run("sweep", *args, "--shard", f"{i}/2", "--format", "json").stdout)
        shards.append(str(path))
    assert [n for n in run_json("merge", *shards)["notes"] if n.startswith(note)]
    d = run_json("sweep", *args, "--set", "align=first")
    assert not any("different sizes" in n for n in d.get("notes", []))


def test_sweep_table_is_whole_at_80_columns_with_two_varies_and_a_failure():
    """Two --vary columns do not fit beside five metric columns at 80: FLOPs go under MACs and peak
    activations under bytes; a failed point says 'error' in its row and its message once below the table."""
    from fusioncli.render.table import binary, si

    args = ("sweep", "multiscale", "nosuch", "--in", "8x8x8", "--out", "8", "--vary", "kernels=3,5;3,5,7",
            "--vary", "strides=1;2", "--no-time")
    d = run_json(*args, code=2)
    r = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    lines = r.stdout.splitlines()
    assert "…" not in r.stdout and max(map(len, lines)) <= 80
    cells = {c.strip() for line in lines for c in line.replace("┃", "│").split("│")}
    assert {"multiscale", "nosuch", "kernels", "strides", "3,5", "3,5,7", "MACs", "FLOPs", "error"} <= cells
    for rep in d["reports"]:
        if "error" in rep:
            continue
        assert {si(rep["params"]["total"]), si(rep["cost"]["macs"]), si(rep["cost"]["flops"]),
                binary(rep["cost"]["bytes"]["total"]), binary(rep["memory"]["peak_activation_bytes"])} <= cells
    said = [line for line in lines if line.startswith("nosuch (4 points): SPEC: invalid value 'nosuch'")]
    assert len(said) == 1
