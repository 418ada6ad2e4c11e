"""Choosing a design: ratios, Pareto marks, best values and sort order on hand-made reports; compare's options."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from fusioncli import pareto as P
from fusioncli.cli import app
from fusioncli.comparing import CompareChoice
from fusioncli.errors import SpecError
from fusioncli.render import render
from fusioncli.report import Bytes, Cost, Envelope, ErrorEntry, Memory, Report, Timing, entry_from_dict

runner = CliRunner()


def report(name, params, flops, latency=None, memory=1000, macs=None):
    timing = None
    if latency is not None:
        timing = Timing(median_ms=latency, iqr_ms=latency / 10, min_ms=latency * 0.9, mean_ms=latency, cv=0.01,
                        runs=7, calls=70, threads=1, warmup=3, noisy=False)
    return Report(name=name, block=name, options={}, inputs=[[1, 8, 4, 4]], outputs=[[1, 8, 4, 4]],
                  params={"total": params, "trainable": params},
                  cost=Cost(macs=flops // 2 if macs is None else macs, flops=flops, convention="fusion-v1: test",
                            bytes=Bytes(read=10, written=10)),
                  memory=Memory(param_bytes=4 * params, peak_activation_bytes=memory),
                  timing=timing, layers=[])


# a: cheapest in params and FLOPs but slowest; b: fastest; c: dominated by b (more params, more FLOPs, slower);
# d: the same values as b (ties do not dominate: both stay on the front)
A = report("a", params=100, flops=1_000, latency=9.0, memory=4000)
B = report("b", params=400, flops=4_000, latency=1.0, memory=1000)
C = report("c", params=500, flops=5_000, latency=2.0, memory=1000)
D = report("d", params=400, flops=4_000, latency=1.0, memory=2000)
E = ErrorEntry("broken", {"type": "run_error", "message": "out of memory", "field": None})


def test_dominance_and_front():
    assert P.dominates([1, 1], [1, 2]) and not P.dominates([1, 2], [1, 2]) and not P.dominates([0, 3], [1, 2])
    assert P.pareto_front([A, B, C, D, E], ["params", "flops", "latency"]) == ["a", "b", "d"]
    assert P.pareto_front([A, B, C, D], ["latency"]) == ["b", "d"]  # one metric: the minimum, ties included
    assert P.pareto_front([A, B, C, D], ["params", "flops"]) == ["a"]
    # memory breaks the b/d tie: d (2000 B) is dominated by b (1000 B)
    assert P.pareto_front([A, B, C, D], ["params", "latency", "memory"]) == ["a", "b"]


def test_best_and_sort():
    assert P.best([A, B, C, D, E]) == {"params": ["a"], "macs": ["a"], "flops": ["a"], "bytes": ["a", "b", "c", "d"],
                                       "memory": ["b", "c"], "latency": ["b", "d"]}
    untimed = report("u", params=50, flops=99_999)
    assert [r.name for r in P.sort_entries([E, C, untimed, A, B], "latency")] == ["b", "c", "a", "u", "broken"]
    assert [r.name for r in P.sort_entries([E, C, untimed, A, B], "params")] == ["u", "a", "b", "c", "broken"]
    assert [r.name for r in P.sort_entries([C, B, A], "name")] == ["a", "b", "c"]
    with pytest.raises(SpecError, match="--sort: invalid value 'flop'.*did you mean 'flops'"):
        P.sort_entries([A], "flop")


def test_parse_metrics():
    assert P.parse_metrics("params, flops,params") == ["params", "flops"]
    with pytest.raises(SpecError, match="did you mean 'latency'"):
        P.parse_metrics("params,latncy")


def test_envelope_ratios_pareto_marks_and_best_in_json():
    env = Envelope("0", {}, [A, B, C, E], baseline="b", pareto_metrics=["params", "flops", "latency"],
                   pareto_front=P.pareto_front([A, B, C], ["params", "flops", "latency"]), best=P.best([A, B, C]))
    d = env.to_dict()
    assert d["baseline"] == "b" and d["pareto_metrics"] == ["params", "flops", "latency"]
    a, b, c, err = d["reports"]
    assert a["ratios"] == {"params": 0.25, "macs": 0.25, "flops": 0.25, "latency_ms": 9.0}
    assert c["ratios"] == {"params": 1.25, "macs": 1.25, "flops": 1.25, "latency_ms": 2.0}
    assert b["ratios"]["params"] == 1.0
    assert [a["pareto"], b["pareto"], c["pareto"]] == [True, True, False]
    assert "pareto" not in err and err["error"]["message"] == "out of memory"
    assert d["best"]["latency"] == ["b"] and d["best"]["params"] == ["a"]


def test_choice_drops_latency_without_timing_and_says_so():
    ua, ub = report("a", 100, 1_000), report("b", 400, 500)
    choice = CompareChoice.parse(baseline="b", sort="flops", pareto="params,flops,latency", plot=None, timed=False)
    env = choice.apply(Envelope("0", {}, [ua, ub, E]), ["a", "b", "broken"])
    assert env.baseline == "b"
    assert env.pareto_metrics == ["params", "flops"] and env.pareto_front == ["a", "b"]
    assert env.notes == ["Pareto front over params, flops (latency left out: not timed with --no-time)"]
    assert [r.name for r in env.reports] == ["b", "a", "broken"]  # sorted by FLOPs, error rows last
    with pytest.raises(SpecError, match="--sort: invalid value 'latency'"):
        CompareChoice.parse(baseline=None, sort="latency", pareto="params", plot=None, timed=False)
    with pytest.raises(SpecError, match="--pareto"):
        CompareChoice.parse(baseline=None, sort=None, pareto="latency", plot=None, timed=False)


def test_csv_and_markdown_mark_front_and_best():
    env = Envelope("0", {}, [A, B, C], baseline="a", pareto_metrics=["params", "latency"],
                   pareto_front=P.pareto_front([A, B, C], ["params", "latency"]), best=P.best([A, B, C]))
    out = io.StringIO()
    render(env, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["Pareto front (params+latency)"] for r in rows] == ["true", "true", "false"]
    assert rows[2]["latency (x baseline)"] == str(2.0 / 9.0)
    out = io.StringIO()
    render(env, "markdown", out)
    lines = out.getvalue().splitlines()
    assert "Pareto front (params+latency)" in lines[0] and "latency median (ms)" in lines[0]
    assert lines[2].startswith("| a | a |") and "| **100** |" in lines[2] and "| ✓ |" in lines[2]
    assert "| **1.000** |" in lines[3]  # b has the lowest latency
    assert lines[4].endswith("|  |")  # c: not on the front


def test_entry_round_trip():
    for e in (A, E, report("x", 1, 2)):
        assert entry_from_dict(json.loads(json.dumps(e.to_dict()))) == e


# --------------------------------------------------------------------------- the command


def run(*args):
    return runner.invoke(app, list(args))


SHAPES = ("--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time")


def test_compare_json_pareto_best_baseline_sort():
    r = run("compare", "add", "concat", "gated", *SHAPES, "--baseline", "concat", "--sort", "flops", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["baseline"] == "concat" and d["pareto_metrics"] == ["params", "flops"]
    assert "latency left out" in d["notes"][0]
    names = [x["name"] for x in d["reports"]]
    assert names == ["add", "concat", "gated"]  # FLOPs 128 < 4,224 < 4,864
    add, concat, gated = d["reports"]
    assert [add["pareto"], concat["pareto"], gated["pareto"]] == [True, False, False]  # add: 0 params, least FLOPs
    assert concat["ratios"]["flops"] == 1.0 and add["ratios"]["flops"] == pytest.approx(128 / 4224)
    assert d["best"]["params"] == ["add"]


def test_compare_sort_puts_errors_last_and_keeps_others():
    r = run("compare", "gated", "nosuchblock", "add", *SHAPES, "--sort", "name", "--json")
    assert r.exit_code == 2
    d = json.loads(r.stdout)
    assert [x["name"] for x in d["reports"]] == ["add", "gated", "nosuchblock"]
    assert d["reports"][0]["pareto"] is True and "error" in d["reports"][2]


def test_compare_table_marks_front():
    r = run("compare", "add", "concat", *SHAPES)
    assert r.exit_code == 0
    assert "Pareto" in r.stdout and "✓" in r.stdout and "latency left out" in r.stdout


@pytest.mark.parametrize("args,message", [
    (("--baseline", "concta"), "--baseline: invalid value 'concta'"),
    (("--sort", "speed"), "--sort: invalid value 'speed'"),
    (("--sort", "latency"), "nothing is timed with --no-time"),
    (("--pareto", "params,speed"), "--pareto: invalid value 'speed'"),
])
def test_compare_bad_choice_options(args, message):
    r = run("compare", "add", "concat", *SHAPES, *args)
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_compare_quoted_glob(tmp_path):
    for name, block in (("one", "add"), ("two", "concat")):
        (tmp_path / f"{name}.toml").write_text(f'block = "{block}"\ninputs = ["8x4x4", "8x4x4"]\nout = 8\n')
    r = run("compare", str(tmp_path / "*.toml"), "--no-time", "--json")
    assert r.exit_code == 0, r.stderr
    assert [x["name"] for x in json.loads(r.stdout)["reports"]] == ["one", "two"]
    r = run("compare", str(tmp_path / "nothing-*.toml"), "--no-time")
    assert r.exit_code == 2 and "matches no file" in r.stderr


def test_compare_json_matches_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from fusioncli.schema import load_schema

    r = run("compare", "add", "nosuch", "concat", *SHAPES, "--sort", "params", "--json")
    d = json.loads(r.stdout)
    jsonschema.Draft202012Validator(load_schema()).validate(d)
    d["pareto_metrics"] = ["speed"]
    assert not jsonschema.Draft202012Validator(load_schema()).is_valid(d)


def test_compare_says_when_outputs_differ_in_size():
    """aff aligns to the largest input by default, concat to the first: 128x128 against 64x64."""
    r = run("compare", "aff", "concat", "--in", "16x8x8", "--in", "16x16x16", "--out", "16", "--no-time", "--json")
    d = json.loads(r.stdout)
    assert [x["outputs"][0][2:] for x in d["reports"]] == [[16, 16], [8, 8]]
    assert any(n.startswith("outputs at different sizes (16x16: aff; 8x8: concat)") for n in d["notes"])
    r = run("compare", "aff", "concat", "--in", "16x8x8", "--in", "16x16x16", "--out", "16", "--set", "align=first",
            "--no-time", "--json")
    assert not any("different sizes" in n for n in json.loads(r.stdout).get("notes", []))


@pytest.mark.parametrize("timed", [False, True])
def test_compare_table_is_whole_at_80_columns(timed):
    """Every name and every number whole (no cut cell, no ellipsis) at 80 columns, as a pipe gets."""
    from fusioncli import compare as api_compare
    from fusioncli.render.table import render_table, si

    names = ["add", "concat", "gated", "aff", "dpt"]
    env = api_compare(names, time=timed, min_time=0.01)
    P_choice = CompareChoice.parse(baseline=None, sort=None, pareto="params,flops", plot=None, timed=timed)
    env = P_choice.apply(env, names)
    out = io.StringIO()
    render_table(env, out, width=80)
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")
            and line.split("│")[1].strip()}
    assert sorted(rows) == sorted(names)
    for r in env.reports:
        for value in (si(r.params["total"]), si(r.cost.macs), si(r.cost.flops)):
            assert value in rows[r.name], (r.name, value)
