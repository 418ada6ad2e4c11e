"""No input makes `fusion` crash, hang, eat the machine or lose a result.

Bad inputs through the real entry point (`fusioncli.cli.main`, which also maps parser
errors): exit code, one stderr line naming the field and what is allowed, no traceback.
The memory guard, --output's atomic writes, Ctrl-C, and failures inside compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusioncli.cli import app
from fusioncli.errors import RunError, SpecError
from fusioncli.spec import Spec

from cli_helpers import run_main

runner = CliRunner()
TINY = ("--in", "4x4x4", "--in", "4x4x4", "--out", "4")


def assert_one_line_error(code, out, err, expected_code, *needles):
    assert code == expected_code, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fusion: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _preset(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# (args, exit code, substrings of the one stderr line); "{tmp}" is replaced by a temporary directory
BAD = [
    # shapes: missing dims, zero, negative, non-numbers, too many dims, huge
    (("inspect", "concat", "--in", "64x32"), 2, ["--in: invalid value '64x32'", "CxHxW"]),
    (("inspect", "concat", "--in", "0x4x4"), 2, ["--in: invalid value '0x4x4'", "positive"]),
    (("inspect", "concat", "--in", "4x-4x4"), 2, ["--in: invalid value '4x-4x4'"]),
    (("inspect", "concat", "--in", "4x4.5x4"), 2, ["--in: invalid value '4x4.5x4'"]),
    (("inspect", "concat", "--in", "axbxc"), 2, ["--in: invalid value 'axbxc'"]),
    (("inspect", "aff", "--in", "4x4x4x4"), 2, ["--in: invalid value '4x4x4x4'"]),
    (("inspect", "concat", "--in", ""), 2, ["--in: invalid value ''"]),
    (("inspect", "concat", "--in", "100000x100000x100000", "--in", "8x8x8"), 2,
     ["--in: input 1 (batch x shape = 1x100000x100000x100000) is 1e+15 elements, 3.6 PiB as float32", "2**40",
      "--force"]),
    (("inspect", "concat", "--batch", "99999999999", "--no-time"), 2, ["--batch: invalid value 99999999999", "up to 2**31-1"]),
    (("inspect", "concat", "--batch", "2000000000", "--no-time"), 2, ["--batch: input 1 (batch x shape = 2000000000x64x32x32)"]),
    (("inspect", "concat", "--in", "99999999999999999999x9x9", "--in", "8x8x8", "--force"), 2,
     ["--in: input 1", "2**63"]),
    (("inspect", "concat", "--out", "0"), 2, ["--out: invalid value 0"]),
    (("inspect", "concat", "--out", "-3"), 2, ["--out: invalid value -3"]),
    (("inspect", "concat", "--out", "four"), 2, ["--out: invalid value 'four'", "int"]),
    (("inspect", "concat", "--batch", "0"), 2, ["--batch: invalid value 0"]),
    (("inspect", "concat", "--batch", "1.5"), 2, ["--batch: invalid value '1.5'"]),
    (("inspect", "concat", "--threads", "0"), 2, ["--threads: invalid value '0'"]),
    (("inspect", "concat", "--threads", "100000"), 2, ["--threads: invalid value 100000", "per CPU"]),
    (("inspect", "concat", "--min-time", "-1"), 2, ["--min-time: invalid value '-1'"]),
    (("inspect", "concat", "--depth", "x"), 2, ["--depth: invalid value 'x'"]),
    # unknown kinds, presets, commands and flags, with "did you mean"
    (("inspect", "concta"), 2, ["SPEC: invalid value 'concta'", "did you mean 'concat'"]),
    (("inspect", "unet-skip-concta"), 2, ["did you mean 'unet-skip-concat'"]),
    (("compare", "add", "gatd", *TINY, "--no-time"), 2, ["gatd", "did you mean 'gated'"]),
    (("inspct", "concat"), 2, ["No such command 'inspct'", "inspect"]),
    (("inspect", "concat", "--ot", "4"), 2, ["No such option: --ot", "--out"]),
    (("inspect",), 2, ["Missing argument 'SPEC'"]),
    (("inspect", "concat", "--in"), 2, ["--in", "requires an argument"]),
    # options: unknown, wrong values, wrong types, malformed
    (("inspect", "concat", "--set", "nrom=bn"), 2, ["--set nrom", "did you mean 'norm'"]),
    (("inspect", "concat", "--set", "norm=batch"), 2, ["--set norm: invalid value 'batch'", "one of bn|gn|none"]),
    (("inspect", "concat", "--set", "norm"), 2, ["--set: invalid value 'norm'", "key=value"]),
    (("inspect", "concat", "--set", "=bn"), 2, ["--set: invalid value '=bn'"]),
    (("inspect", "multiscale", "--set", "kernels=1,x"), 2, ["--set kernels: invalid value '1,x'", "ints"]),
    (("inspect", "concat", "--set", "align_corners=maybe"), 2, ["--set align_corners: invalid value 'maybe'"]),
    (("inspect", "concat", "--set", "align=middle"), 2, ["--set align: invalid value 'middle'", "first"]),
    # invalid combinations
    (("inspect", "gated", "--in", "8x4x4"), 2, ["at least 2"]),
    (("inspect", "dpt", "--in", "64x8x8", "--in", "64x8x8", "--out", "32"), 2, ["--in", "'dpt'"]),
    (("inspect", "add", *TINY, "--autocast", "--min-time", "0.01"), 2, ["--autocast", "bfloat16"]),
    # listings
    (("blocks", "dtp"), 2, ["PATTERN: invalid value 'dtp'; matches no block kind", "did you mean 'dpt'"]),
    (("blocks", "x*", "--json"), 2, ["PATTERN: invalid value 'x*'"]),
    # devices and dtypes
    (("inspect", "concat", "--device", "tpu"), 2, ["--device: invalid value 'tpu'", "cpu, cuda"]),
    (("inspect", "concat", "--device", "cdua"), 2, ["did you mean 'cuda'"]),
    (("inspect", "concat", "--dtype", "float64"), 2, ["--dtype: invalid value 'float64'", "float32"]),
    (("inspect", "concat", "--dtype", "bfloat61"), 2, ["did you mean 'bfloat16'"]),
    (("inspect", "concat", "--format", "jsn"), 2, ["--format: invalid value 'jsn'", "did you mean 'json'"]),
    # preset files
    (("inspect", "missing.toml"), 2, ["missing.toml", "not found"]),
    (("inspect", "{tmp}"), 2, ["is a directory", "preset file"]),
    (("inspect", "/dev/zero"), 2, ["'/dev/zero' is not a regular file"]),
    (("inspect", "a" * 5000), 2, ["SPEC: invalid value 'aaaa", "...", "expected a block or neck kind"]),
    (("inspect", "a/" * 3000), 2, ["preset: cannot read 'a/a/", "File name too long"]),
    # --output
    (("inspect", "add", *TINY, "--no-time", "--output", "{tmp}/no/such/dir/r.json"), 2,
     ["--output", "does not exist"]),
    (("inspect", "add", *TINY, "--no-time", "--output", "{tmp}"), 2, ["--output", "not a directory"]),
]


@pytest.mark.parametrize("args,code,needles", BAD, ids=[" ".join(a)[:50] for a, _, _ in BAD])
def test_bad_input(args, code, needles, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_one_line_error(*run_main(*args), code, *needles)


def test_cuda_absent_is_a_run_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, out, err = run_main("inspect", "add", *TINY, "--device", "cuda", "--json")
    assert_one_line_error(code, out, err, 1, "--device: 'cuda' is not available")
    assert json.loads(out)["error"] == {"type": "run_error", "field": "--device",
                                        "message": err.strip().removeprefix("fusion: error: ")}


PRESETS = [
    # (file text, substrings): syntax errors name file, line and column; wrong types name the key
    ('block = "add"\nout = \n', ["bad.toml, line 2, column 7: TOML syntax error: Invalid value", "'out ='"]),
    ('block = "add"\n[options\n', ["bad.toml, line 2, column 9: TOML syntax error"]),
    ('block = "add"\nblock = "concat"\n', ["bad.toml, line 2", "TOML syntax error"]),
    ('inputs = ["4x4x4",\n', ["bad.toml, at the end of the file: TOML syntax error"]),
    ('block = "add"\nouts = 4\n', ["bad.toml: key: invalid value 'outs'", "did you mean 'out'"]),
    ('block = "add"\nout = "four"\n', ["bad.toml: out: invalid value 'four'", "positive integer"]),
    ('block = "add"\nout = 4.0\n', ["bad.toml: out: invalid value 4.0"]),
    ('block = "add"\nbatch = true\n', ["bad.toml: batch: invalid value True"]),
    ('block = "add"\ninputs = "4x4x4"\n', ["bad.toml: inputs: invalid value '4x4x4'", "list"]),
    ('block = "add"\ninputs = []\n', ["bad.toml: inputs: invalid value []"]),
    ('block = "add"\ninputs = ["4x4"]\n', ["bad.toml: inputs: invalid value '4x4'", "CxHxW"]),
    ('block = "add"\ninputs = [[4, 4, 0]]\n', ["bad.toml: inputs: invalid value [4, 4, 0]"]),
    ('block = "add"\ninputs = [[4, 4, true]]\n', ["bad.toml: inputs: invalid value [4, 4, True]"]),
    ('block = 3\n', ["bad.toml: block: invalid value 3", "string"]),
    ('block = "ad"\n', ["block: invalid value 'ad'", "did you mean 'add'"]),
    ('out = 4\n', ["bad.toml: key 'block' is missing"]),
    ('block = "add"\nname = 7\n', ["bad.toml: name: invalid value 7", "string"]),
    ('block = "add"\noptions = 3\n', ["bad.toml: options: invalid value 3", "table"]),
    ('block = "concat"\n[options]\nnorm = 3\n', ["bad.toml: options norm: invalid value 3", "bn|gn|none"]),
    ('block = "concat"\n[options]\nnrom = "bn"\n', ["bad.toml: options nrom", "did you mean 'norm'"]),
    ('block = "multiscale"\n[options]\nkernels = "1,x"\n', ["bad.toml: options kernels: invalid value '1,x'"]),
    ('block = "concat"\n[options.norm]\nx = 1\n', ["bad.toml: options norm: invalid value {'x': 1}"]),
    ('block = "add"\ninputs = ["100000x100000x100000"]\n', ["bad.toml: inputs: input 1 (batch x shape = 1x1000", "2**40"]),
]


@pytest.mark.parametrize("text,needles", PRESETS, ids=[t.splitlines()[-1][:30] for t, _ in PRESETS])
def test_bad_preset_file(text, needles, tmp_path):
    path = _preset(tmp_path, "bad.toml", text)
    assert_one_line_error(*run_main("inspect", path, "--no-time"), 2, *needles)


def test_huge_preset_file_is_not_read(tmp_path):
    p = tmp_path / "huge.toml"
    p.write_bytes(b"#" * (2 << 20))
    assert_one_line_error(*run_main("inspect", str(p), "--no-time"), 2, "is 2,097,152 bytes; allowed: at most 1,048,576")


def test_preset_not_utf8(tmp_path):
    p = tmp_path / "latin.toml"
    p.write_bytes(b'block = "add"\ndescription = "caf\xe9"\n')
    assert_one_line_error(*run_main("inspect", str(p), "--no-time"), 2, "latin.toml", "cannot read")


def test_message_with_newline_stays_one_line():
    code, out, err = run_main("inspect", "concat", "--set", "no\nrm=bn", "--json")
    assert_one_line_error(code, out, err, 2, "did you mean 'norm'")
    assert "\\n" in err and json.loads(out)["error"]["type"] == "spec_error"


def test_usage_error_json_object():
    code, out, err = run_main("inspect", "concat", "--device", "tpu", "--format", "json")
    assert code == 2
    assert json.loads(out) == {"schema_version": 1, "error": {
        "type": "usage_error", "field": "--device",
        "message": "--device: invalid value 'tpu'; allowed: cpu, cuda (did you mean 'cpu'?) (see 'fusion inspect "
                   "--help')"}}


def test_help_and_version_still_exit_0():
    code, out, _ = run_main("--help")
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "Exit codes: 0 success, 1 run-time failure" in text and "130 interrupted" in text
    code, out, _ = run_main("--version")
    assert code == 0 and out.startswith("fusioncli ")


# --------------------------------------------------------------------------- resource guard


def test_absurd_shape_refused_before_torch_is_imported():
    code = ("import sys, time; t = time.perf_counter(); from fusioncli.cli import main\n"
            "try:\n    main(['inspect', 'concat', '--in', '100000x100000x100000', '--in', '100000x100000x100000'])\n"
            "except SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules, round(time.perf_counter() - t, 2))")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - t0
    exit_code, torch_imported, seconds = out.stdout.split()
    assert (exit_code, torch_imported) == ("2", "False"), out.stderr
    # about 0.5 s here (imports of typer and fusioncli included); generous for a loaded machine
    assert float(seconds) < 2.0, seconds
    assert wall < 10, wall
    assert "2**40" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_inputs_that_do_not_fit_are_refused_before_torch(monkeypatch):
    import fusioncli.limits as limits

    monkeypatch.setattr(limits, "available_ram", lambda: 1_000_000)  # 1 MB free
    # 2 x 4x256x256 float32 inputs = 2 MiB > 80 % of 1 MB
    code, out, err = run_main("inspect", "add", "--in", "4x256x256", "--in", "4x256x256", "--out", "4")
    assert_one_line_error(code, out, err, 1, "add: the inputs alone need 2.0 MiB", "976.6 KiB is available",
                          "--force")
    # counting alone allocates nothing: allowed
    assert run_main("inspect", "add", "--in", "4x256x256", "--in", "4x256x256", "--out", "4", "--no-time")[0] == 0


def test_activations_that_do_not_fit_are_refused_after_the_meta_pass(monkeypatch):
    import fusioncli.analysis.guard as guard

    # concat 2 x (1, 8, 64, 64) -> 64: inputs 262,144 B; parameters (16*64 + 64) * 4 = 4,352 B;
    # peak activations: cat 262,144 + conv output 1,048,576 = 1,310,720 B; the largest op, the conv,
    # reads 262,144 + 4,096 + 256 and writes 1,048,576 = 1,315,072 B; allocator slack: 4 x that
    # = 5,260,288 B; + 16 MiB runtime overhead: need 24,929,792 B (23.8 MiB), against 80% of 20 MB
    monkeypatch.setattr(guard, "available_memory", lambda device: 20_000_000)
    args = ("inspect", "concat", "--in", "8x64x64", "--in", "8x64x64", "--out", "64", "--min-time", "0.01")
    code, out, err = run_main(*args)
    assert_one_line_error(code, out, err, 1, "concat: a run on cpu needs about 23.8 MiB",
                          "parameters 4.2 KiB + inputs 256.0 KiB + peak activations 1.2 MiB + largest op's working "
                          "set 1.3 MiB + allocator slack 5.0 MiB + runtime overhead 16.0 MiB", "--force")
    code, out, err = run_main(*args, "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["reports"][0]["timing"]["runs"] >= 1


def test_required_bytes_by_part():
    from fusioncli.analysis.guard import required_bytes
    from fusioncli.analysis.timing import TimingMode

    from fusioncli.report import Memory

    from fusioncli.analysis.guard import RUNTIME_OVERHEAD

    memory = Memory(param_bytes=100, buffer_bytes=20, input_bytes=1000, peak_activation_bytes=5000,
                    largest_op_bytes=3000)
    cost = 7000  # bytes the forward writes
    assert required_bytes(memory, cost, device="cpu", dtype="float32") == {
        "parameters": 120, "inputs": 1000, "peak activations": 5000, "largest op's working set": 3000,
        "allocator slack": 4 * 3000, "runtime overhead": RUNTIME_OVERHEAD}  # min(4 x largest op, 288 MiB)
    last = required_bytes(memory, cost, device="cpu", dtype="float32", mode=TimingMode(channels_last=True))
    assert last["channels-last copies"] == 120 + 1000
    # 16-bit on CPU: the float32 draft of the inputs exists while they are cast
    assert required_bytes(memory, cost, device="cpu", dtype="float16")["float32 input draft"] == 2000
    assert "float32 input draft" not in required_bytes(memory, cost, device="cuda", dtype="float16")
    back = required_bytes(memory, cost, device="cpu", dtype="float32", mode=TimingMode(backward=True))
    assert back["gradients"] == 1120 and back["saved activations"] == 7000
    auto = required_bytes(memory, cost, device="cuda", dtype="bfloat16", mode=TimingMode(autocast=True))
    assert auto["parameters"] == 240 and auto["inputs"] == 2000  # weights and inputs stay float32


def test_limits_on_specs():
    from fusioncli.limits import check_shapes

    spec = Spec("s", "add", [(1024, 1024, 1024), (4, 4, 4)], 4, batch=1)  # 2**30 elements: fine
    check_shapes(spec, "float32")
    spec.batch = 1025  # 1025 * 2**30 > 2**40
    with pytest.raises(SpecError, match=r"input 1 \(batch x shape = 1025x1024x1024x1024\)"):
        check_shapes(spec, "float32")
    check_shapes(spec, "float32", force=True)
    spec.inputs = [(2**31, 2**31, 2**31)]
    with pytest.raises(SpecError, match="2\\*\\*63"):
        check_shapes(spec, "float32", force=True)


def test_available_memory_is_read():
    from fusioncli.limits import available_ram

    ram = available_ram()
    assert ram is None or ram > 0


def test_python_api_guard(monkeypatch):
    import fusioncli
    import fusioncli.analysis.guard as guard

    monkeypatch.setattr(guard, "available_memory", lambda device: 1000)
    with pytest.raises(RunError, match="needs about"):
        fusioncli.analyze("add", inputs=["4x8x8", "4x8x8"], out=4, min_time=0.01)
    report = fusioncli.analyze("add", inputs=["4x8x8", "4x8x8"], out=4, min_time=0.01, force=True)
    assert report.timing is not None
    assert fusioncli.analyze("add", inputs=["4x8x8", "4x8x8"], out=4, time=False).timing is None


# --------------------------------------------------------------------------- --output, Ctrl-C


def test_output_writes_the_file_and_nothing_on_stdout(tmp_path):
    target = tmp_path / "r.json"
    code, out, err = run_main("inspect", "add", *TINY, "--no-time", "--json", "--output", str(target))
    assert (code, out) == (0, "")
    assert json.loads(target.read_text())["reports"][0]["cost"]["flops"] == 64
    code, out, _ = run_main("compare", "add", "concat", *TINY, "--no-time", "--format", "csv", "-o", str(target))
    assert (code, out) == (0, "")
    assert target.read_text().splitlines()[0].startswith("name,block,")
    assert os.listdir(tmp_path) == ["r.json"]


def test_output_keeps_permissions(tmp_path):
    target = tmp_path / "r.md"
    target.write_text("old")
    target.chmod(0o640)
    assert run_main("inspect", "add", *TINY, "--no-time", "--format", "markdown", "-o", str(target))[0] == 0
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert target.read_text().startswith("|")


def test_output_to_a_fifo_writes_in_place(tmp_path):
    """A special file (FIFO here; /dev/null and /dev/stdout alike) is written, never renamed over:
    `-o /dev/null` once replaced the device node with a regular file."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()), daemon=True)
    reader.start()
    code, out, _ = run_main("inspect", "add", *TINY, "--no-time", "--json", "-o", str(fifo))
    reader.join(timeout=30)
    assert (code, out) == (0, "")
    assert json.loads(got[0])["reports"][0]["cost"]["flops"] == 64
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary file either


