"""Deployment (issue 15): ONNX export, onnx.checker, the op histogram, ONNX Runtime outputs against eager and its
latency, `fusion export`, `--deploy`, `--backend onnxruntime`, and the one-line error without the extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncli import registry
from fusioncli.deploy import KNOWN_FAILURES
from fusioncli.report import Deploy, entry_from_dict

from cli_helpers import run_main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = str(Path(__file__).with_name("unexportable.py")) + ":SvdFusion"
TINY = ("--in", "8x4x4", "--in", "8x4x4", "--out", "8")
QUICK = ("--min-time", "0.01")
MISSING = "install the extra with pip install 'fusioncli[deploy]'"


def small(kind: str) -> tuple[list[str], int]:
    """The kind's documented inputs with widths / 8 (at least 8) and sizes divided by the largest of 8, 4, 2
    that keeps the first input at least 4 pixels and every size whole (ratios between levels kept); tokens
    with N and C / 8, a vector with its width / 8."""
    info = registry.get_info(kind)
    shapes = [[int(x) for x in s.split("x")] for s in info.inputs]
    maps = [s for s in shapes if len(s) == 3]  # vectors (film's second input) keep their width / 8 only
    f = next(d for d in (8, 4, 2, 1) if not maps or maps[0][1] // d >= 4 and all(s[1] % d == 0 == s[2] % d
                                                                               for s in maps))
    small_ = [[max(8, s[0] // 8), *(n // f for n in s[1:])] if len(s) == 3 else
              [max(4, s[0] // 8), max(8, s[1] // 8)] if len(s) == 2 else [max(8, s[0] // 8)]  # tokens: N and C / 8
              for s in shapes]
    return ["x".join(map(str, s)) for s in small_], max(8, info.out // 8)


def flat(text: str) -> str:
    """Rendered text with its line breaks and padding collapsed (titles and cells wrap at 80 columns)."""
    return " ".join(text.split())


def last_line(err: str) -> str:
    """The error line (a busy-machine warning may come first)."""
    return err.strip().splitlines()[-1]


def emitted(*args: str, code: int = 0) -> dict:
    """The JSON a command printed, checked against the packaged schema."""
    import jsonschema

    from fusioncli.schema import load_schema

    rc, out, err = run_main(*args)
    assert rc == code, (rc, err)
    doc = json.loads(out)
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(load_schema()).iter_errors(doc)]
    assert not errors, errors[:5]
    return doc


@pytest.mark.parametrize("kind", [k for k in registry.list_fusions() if k not in KNOWN_FAILURES])
def test_every_block_exports_and_matches_eager(kind):
    """The default exporter: exported, checked, every op has an ONNX Runtime CPU kernel, outputs within 1e-4."""
    from fusioncli.analysis import analyze

    inputs, out = small(kind)
    d = analyze(kind, inputs=inputs, out=out, time=False, deploy=True).deploy
    assert (d.stage, d.error, d.exported, d.unsupported_ops) == ("ok", None, True, [])
    assert d.ops and d.max_rel_diff <= 1e-4 and d.timing is None


def test_known_failures_are_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deployment"):]
    for kind, why in KNOWN_FAILURES.items():
        assert f"`{kind}`" in section and why in section
    if not KNOWN_FAILURES:
        assert "every built-in block exports" in section.lower()


@pytest.mark.parametrize("kind, out, ops", [
    ("concat", 8, {"Concat": 1, "Conv": 1}),  # concatenation, then one 1x1 conv (no norm, no activation)
    ("add", 8, {"Add": 1}),  # equal widths: no projection, one element-wise sum
    ("cat", 16, {"Concat": 1}),
])
def test_op_histogram_of_simple_blocks(kind, out, ops):
    from fusioncli.analysis import analyze

    d = analyze(kind, inputs=["8x4x4", "8x4x4"], out=out, time=False, deploy=True).deploy
    assert d.ops == ops and d.max_abs_diff == 0.0


def test_dynamo_exporter_gives_the_same_graph_for_concat():
    from fusioncli.analysis import analyze
    from fusioncli.analysis.export import has_dynamo_exporter
    from fusioncli.deploy import ExportSettings

    if not has_dynamo_exporter():
        pytest.skip("torch.onnx.export(dynamo=True) arrived in torch 2.5; torchscript is the exporter here")
    pytest.importorskip("onnxscript")
    d = analyze("concat", inputs=["8x4x4", "8x4x4"], out=8, time=False, deploy=True,
                export=ExportSettings("dynamo")).deploy
    assert (d.exporter, d.stage, d.ops) == ("dynamo", "ok", {"Concat": 1, "Conv": 1})


def test_dynamo_exporter_leaves_the_batch_dynamic(tmp_path):
    from fusioncli.analysis.export import has_dynamo_exporter

    if not has_dynamo_exporter():
        pytest.skip("torch.onnx.export(dynamo=True) arrived in torch 2.5; torchscript is the exporter here")
    pytest.importorskip("onnxscript")
    path = tmp_path / "c.onnx"
    rc, out, err = run_main("export", "concat", *TINY, "--exporter", "dynamo", "--dynamic", "batch", "-o", str(path))
    assert rc == 0, err
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(path)).graph.input]
    assert isinstance(dims[0][0], str) and dims[0][0] == dims[1][0] and [x[1:] for x in dims] == [[8, 4, 4]] * 2


def test_export_writes_a_checked_file(tmp_path):
    path = tmp_path / "block.onnx"
    rc, out, err = run_main("export", "concat", *TINY, "-o", str(path))
    assert rc == 0, err
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Concat", "Conv"]
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [[1, 8, 4, 4], [1, 8, 4, 4]]
    assert "onnx.checker passed" in out and "Concat:1, Conv:1" in out and "max rel. diff 0" in out


def test_export_dynamic_axes_and_a_neck(tmp_path):
    path = tmp_path / "fpn.onnx"
    rc, out, err = run_main("export", "neck:fpn", "--in", "8x8x8", "--in", "16x4x4", "--out", "8", "--dynamic",
                            "batch,spatial", "-o", str(path))
    assert rc == 0, err
    model = onnx.load(str(path))
    first = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert first == ["batch", 8, "in0_dim2", "in0_dim3"]
    assert "dynamic batch,spatial" in out
    # the file runs at another batch and size, and still matches eager there
    import onnxruntime
    import torch

    from fusioncli.analysis import as_spec, build, make_tensors

    spec = as_spec("neck:fpn", inputs=["8x12x12", "16x6x6"], out=8, batch=2)
    xs = make_tensors(spec, "cpu", torch.float32)
    with torch.no_grad():
        eager = build(spec, "cpu", torch.float32)(*xs)
    eager = list(eager.values()) if isinstance(eager, dict) else list(eager)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)})
    assert [list(g.shape) for g in got] == [list(e.shape) for e in eager]
    assert max(float(abs(torch.from_numpy(g) - e).max()) for g, e in zip(got, eager)) < 1e-4


@pytest.mark.parametrize("args, message", [
    (("-o", "x.onnx", "--opset", "3"), "--opset: invalid value 3; allowed: 9 to 23"),
    (("-o", "x.onnx", "--dynamic", "time"), "--dynamic: invalid value 'time'; allowed: batch, spatial or batch,spatial"),
    ((), "--output: required: the ONNX file to write (fusion export SPEC -o block.onnx)"),
])
def test_export_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main("export", "concat", *args)
    assert (rc, err.strip()) == (2, f"fusion: error: {message}")
    assert not (tmp_path / "x.onnx").exists()


def test_export_of_an_unexportable_block_names_the_op(tmp_path):
    path = tmp_path / "svd.onnx"
    rc, out, err = run_main("export", FIXTURE, *TINY, "-o", str(path))
    assert rc == 1 and out == "" and not path.exists()
    assert last_line(err) == ("fusion: error: SvdFusion: ONNX export failed (aten::linalg_svd): UnsupportedOperatorError: "
                           "Exporting the operator 'aten::linalg_svd' to ONNX opset version 18 is not supported")


def test_compare_deploy_keeps_the_rows_around_a_failed_export():
    """The failed export is that row's deploy status (exit 0, no error row); the others are exported and timed."""
    d = emitted("compare", "concat", FIXTURE, "aff", *TINY, *QUICK, "--deploy", "--json")
    concat, svd, aff = (r["deploy"] for r in d["reports"])
    assert (svd["stage"], svd["exported"], svd["failing_op"], svd["timing"]) == ("export", False, "aten::linalg_svd", None)
    assert "\n" not in svd["error"] and "aten::linalg_svd" in svd["error"]
    for ok in (concat, aff):
        assert ok["stage"] == "ok" and ok["max_rel_diff"] <= 1e-4 and ok["timing"]["backend"] == "onnxruntime"
        assert ok["timing"]["runs"] >= 7 and ok["timing"]["warmup"] == 3
        assert ok["latency_ratio"] == pytest.approx(ok["timing"]["median_ms"] / d["reports"][0 if ok is concat else 2]
                                                    ["timing"]["median_ms"])


