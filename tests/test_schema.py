"""The JSON Schema ships with the package, `fusion schema` prints it, and every JSON the CLI emits validates."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fusioncli import registry
from fusioncli.cli import app
from fusioncli.report import SCHEMA_VERSION
from fusioncli.schema import load_schema, schema_text

from cli_helpers import run_main

jsonschema = pytest.importorskip("jsonschema")
runner = CliRunner()
TINY = ("--in", "4x4x4", "--in", "4x4x4", "--out", "4")


@pytest.fixture(scope="module")
def validator():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def emitted(*args: str, code: int = 0):
    """Run the console script in-process; return its stdout parsed as JSON."""
    rc, out, err = run_main(*args)
    assert rc == code, (rc, err)
    return json.loads(out)


def check(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_schema_command_prints_the_packaged_schema():
    r = runner.invoke(app, ["schema"])
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert r.stdout == schema_text()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["schema_version"]["const"] == SCHEMA_VERSION


def test_schema_command_does_not_import_torch(tmp_path):
    code = ("import sys; from fusioncli.cli import main\n"
            f"try:\n    main(['schema', '--output', {str(tmp_path / 's.json')!r}])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]
    assert json.loads((tmp_path / "s.json").read_text())["$id"].endswith(str(SCHEMA_VERSION))


def test_inspect_json_validates(validator):
    d = emitted("inspect", "concat", "--in", "64x32x32", "--in", "64x32x32", "--out", "64", "--no-time", "--json")
    check(validator, d)
    assert d["reports"][0]["cost"]["macs"] == 8_388_608


def test_inspect_with_timing_and_crosscheck_validates(validator):
    d = emitted("inspect", "gated", *TINY, "--min-time", "0.01", "--crosscheck", "--json")
    check(validator, d)
    rep = d["reports"][0]
    assert rep["timing"]["runs"] >= 1 and set(rep["crosscheck"]) == {"fvcore", "torch_flop_counter", "torchinfo"}


def test_every_block_kind_validates_in_one_compare(validator):
    """Each kind at its documented default shapes (the schema must hold every block's options and layers)."""
    d = emitted("compare", *registry.list_fusions(), "--no-time", "--json")
    check(validator, d)
    assert [r["name"] for r in d["reports"]] == registry.list_fusions()


def test_every_neck_validates_with_its_nodes(validator):
    """Each neck at small shapes, timed (node latencies) and not: ``nodes`` entries hold the schema."""
    d = emitted("compare", *registry.list_necks(), "--in", "8x16x16", "--in", "16x8x8", "--in", "32x4x4", "--out", "8",
                "--min-time", "0.01", "--json")
    check(validator, d)
    assert [r["name"] for r in d["reports"]] == registry.list_necks()
    assert all(r["nodes"] and r["nodes"][0]["latency_ms"] is not None for r in d["reports"])
    d = emitted("inspect", "neck:fpn", "--in", "8x16x16", "--in", "16x8x8", "--out", "8", "--no-time", "--json")
    check(validator, d)
    assert d["reports"][0]["nodes"][0]["latency_ms"] is None


def test_listings_validate(validator):
    """blocks and presets --json are objects with schema_version and tool, like every other JSON output."""
    d = emitted("blocks", "--json")
    check(validator, d)
    assert d["schema_version"] == SCHEMA_VERSION and d["blocks"][0]["kind"] == "concat"
    d = emitted("presets", "--json")
    check(validator, d)
    assert "resnet50-fpn" in [p["name"] for p in d["presets"]]


def test_compare_with_error_rows_validates(validator):
    d = emitted("compare", "add", "nosuchblock", "concat", *TINY, "--no-time", "--json", code=2)
    check(validator, d)
    assert d["reports"][1]["error"]["type"] == "spec_error" and d["reports"][2]["ratios"]["flops"] is not None


@pytest.mark.parametrize("args,code,kind", [
    (("inspect", "concta", "--json"), 2, "spec_error"),
    (("inspect", "concat", "--device", "tpu", "--json"), 2, "usage_error"),
    (("inspect", "concat", "--in", "100000x100000x100000", "--json"), 2, "spec_error"),
    (("inspect", "gated", "--in", "4x4x4", "--json", "--no-time"), 2, "spec_error"),
])
def test_error_objects_validate(validator, args, code, kind):
    d = emitted(*args, code=code)
    check(validator, d)
    assert d["error"]["type"] == kind and d["error"]["message"]


def test_run_and_internal_error_objects_validate(validator, monkeypatch):
    import fusioncli.analysis as analysis
    import fusioncli.analysis.guard as guard

    monkeypatch.setattr(guard, "available_memory", lambda device: 10)
    d = emitted("inspect", "add", *TINY, "--min-time", "0.01", "--json", code=1)
    check(validator, d)
    assert d["error"]["type"] == "run_error" and d["error"]["field"] == "memory"
    monkeypatch.setattr(analysis, "analyze", lambda *a, **k: 1 / 0)
    d = emitted("inspect", "add", *TINY, "--no-time", "--json", code=1)
    check(validator, d)
    assert d["error"] == {"type": "internal_error", "field": None, "message": "internal error: ZeroDivisionError: "
                          "division by zero (run with --debug for the traceback)"}


def test_schema_rejects_what_it_should(validator):
    good = emitted("inspect", "add", *TINY, "--no-time", "--json")
    for mutate in (
        lambda d: d.update(schema_version=2),
        lambda d: d["reports"][0]["cost"].update(macs=-1),
        lambda d: d["reports"][0]["memory"].pop("peak_activation_bytes"),
        lambda d: d["reports"][0].update(timing={"median_ms": 1.0}),
        lambda d: d["reports"].append({"name": "x", "error": {"type": "oops", "message": "m", "field": None}}),
    ):
        d = json.loads(json.dumps(good))
        mutate(d)
        assert not validator.is_valid(d)
    good["reports"][0]["a_key_added_later"] = 1  # keys are only ever added: allowed
    check(validator, good)