def test_output_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert run_main("inspect", "add", *TINY, "--no-time", "--json", "-o", str(link))[0] == 0
    assert link.is_symlink()
    assert json.loads(real.read_text())["reports"][0]["cost"]["flops"] == 64


def test_failed_run_with_output(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("previous report\n")
    code, out, err = run_main("inspect", "concta", "--output", str(target))
    assert_one_line_error(code, out, err, 2, "concta")
    assert out == "" and target.read_text() == "previous report\n"  # table format: the file is left as it was
    target = tmp_path / "r.json"
    code, out, err = run_main("inspect", "concta", "--json", "--output", str(target))
    assert code == 2 and out == ""
    assert json.loads(target.read_text())["error"]["type"] == "spec_error"  # JSON: the error object, never stale


def test_interrupted_render_leaves_no_truncated_file(tmp_path, monkeypatch):
    import fusioncli.render.json as render_json

    target = tmp_path / "r.json"
    target.write_text('{"old": true}\n')

    def half_then_ctrl_c(envelope, out):
        out.write('{"schema_version": 1, "repo')
        raise KeyboardInterrupt

    monkeypatch.setattr(render_json, "render_json", half_then_ctrl_c)
    code, out, err = run_main("inspect", "add", *TINY, "--no-time", "--json", "-o", str(target))
    assert code == 130 and out == ""
    assert err.strip() == "fusion: interrupted"
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left


def test_ctrl_c_during_analysis_exits_130_with_one_line(monkeypatch):
    import fusioncli.analysis as analysis

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyze", interrupted)
    code, out, err = run_main("compare", "add", "concat", *TINY, "--no-time", "--json")
    assert code == 130 and err.strip() == "fusion: interrupted"
    assert json.loads(out)["error"]["type"] == "interrupted"


def test_unexpected_exception_is_one_line_and_json(monkeypatch):
    import fusioncli.analysis as analysis

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(analysis, "analyze", broken)
    code, out, err = run_main("inspect", "add", *TINY, "--no-time", "--json")
    assert_one_line_error(code, out, err, 1, "internal error: ZeroDivisionError: division by zero", "--debug")
    assert json.loads(out)["error"]["type"] == "internal_error"


# --------------------------------------------------------------------------- compare keeps the others


@pytest.fixture
def add_fails_at_height_3(monkeypatch):
    """The 'add' block raises at inputs of height 3 (on meta: at counting; elsewhere: at timing)."""
    from fusioncli.blocks.add import AddFusion

    forward = AddFusion.forward

    def flaky(self, *xs):
        if xs[0].shape[-2] == 3:
            raise RuntimeError("injected failure at height 3")
        if xs[0].shape[-2] == 5 and xs[0].device.type != "meta":
            raise RuntimeError("injected failure on the real device")
        return forward(self, *xs)

    monkeypatch.setattr(AddFusion, "forward", flaky)


def test_compare_runtime_failure_keeps_the_others(add_fails_at_height_3):
    code, out, err = run_main("compare", "concat", "add", "gated", "--in", "4x3x3", "--in", "4x3x3", "--out", "4",
                              "--no-time", "--json")
    assert code == 1
    d = json.loads(out)
    assert [r["name"] for r in d["reports"]] == ["concat", "add", "gated"]
    concat, add, gated = d["reports"]
    assert add["error"]["type"] == "run_error" and "injected failure at height 3" in add["error"]["message"]
    assert concat["cost"]["macs"] == 8 * 4 * 9 and gated["outputs"] == [[1, 4, 3, 3]]
    assert err.count("fusion: error:") == 1 and "Traceback" not in err


def test_compare_failure_while_timing_keeps_the_others(add_fails_at_height_3):
    code, out, err = run_main("compare", "add", "concat", "--in", "4x5x5", "--in", "4x5x5", "--out", "4",
                              "--min-time", "0.01", "--json")
    assert code == 1
    add, concat = json.loads(out)["reports"]
    assert "forward failed on cpu" in add["error"]["message"] and "real device" in add["error"]["message"]
    assert concat["timing"]["runs"] >= 1 and concat["cost"]["macs"] == 8 * 4 * 25


def test_compare_table_error_rows_are_one_line_each():
    code, out, err = run_main("compare", "concat", "nosuchblock", "add", "gatd", *TINY, "--no-time")
    assert code == 2
    assert [line.split(":")[2].strip() for line in err.strip().splitlines()] == ["nosuchblock", "gatd"]
    assert "concat" in out and "add" in out


def test_force_is_accepted_by_the_python_cli_runner():
    r = runner.invoke(app, ["inspect", "add", *TINY, "--no-time", "--force", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["reports"][0]["name"] == "add"


def test_cuda_memory_is_read_from_the_device(monkeypatch):
    """No GPU needed: torch.cuda.mem_get_info is what the guard reads for CUDA."""
    import torch

    from fusioncli.analysis import guard

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20_000_000, 80_000_000_000))
    assert guard.available_memory("cuda") == 20_000_000
    from fusioncli.report import Memory

    # 1,000,000 bytes of tensors + the 16 MiB runtime overhead (no op counted: no slack), against 80% of 20 MB
    memory = Memory(param_bytes=400_000, buffer_bytes=0, input_bytes=400_000, peak_activation_bytes=200_000)
    with pytest.raises(RunError, match=r"needs about 17.0 MiB .* 19.1 MiB of GPU memory free allows 15.3 MiB"):
        guard.check_memory("b", memory, 0, device="cuda", dtype="float32")
    guard.check_memory("b", memory, 0, device="cuda", dtype="float32", force=True)

    def no_cuda(device=None):
        raise RuntimeError("Torch not compiled with CUDA enabled")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_cuda)
    assert guard.available_memory("cuda") is None  # unknown: the guard stands aside
    guard.check_memory("b", memory, 0, device="cuda", dtype="float32")