def test_compare_deploy_table_has_status_ops_latency_and_ratio():
    rc, out, err = run_main("compare", "concat", "add", FIXTURE, *TINY, *QUICK, "--deploy")
    assert rc == 0, err
    table = flat(out[out.index("Deployment"):])
    assert "2 nodes: Concat:1, Conv:1" in table and "1 node: Add:1" in table and "no (export)" in table
    assert "x: ORT / eager" in table
    assert "SvdFusion: ONNX export failed (aten::linalg_svd): UnsupportedOperatorError" in table


def test_inspect_deploy_table_and_formats():
    rc, out, err = run_main("inspect", "concat", *TINY, "--no-time", "--deploy")
    assert rc == 0, err
    assert "Deployment (ONNX opset 18, torchscript exporter; ONNX Runtime CPUExecutionProvider)" in flat(out)
    assert "2 nodes: Concat:1, Conv:1" in out
    rc, md, err = run_main("compare", "concat", FIXTURE, *TINY, "--no-time", "--deploy", "--format", "markdown")
    assert "| ONNX export |" in md and "failed at export" in md
    rc, csv, err = run_main("compare", "concat", *TINY, "--no-time", "--deploy", "--format", "csv")
    header, row = csv.splitlines()[:2]
    assert "ONNX nodes (count)" in header and "Concat:1 Conv:1" in row


