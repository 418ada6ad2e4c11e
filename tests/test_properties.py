"""Property-based: random command lines and random preset files never crash `fusion`.

Whatever the input, the console script exits 0, 1 or 2 with no traceback and no
"internal error" (an exception nothing anticipated), and when JSON was asked for,
stdout is JSON that matches the schema. Bounded: --no-time (counting on the meta
device only) and small shapes, so each example takes milliseconds.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusioncli import registry
from fusioncli.cli.entry import wanted_format
from fusioncli.spec import PRESET_KEYS, bundled_presets

from cli_helpers import run_main

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KINDS = registry.list_fusions()
OPTION_NAMES = ["norm", "act", "align", "resize_mode", "align_corners", "kernels", "r", "bias", "proj_bias", "heads",
                "merge", "nrom", "x", "scale_factor", "epsilon", "num_heads", "size"]

word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_=,.:;x -/[]{}'\"\\\n\t\u00e9", max_size=10)
number = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(
    ["nan", "inf", "-inf", "1e309", "1e23", "9" * 25, "9" * 5000, str(2**63), str(2**31), "-0", "0.5", "1_000"]))
shape = st.one_of(
    st.tuples(st.integers(-1, 9), st.integers(-1, 9), st.integers(-1, 9)).map(lambda t: "x".join(map(str, t))),
    st.sampled_from(["4x4", "4x4x4x4", "", "x", "4 x 4 x 4", "4*4*4", "4,4,4", "1e3x4x4", "100000x100000x100000",
                     "99999999999999999999x1x1", "0x0x0"]),
    word,
)
set_item = st.one_of(
    st.tuples(st.sampled_from(OPTION_NAMES), st.one_of(number, word, st.sampled_from(
        ["bn", "gn", "none", "relu", "true", "false", "1,3,5", "first", "largest", "bilinear", "sum"])))
    .map(lambda kv: f"{kv[0]}={kv[1]}"),
    word,
)
spec = st.one_of(st.sampled_from(KINDS), st.sampled_from(sorted(bundled_presets())), word)
flag = st.one_of(
    st.tuples(st.just("--in"), shape),
    st.tuples(st.just("--out"), st.one_of(number, word)),
    st.tuples(st.just("--set"), set_item),
    st.tuples(st.just("--batch"), st.one_of(number, word)),
    st.tuples(st.just("--device"), st.sampled_from(["cpu", "cuda", "tpu", ""])),
    st.tuples(st.just("--dtype"), st.sampled_from(["float32", "bfloat16", "float16", "float64", "int8"])),
    st.tuples(st.just("--format"), st.sampled_from(["table", "json", "csv", "markdown", "xml"])),
    st.tuples(st.just("--depth"), st.one_of(number, word)),
    st.tuples(st.just("--threads"), st.one_of(st.sampled_from(["1", "0", "x"]), number)),
    st.tuples(st.just("--min-time"), st.one_of(number, st.sampled_from(["0", "0.001"]))),
    st.tuples(st.sampled_from(["--json", "--by-op", "--by-module", "--quiet", "--nonsense"])),
    st.tuples(word),
)


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    from fusioncli.schema import load_schema

    return jsonschema.Draft202012Validator(load_schema())


def check_outcome(args, validator):
    code, out, err = run_main(*args)
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if wanted_format(args) == "json" and args[0] in ("inspect", "compare") and (code == 0 or err):
        doc = json.loads(out)  # success or failure: stdout is JSON
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (args, errors[:3])
    return code


@SETTINGS
@given(command=st.sampled_from(["inspect", "compare", "inspect", "blocks", "presets", "explain", "schema"]),
       specs=st.lists(spec, min_size=0, max_size=3), flags=st.lists(flag, max_size=6))
def test_random_command_lines_never_crash(command, specs, flags, validator):
    args = [command, *specs, *(token for group in flags for token in group)]
    if command in ("inspect", "compare"):
        args.append("--no-time")
        if "--min-time" in args:
            args.remove("--no-time")  # a real (tiny) timed run, or the refusal of an absurd budget
            args += ["--in", "2x2x2", "--in", "2x2x2", "--out", "2"]
    check_outcome(args, validator)


toml_value = st.recursive(
    st.one_of(st.integers(-5, 70), st.booleans(), st.floats(-2, 2, allow_nan=False), word,
              st.sampled_from([float("inf"), float("-inf"), float("nan"), 2**63 - 1, -(2**63), 10**18]),
              st.sampled_from(["4x4x4", "8x8x8", "4x4", "add", "concat", "bn", "relu", "1,3"])),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


def toml_literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for these characters
    return "[" + ", ".join(toml_literal(x) for x in v) + "]"


preset_body = st.one_of(
    st.fixed_dictionaries(
        {"block": st.one_of(st.sampled_from(KINDS), toml_value)},
        optional={"inputs": st.one_of(st.lists(st.sampled_from(["4x4x4", "4x2x2", "8x4x4"]), min_size=1, max_size=3),
                                      toml_value),
                  "out": st.one_of(st.integers(-1, 9), toml_value), "batch": st.one_of(st.integers(0, 3), toml_value),
                  "name": toml_value, "description": toml_value,
                  "options": st.dictionaries(st.sampled_from(OPTION_NAMES), toml_value, max_size=3),
                  "extra": toml_value},
    ).map(lambda d: _render_preset(d)),
    st.text(max_size=60),  # anything at all, TOML or not
    st.integers(1, 4000).map(lambda n: 'block = "add"\nx = ' + "[" * n + "]" * n + "\n"),  # nesting
    st.integers(1, 3000).map(lambda n: 'block = "add"\n' + "".join(f"[t{i}]\n" for i in range(n))),
)


def _render_preset(d: dict) -> str:
    lines = [f"{k} = {toml_literal(v)}" for k, v in d.items() if k != "options"]
    if "options" in d:
        lines.append("[options]")
        lines += [f"{k} = {toml_literal(v)}" for k, v in d["options"].items()]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(body=preset_body, fmt=st.sampled_from(["table", "json"]))
def test_random_preset_files_never_crash(body, fmt, tmp_path_factory, validator):
    path = tmp_path_factory.getbasetemp() / "random-preset.toml"
    path.write_text(body, encoding="utf-8")
    code = check_outcome(["inspect", str(path), "--no-time", "--format", fmt], validator)
    keys = {line.split("=")[0].strip() for line in body.splitlines() if "=" in line}
    if code == 0:
        assert keys - {"norm", "act", "align", "resize_mode", "align_corners", "kernels", "r", "bias", "proj_bias",
                       "heads", "merge"} <= PRESET_KEYS  # unknown top-level keys are never accepted silently


# --------------------------------------------------------------------------- merge inputs


@pytest.fixture(scope="module")
def shard_lines(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "s.jsonl"
    code, out, err = run_main("sweep", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--vary", "size=4,8",
                              "--no-time", "-f", "jsonl", "-o", str(path))
    assert code == 0, err
    return [json.loads(line) for line in path.read_text().splitlines()]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), word)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(word, inner, max_size=3)), max_leaves=8)
PATHS = [("report",), ("report", "cost"), ("report", "cost", "macs"), ("report", "params"), ("report", "sweep"),
         ("report", "sweep", "index"), ("report", "sweep", "values"), ("report", "timing"), ("sweep",),
         ("sweep", "vary"), ("sweep", "specs"), ("schema_version",), ("report", "name"), ("report", "nodes")]


@SETTINGS
@given(which=st.integers(0, 1), where=st.sampled_from(PATHS), value=json_value, drop=st.booleans())
def test_tampered_merge_inputs_never_crash(which, where, value, drop, shard_lines, tmp_path_factory, validator):
    import copy

    lines = copy.deepcopy(shard_lines)
    target = lines[which]
    for key in where[:-1]:
        target = target[key] if isinstance(target, dict) and isinstance(target.get(key), dict) else None
        if target is None:
            return
    if drop:
        target.pop(where[-1], None)
    else:
        target[where[-1]] = value
    path = tmp_path_factory.getbasetemp() / "tampered.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    code, out, err = run_main("merge", str(path), "--json")
    assert code in (0, 2), (where, value, err)
    assert "Traceback" not in err and "internal error" not in err, (where, value, err)
    doc = json.loads(out)
    assert not [e.message for e in validator.iter_errors(doc)], (where, value)