# --------------------------------------------------------------------------- outputs never replace inputs


def test_an_output_that_is_an_input_or_another_output_is_refused(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text((Path(__file__).parent.parent / "presets" / "fpn-p4-add.toml").read_text())
    before = preset.read_text()
    code, out, err = run_main("inspect", str(preset), "--no-time", "-o", str(preset))
    assert code == 2 and "is an input of this run" in err and preset.read_text() == before
    code, out, err = run_main("compare", "add", "concat", *TINY, "--no-time", "-o", str(tmp_path / "a.png"),
                              "--plot", str(tmp_path / "a.png"))
    assert code == 2 and "is also --plot" in err and not (tmp_path / "a.png").exists()
    user = tmp_path / "mine.py"
    user.write_text("from torch import nn\nclass M(nn.Conv2d):\n    pass\n")
    code, out, err = run_main("inspect", f"{user}:M", "--in", "8x4x4", "--no-time", "-o", str(user))
    assert code == 2 and user.read_text().startswith("from torch")
    link = tmp_path / "link.toml"
    link.symlink_to(preset)
    code, out, err = run_main("sweep", str(preset), "--vary", "size=8,16", "--no-time", "-o", str(link))
    assert code == 2 and "is an input" in err and preset.read_text() == before
    shard = tmp_path / "s.jsonl"
    code, out, err = run_main("sweep", "add", *TINY, "--vary", "size=4,8", "--no-time", "-f", "jsonl", "-o", str(shard))
    assert code == 0, err
    kept = shard.read_text()
    code, out, err = run_main("merge", str(shard), "-o", str(shard))
    assert code == 2 and shard.read_text() == kept
    code, out, err = run_main("inspect", "add", *TINY, "--no-time", "-o", os.devnull)  # special files: fine
    assert code == 0


# --------------------------------------------------------------------------- numbers: nan, inf, huge


@pytest.mark.parametrize("args,field", [
    (("--min-time", "nan"), "--min-time"),
    (("--min-time", "inf"), "--min-time"),
    (("--min-time", "1e9"), "--min-time"),
    (("--out", "9" * 30), "--out"),
    (("--out", str(2**31)), "--out"),
    (("--batch", "9" * 30), "--batch"),
    (("--set", "align_corners=" + "1" * 5000), "--set align_corners"),
])
def test_absurd_numbers_are_usage_errors(args, field):
    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", *args, "--json")
    assert code == 2, err
    assert json.loads(out)["error"]["field"] == field and "Traceback" not in err


@pytest.mark.parametrize("kind,option", [("dpt", "scale_factor=inf"), ("bifpn", "epsilon=nan"),
                                         ("dpt", "scale_factor=-inf"), ("aff", "r=" + "9" * 25),
                                         ("aff", "r=" + "9" * 5000), ("sk", "kernels=3,nan")])
def test_non_finite_and_huge_option_values_are_refused(kind, option):
    code, out, err = run_main("inspect", kind, "--set", option, "--no-time", "--json")
    assert code == 2, err
    d = json.loads(out)["error"]
    assert d["field"] == "--set " + option.split("=")[0] and "invalid value" in d["message"]


def test_batch_that_alone_makes_an_input_too_large_is_blamed_on_batch():
    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--batch", str(10**12), "--no-time",
                              "--json")
    assert code == 2 and json.loads(out)["error"]["field"] == "--batch", err