def test_deploy_json_round_trips_through_merge_reading():
    from fusioncli.analysis import analyze

    r = analyze("concat", inputs=["8x4x4", "8x4x4"], out=8, min_time=0.01, deploy=True)
    back = entry_from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and isinstance(back.deploy, Deploy) and back.deploy.timing == r.deploy.timing
    assert "deploy" not in analyze("concat", inputs=["8x4x4", "8x4x4"], out=8, time=False).to_dict()


def test_user_block_with_keyword_inputs_and_a_tuple_output():
    """--pack kwargs and nested outputs: exported behind the flat signature, every output compared."""
    from fusioncli.analysis import analyze

    r = analyze("torch.nn:MultiheadAttention", inputs=["query=10x16", "key=6x16", "value=6x16"], pack="kwargs",
                options={"embed_dim": 16, "num_heads": 2, "batch_first": True}, time=False, deploy=True)
    assert r.output_paths == ["out[0]", "out[1]"]
    assert r.deploy.stage == "ok" and r.deploy.max_rel_diff <= 1e-4


@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_backend_onnxruntime_ranks_by_runtime_latency(command):
    extra = ("--vary", "size=4,8") if command == "sweep" else ("add",)
    d = emitted(command, "concat", *extra, *TINY, *QUICK, "--backend", "onnxruntime", "--json")
    timings = [r["timing"] for r in d["reports"]]
    assert len(timings) == 2 and all(t["backend"] == "onnxruntime" and t["runs"] >= 7 for t in timings)


def test_backend_onnxruntime_makes_a_failed_export_an_error_row():
    """No eager latency to fall back on: the design that does not export is an error row (exit 1), the others timed."""
    d = emitted("compare", "concat", FIXTURE, *TINY, *QUICK, "--backend", "onnxruntime", "--json", code=1)
    concat, svd = d["reports"]
    assert concat["timing"]["backend"] == "onnxruntime" and svd["error"]["type"] == "run_error"
    assert svd["error"]["message"].startswith("SvdFusion: --backend onnxruntime: ONNX export failed (aten::linalg_svd): ")


@pytest.mark.parametrize("args, message", [
    (("--compile", "--backend", "onnxruntime"),
     "--compile: short for --backend compile, so not with --backend onnxruntime; use one of them"),
    (("--backend", "onnxruntime", "--backward"),
     "--backward: not with --backend onnxruntime (it times the exported forward); allowed with --backend eager or "
     "compile"),
    (("--deploy", "--dtype", "bfloat16", "--no-time"),
     "--deploy: --dtype bfloat16 has no NumPy type for ONNX Runtime's inputs; allowed: float32, float16"),
])
def test_conflicting_deploy_flags_are_one_line(args, message):
    rc, out, err = run_main("inspect", "concat", *TINY, *QUICK, *args)
    assert (rc, last_line(err)) == (2, f"fusion: error: {message}")


def test_compile_flag_is_the_compile_backend():
    from fusioncli.cli.options import Backend, RunOptions

    assert RunOptions(compile=True).analyze_keywords()["timing_mode"].backend == "compile"
    assert RunOptions(backend=Backend.compile).analyze_keywords()["timing_mode"].compile


@pytest.mark.parametrize("args, field", [
    (("inspect", "concat", "--deploy", "--no-time"), "--deploy"),
    (("compare", "concat", "add", "--backend", "onnxruntime"), "--backend"),
    (("export", "concat", "-o", "x.onnx"), "export"),
])
def test_missing_extra_is_one_line_before_torch(tmp_path, args, field):
    """Without onnxruntime: exit 1, one line naming the extra, and torch never imported (no work was done)."""
    code = ("import sys; sys.modules['onnxruntime'] = None\nfrom fusioncli.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.stdout.split() == ["1", "False"]
    assert r.stderr.strip() == f"fusion: error: {field}: onnxruntime is not installed; {MISSING}"
    assert not (tmp_path / "x.onnx").exists()


def test_opset_beyond_the_torchscript_exporter_is_a_usage_error(tmp_path, monkeypatch):
    from torch.onnx import _constants

    top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None)
    if top is None or top >= 23:
        pytest.skip("this torch's TorchScript exporter has no lower cap than fusion's")
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main("export", "concat", "-o", "x.onnx", "--opset", str(top + 1))
    assert rc == 2 and last_line(err).startswith(f"fusion: error: --opset: invalid value {top + 1}; the torchscript "
                                                 "exporter of torch ")
    assert last_line(err).endswith(f"goes up to {top}; allowed: 9 to {top}, or --exporter dynamo")