def test_unknown_compile_backend_is_a_usage_error():
    code, out, err = run_main("inspect", "add", *TINY, "--compile", "--compile-backend", "bogus", "--json")
    assert code == 2 and json.loads(out)["error"]["field"] == "--compile-backend", err


def test_deeply_nested_toml_and_json_are_usage_errors(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text('block = "add"\n[options]\nx = ' + "[" * 5000 + "]" * 5000 + "\n")
    code, out, err = run_main("inspect", str(deep), "--no-time")
    assert code == 2 and "nested too deeply" in err
    j = tmp_path / "deep.json"
    j.write_text("[" * 100_000 + "]" * 100_000)
    code, out, err = run_main("merge", str(j))
    assert code == 2 and "nested too deeply" in err


# --------------------------------------------------------------------------- merge checks what it reads


def _shards(tmp_path):
    path = tmp_path / "s.jsonl"
    code, out, err = run_main("sweep", "add", "concat", *TINY, "--vary", "size=4,8", "--no-time", "-f", "jsonl",
                              "-o", str(path))
    assert code == 0, err
    return path, [json.loads(line) for line in path.read_text().splitlines()]


def _tamper(line, how):
    if how == "reports string":
        line.pop("report")
        line["reports"] = "x"
    elif how == "report string":
        line["report"] = "x"
    elif how == "cost string":
        line["report"]["cost"] = "x"
    elif how == "macs string":
        line["report"]["cost"]["macs"] = "12"
    elif how == "macs negative":
        line["report"]["cost"]["macs"] = -1
    elif how == "empty sweep":
        line["sweep"] = {}
    elif how == "values changed":
        line["report"]["sweep"]["values"]["size"] = 99
    elif how == "spec changed":
        line["report"]["sweep"]["spec"] = "gated"
    elif how == "index beyond":
        line["report"]["sweep"]["index"] = 4
    elif how == "index negative":
        line["report"]["sweep"]["index"] = -1
    elif how == "huge grid":
        line["sweep"]["vary"] = {"size": list(range(1, 100_001)), "batch": list(range(1, 11))}
    return line


@pytest.mark.parametrize("how", ["reports string", "report string", "cost string", "macs string", "macs negative",
                                 "empty sweep", "values changed", "spec changed", "index beyond", "index negative",
                                 "huge grid", "nan"])
def test_merge_refuses_tampered_files_naming_file_and_line(tmp_path, how):
    path, lines = _shards(tmp_path)
    if how == "nan":
        text = path.read_text().splitlines()
        text[1] = text[1].replace('"flops": ', '"flops": NaN, "x": ', 1)
        bad = "\n".join(text) + "\n"
    else:
        lines[1] = _tamper(lines[1], how)
        bad = "\n".join(json.dumps(x) for x in lines) + "\n"
    f = tmp_path / "bad.jsonl"
    f.write_text(bad)
    code, out, err = run_main("merge", str(f))
    assert code == 2, (how, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{f}:2" in err or (how in ("empty sweep", "huge grid") and str(f) in err), (how, err)


def test_merge_of_untampered_shards_still_works(tmp_path):
    path, lines = _shards(tmp_path)
    code, out, err = run_main("merge", str(path), "--json")
    assert code == 0, err
    assert len(json.loads(out)["reports"]) == 4


def test_json_output_is_standard_json():
    from fusioncli.render.json import dumps

    assert dumps({"a": float("nan"), "b": [float("inf"), 1.5]}) == '{"a": null, "b": [null, 1.5]}'


def test_merge_never_opens_special_files(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    t = time.perf_counter()
    code, out, err = run_main("merge", str(fifo))
    assert code == 2 and "not a regular file" in err and time.perf_counter() - t < 10
    code, out, err = run_main("merge", "/dev/zero")
    assert code == 2 and "not a regular file" in err


# --------------------------------------------------------------------------- output safety

EVIL = '''block = "add"
name = "=HYPERLINK(\\"x\\")\\u001b[2J[bold]boom"
description = "a\\u001b]0;title\\u0007b"
source = "+cmd|' /C calc'!A0"
inputs = ["4x4x4", "4x4x4"]
out = 4
'''


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_control_characters_never_reach_human_formats(tmp_path, fmt):
    p = tmp_path / "evil.toml"
    p.write_text(EVIL)
    for args in (("inspect", str(p)), ("compare", str(p), "add"), ("sweep", str(p), "--vary", "size=4,8")):
        code, out, err = run_main(*args, "--no-time", "-f", fmt)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out and "\x1b" not in err, (args, fmt)
        if fmt != "table" or args[0] == "inspect":  # (compare's and sweep's tables cut long names at 80 columns)
            assert "\\x1b[2J" in out  # shown, escaped
        if fmt == "table" and args[0] == "inspect":
            assert "[bold]boom" in out  # rich markup in a name is shown as typed, not applied


def test_csv_cells_a_spreadsheet_would_evaluate_are_neutralised(tmp_path):
    import csv as csv_module
    import io

    p = tmp_path / "evil.toml"
    p.write_text(EVIL)
    code, out, err = run_main("compare", str(p), "add", "--no-time", "-f", "csv")
    rows = list(csv_module.reader(io.StringIO(out)))
    assert rows[1][0].startswith("'=HYPERLINK")
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    from fusioncli.render.csv import _cell

    assert _cell("-12.5") == "-12.5" and _cell(-3) == -3 and _cell("-x") == "'-x" and _cell("@SUM(A1)") == "'@SUM(A1)"


def test_error_and_warning_lines_escape_control_characters():
    code, out, err = run_main("inspect", "a\x1b[2Jb", "--no-time")
    assert code == 2 and "\x1b" not in err and "a\\x1b[2Jb" in err


# --------------------------------------------------------------------------- streams and environment

FUSION = [sys.executable, "-m", "fusioncli"]


def _sh(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = " ".join(FUSION)
    return subprocess.run(["bash", "-c", script.replace("FUSION", cmd)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_closed_stdout_is_one_line_not_a_traceback(tmp_path):
    r = _sh("FUSION blocks >&-; echo rc=$?")
    assert "rc=1" in r.stdout or r.returncode == 0
    assert "Traceback" not in r.stderr and "standard output is closed" in r.stderr
    out = tmp_path / "o.json"
    r = _sh(f"FUSION inspect add --in 4x4x4 --in 4x4x4 --out 4 --no-time --json -o {out} >&-; echo rc=$? >&2")
    assert "rc=0" in r.stderr and json.loads(out.read_text())["reports"][0]["cost"]["flops"] == 64


def test_broken_pipe_is_a_quiet_141():
    # a table larger than a pipe's buffer (64 KiB: 900 rows, 80 kB), so the writer is still writing when head leaves
    sizes = ",".join(map(str, range(1, 901)))
    r = _sh(f"FUSION sweep add --in 4x4x4 --in 4x4x4 --out 4 --vary size={sizes} --no-time | head -1 >/dev/null; "
            "echo rc=${PIPESTATUS[0]}")
    assert "rc=141" in r.stdout and r.stderr == "", r.stderr
    # JSON larger than a pipe's buffer (64 KiB), so the writer is still writing when head leaves
    r = _sh("FUSION compare concat add gated multiscale cat dpt aff iaff sk skff bifpn asff fpn pan gff ffm se cbam "
            "segformer crossattn --no-time --json | head -c 5 >/dev/null; echo rc=${PIPESTATUS[0]}")  # 138 kB
    assert "rc=141" in r.stdout and r.stderr == "", r.stderr


def test_closed_stderr_keeps_the_exit_code():
    r = _sh("FUSION inspect add --in 4x4x4 --in 4x4x4 --out 4 --no-time >/dev/null 2>&-; echo rc=$?")
    assert "rc=0" in r.stdout
    r = _sh("FUSION inspect nosuch >/dev/null 2>&-; echo rc=$?")
    assert "rc=2" in r.stdout


@pytest.mark.parametrize("args", [["sweep", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--vary", "size=4,8",
                                   "--no-time"],
                                  ["compare", "add", "concat", "--in", "4x4x4", "--in", "4x4x4", "--out", "4",
                                   "--no-time"],
                                  ["inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--min-time",
                                   "0.01"]])
def test_ascii_terminal_gets_ascii_stand_ins(args):
    r = subprocess.run([*FUSION, *args], capture_output=True, timeout=300,
                       env={**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    r.stdout.decode("ascii")  # every byte ASCII
    assert b"Traceback" not in r.stderr
    if args[0] == "sweep":
        assert b"(metric ~ variable^k" in r.stdout  # the proportionality sign's stand-in


def test_read_only_home_gives_no_matplotlib_warnings(tmp_path):
    pytest.importorskip("matplotlib")
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    try:
        r = subprocess.run([*FUSION, "compare", "add", "concat", "--in", "4x4x4", "--in", "4x4x4", "--out", "4",
                            "--no-time", "--plot", str(tmp_path / "p.png")], capture_output=True, text=True, timeout=300,
                           env=env)
    finally:
        home.chmod(0o700)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and (tmp_path / "p.png").stat().st_size > 0


# --------------------------------------------------------------------------- signals


def _wait_for(predicate, timeout=120.0):
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if predicate():
            return True
        time.sleep(0.05)
    return False


SLOW_SWEEP = ["sweep", "concat", "crossattn", "--vary", "size=8,16,24,32,40,48,56,64", "--min-time", "0.3"]


@pytest.mark.parametrize("sig,code,word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_a_signal_mid_sweep_leaves_outputs_as_they_were(tmp_path, sig, code, word):
    import signal

    kept = tmp_path / "kept.jsonl"
    kept.write_text("the old content\n")
    p = subprocess.Popen([*FUSION, *SLOW_SWEEP, "-f", "jsonl", "-o", str(kept)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert _wait_for(lambda: any(f.name.startswith(".kept.jsonl") for f in tmp_path.iterdir()) or p.poll() is not None)
    time.sleep(1.0)  # inside the timed runs
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert err.strip().splitlines()[-1] == f"fusion: {word}" and "Traceback" not in err
    assert kept.read_text() == "the old content\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["kept.jsonl"]  # no temporary file left


def test_sigterm_keeps_finished_jsonl_lines_on_stdout(tmp_path):
    import signal

    out_path = tmp_path / "out.jsonl"
    with open(out_path, "w") as out:
        p = subprocess.Popen([*FUSION, *SLOW_SWEEP, "-f", "jsonl"], stdout=out, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: out_path.stat().st_size > 0 or p.poll() is not None)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    lines = out_path.read_text().splitlines()
    assert lines and all(json.loads(line)["report"]["sweep"]["index"] == i for i, line in enumerate(lines))


@pytest.mark.parametrize("delay", [3.0])
def test_ctrl_c_during_compile_is_honoured(delay):
    """The compile path (inductor's worker pool ignores SIGINT in its workers, never in fusion)."""
    import signal

    p = subprocess.Popen([*FUSION, "inspect", "concat", "--in", "8x8x8", "--in", "8x8x8", "--out", "8", "--compile",
                          "--min-time", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal starts it
    time.sleep(delay)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.strip().splitlines()[-1] == "fusion: interrupted", err


def test_a_sweep_grid_too_large_is_refused_before_it_is_built():
    sizes = ",".join(map(str, range(1, 401)))
    t = time.perf_counter()
    code, out, err = run_main("sweep", "add", "--vary", f"size={sizes}", "--vary", f"batch={sizes}", "--no-time")
    assert code == 2 and "160,000 grid points" in err and "at most 100,000" in err
    assert time.perf_counter() - t < 10
