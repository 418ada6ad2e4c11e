"""User blocks (issue 12): FILE.py:NAME, package.module:NAME, plugins, factories and instances, at any rank.

Every count below is derived by hand, term by term, from what the module computes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import fusioncli
from fusioncli import userblock

from cli_helpers import run_main

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"


def counts(spec, **kw):
    r = fusioncli.analyze(spec, time=False, **kw)
    return r.params["total"], r.cost.macs, r.cost.flops, r


def json_reports(*args):
    code, out, err = run_main(*args, "--no-time", "--format", "json")
    assert code == 0, err
    return json.loads(out)["reports"]


# --------------------------------------------------------------------------- the examples, by hand


def test_example_2d_concat_conv_bn_relu():
    params, macs, flops, r = counts(f"{EX}/my_fusion.py:MyFusion", inputs=["64x32x32", "64x32x32"], out=64)
    out = 64 * 32 * 32  # output elements
    assert params == 128 * 64 * 3 * 3 + 2 * 64  # conv (no bias) + BN weight and bias
    assert macs == out * (128 * 3 * 3)
    assert flops == 2 * macs + (2 + 2) * out + out  # conv, BN in eval (normalise 2 + affine 2), ReLU
    assert r.outputs == [[1, 64, 32, 32]] and r.output_paths == ["out"] and r.counted_on == "meta"
    assert r.options == {"kernel_size": 3, "in_channels": [64, 64], "out_channels": 64}


def test_example_tokens_cross_attention():
    n, m, c, h = 196, 49, 256, 8
    params, macs, flops, r = counts(f"{EX}/token_fusion.py:TokenCrossAttention", inputs=[f"{n}x{c}", f"{m}x{c}"],
                                    options={"heads": str(h)})
    hidden = 2 * c
    assert params == 3 * 2 * c + (c * c + c) + (c * 2 * c + 2 * c) + (c * c + c) + (c * hidden + hidden) + \
        (hidden * c + c)
    linear_macs = n * c * c + m * c * 2 * c + n * c * c + n * c * hidden + n * hidden * c  # q, kv, proj, mlp
    attn_macs = 2 * h * n * m * (c // h)  # q k^T and attn v
    assert macs == linear_macs + attn_macs
    extra = (7 * n * c + 7 * m * c + 7 * n * c  # three layer norms: statistics 5 + affine 2
             + n * c + m * 2 * c + n * c + n * hidden + n * c  # bias adds of the five linears
             + h * n * m + 5 * h * n * m  # the scale and the softmax
             + 2 * n * c + n * hidden)  # two residual adds, GELU
    assert flops == 2 * macs + extra
    assert r.outputs == [[1, n, c]] and r.options["in_channels"] == c  # annotated int: one width


def test_example_volume_factory_with_sibling_import():
    params, macs, flops, r = counts(f"{EX}/volume_fusion.py:volume_fusion", inputs=["32x8x32x32"] * 2, out=32)
    out = 32 * 8 * 32 * 32
    assert params == 64 * 32 * 27 + 2 * 32
    assert macs == out * 64 * 27
    assert flops == 2 * macs + 4 * out + out  # conv, BN3d eval, ReLU
    assert r.outputs == [[1, 32, 8, 32, 32]]
    p2, m2, f2, _ = counts(f"{EX}/volume_fusion.py:volume_fusion", inputs=["32x8x32x32"] * 2, out=32,
                           options={"norm": "false"})
    assert p2 == 64 * 32 * 27 + 32 and m2 == macs and f2 == 2 * macs + out + out  # bias add, ReLU


def test_done_when_compare_table_and_json():
    args = (f"{EX.relative_to(ROOT)}/my_fusion.py:MyFusion", "aff", "concat", "--in", "64x32x32", "--in", "64x32x32",
            "--out", "64")
    reports = json_reports("compare", *args)
    assert [r["name"] for r in reports] == ["MyFusion", "aff", "concat"]
    out = 64 * 32 * 32
    assert reports[0]["cost"]["macs"] == out * 128 * 9
    assert reports[2]["params"]["total"] == 128 * 64 + 64 and reports[2]["cost"]["macs"] == out * 128
    assert reports[1]["cost"] == fusioncli.analyze("aff", inputs=["64x32x32"] * 2, out=64, time=False).cost.to_dict()
    code, table, err = run_main("compare", *args, "--no-time")
    assert code == 0, err
    assert "MyFusion" in table and "aff" in table and "concat" in table and "75.50 M" in table


# --------------------------------------------------------------------------- torch.nn modules as user blocks


def test_transformer_decoder_layer_from_module_path():
    (r,) = json_reports("inspect", "torch.nn:TransformerDecoderLayer", "--set", "d_model=64", "--set", "nhead=4",
                        "--set", "batch_first=true", "--in", "100x64", "--in", "50x64")
    t, s, d, f = 100, 50, 64, 2048  # target tokens, memory tokens, width, feed-forward width
    mha = 3 * d * d + 3 * d + d * d + d
    assert r["params"]["total"] == 2 * mha + (d * f + f) + (f * d + d) + 3 * 2 * d
    self_attn = t * d * 3 * d + 2 * t * t * d + t * d * d  # in-projection, q k^T and attn v, out-projection
    cross_attn = t * d * d + s * d * 2 * d + 2 * t * s * d + t * d * d
    assert r["cost"]["macs"] == self_attn + cross_attn + t * d * f + t * f * d
    assert r["outputs"] == [[1, t, d]]


def test_bilinear_counts_its_trilinear():
    params, macs, flops, r = counts("torch.nn:Bilinear", inputs=["20", "30"],
                                    options={"in1_features": "20", "in2_features": "30", "out_features": "40"})
    assert params == 40 * 20 * 30 + 40
    b, i, j, o = 1, 20, 30, 40
    # ATen's _trilinear, unrolled over the O outputs: x (B,1,I,1) . W (1,O,I,J) summed over I,
    # then that (B,O,1,J) . y (B,1,1,J) summed over J; each slice added into a zeroed output
    assert macs == b * o * i * j + b * o * j
    assert flops == 2 * macs + b * o + b * o  # + the slices added into the output + the bias add
    assert r.cost.uncounted_ops == {}


def test_multihead_attention_with_kwargs():
    (r,) = json_reports("inspect", "torch.nn:MultiheadAttention", "--set", "embed_dim=64", "--set", "num_heads=4",
                        "--set", "batch_first=true", "--in", "query=100x64", "--in", "key=50x64",
                        "--in", "value=50x64", "--pack", "kwargs")
    lq, lk, e = 100, 50, 64
    assert r["params"]["total"] == 3 * e * e + 3 * e + e * e + e
    assert r["cost"]["macs"] == lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e
    assert r["outputs"] == [[1, lq, e], [1, lq, lk]] and r["output_paths"] == ["out[0]", "out[1]"]
    assert r["input_names"] == ["query", "key", "value"] and r["pack"] == "kwargs"


def test_conv3d_factory_from_the_api():
    def factory(in_channels: int, out_channels: int, k: int = 3) -> nn.Module:
        return nn.Conv3d(in_channels, out_channels, k)

    params, macs, flops, r = counts(factory, inputs=["4x6x8x10"], out=8)
    out = 8 * 4 * 6 * 8  # no padding: each spatial size shrinks by k - 1
    assert params == 8 * 4 * 27 + 8 and macs == out * 4 * 27 and flops == 2 * macs + out
    assert r.outputs == [[1, 8, 4, 6, 8]] and r.options == {"k": 3, "in_channels": 4, "out_channels": 8}
    _, macs5, _, _ = counts(factory, inputs=["4x6x8x10"], out=8, options={"k": 5})
    assert macs5 == 8 * 2 * 4 * 6 * 4 * 125


# --------------------------------------------------------------------------- calling conventions and outputs

PACKS = textwrap.dedent('''
    import torch
    from torch import nn

    class ListFuse(nn.Module):
        def __init__(self, in_channels: list[int], out_channels: int):
            super().__init__()
            self.proj = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False) for c in in_channels)

        def forward(self, xs):
            return sum(p(x) for p, x in zip(self.proj, xs))

    class DictFuse(nn.Module):
        def __init__(self, out_channels: int = 8):
            super().__init__()
            self.out_channels = out_channels

        def forward(self, feats):
            up = torch.nn.functional.interpolate(feats["p4"], scale_factor=2, mode="nearest")
            return {"fused": feats["p3"] + up, "levels": [feats["p3"], up]}

    class Needs(nn.Module):
        def __init__(self, width, depth: int, mode: str = "a"):
            super().__init__()

        def forward(self, x):
            return x

    class DataDependent(nn.Module):
        def __init__(self, in_channels: int):
            super().__init__()
            self.lin = nn.Linear(in_channels, in_channels)

        def forward(self, x, y):
            s = (x + y).mean().item()  # .item() cannot run on meta
            return self.lin(x) * (1.0 if s > -1e9 else 0.0)

    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("boom in forward")

    class BadInit(nn.Module):
        def __init__(self):
            super().__init__()
            raise RuntimeError("bad init")

    def not_a_module():
        return 3

    NUMBER = 5
''')


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("user") / "blocks.py"
    p.write_text(PACKS)
    return str(p)


def test_pack_list(user_file):
    params, macs, flops, r = counts(f"{user_file}:ListFuse", inputs=["16x8x8", "32x8x8"], out=8, pack="list")
    out = 8 * 8 * 8
    assert params == 16 * 8 + 32 * 8 and macs == out * (16 + 32)
    assert flops == 2 * macs + 2 * out  # sum() starts at 0: 0 + P1 and then + P2 are two adds


def test_pack_dict_and_nested_outputs(user_file):
    _, macs, flops, r = counts(f"{user_file}:DictFuse", inputs=["p3=8x16x16", "p4=8x8x8"], pack="dict")
    assert macs == 0 and flops == 8 * 16 * 16  # nearest resize moves data only; one add
    assert r.output_paths == ["out['fused']", "out['levels'][0]", "out['levels'][1]"]
    assert r.outputs == [[1, 8, 16, 16]] * 3 and r.input_names == ["p3", "p4"]


def test_meta_fallback_counts_on_cpu(user_file):
    _, macs, flops, r = counts(f"{user_file}:DataDependent", inputs=["8x16", "8x16"])
    assert r.counted_on == "cpu"
    n = 8 * 16
    assert macs == 8 * 16 * 16
    assert flops == n + (n + 1) + 2 * macs + n + n  # x + y, mean (n in + 1 out), linear + bias, * scalar


# --------------------------------------------------------------------------- the instance is left as it was


def test_instance_is_left_untouched():
    torch.manual_seed(1)
    block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    block.train()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    params, macs, flops, r = counts(block, inputs=["8x16x16"])
    out = 8 * 16 * 16
    assert params == 8 * 8 * 9 + 8 + 2 * 8 and macs == out * 8 * 9
    fusioncli.analyze(block, inputs=["8x16x16"], min_time=0.01)  # timing too
    after = block.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert block.training and all(p.device.type == "cpu" for p in block.parameters())
    for m in block.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    from torch.nn.modules import module as M

    assert not M._global_forward_hooks and not M._global_forward_pre_hooks
    with pytest.raises(fusioncli.SpecError, match="instance"):
        fusioncli.analyze(block, inputs=["8x16x16"], options={"x": 1}, time=False)


class TwoIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 8, 1)

    def forward(self, a, b):
        return self.conv(torch.cat([a, b], 1))


def test_api_compare_mixes_kinds_and_user_modules():
    block = TwoIn()
    env = fusioncli.compare(["concat", f"{EX}/my_fusion.py:MyFusion", block, "nosuchkind"],
                            inputs=["8x8x8", "8x8x8"], out=8, time=False)
    names = [e.name for e in env.reports]
    assert names[:3] == ["concat", "MyFusion", "TwoIn"] and env.failed[0].name == "nosuchkind"
    assert env.reports[1].cost.macs == 8 * 8 * 8 * 16 * 9 and env.reports[2].cost.macs == 8 * 8 * 8 * 16
    assert env.baseline == "concat" and env.to_dict()["reports"][1]["ratios"]["macs"] == 9.0


# --------------------------------------------------------------------------- presets, sweeps, options


def test_preset_block_path_is_relative_to_the_preset(tmp_path, monkeypatch):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "my.py").write_text((EX / "my_fusion.py").read_text())
    preset = tmp_path / "mine.toml"
    preset.write_text('block = "blocks/my.py:MyFusion"\ninputs = ["8x4x4", "8x4x4"]\nout = 4\n'
                      '[options]\nkernel_size = 1\n')
    monkeypatch.chdir("/")
    params, macs, _, r = counts(str(preset))
    assert params == 16 * 4 + 8 and macs == 4 * 4 * 4 * 16 and r.name == "mine"


def test_sweep_user_block_tokens_and_option():
    code, out, err = run_main("sweep", f"{EX}/token_fusion.py:TokenCrossAttention", "--in", "64x32", "--in",
                              "16x32", "--vary", "size=64,128", "--vary", "heads=2,4", "--no-time", "--json")
    assert code == 0, err
    env = json.loads(out)
    reports = env["reports"]
    assert [r["inputs"] for r in reports][:2] == [[[1, 64, 32], [1, 16, 32]]] * 2
    assert reports[2]["inputs"] == [[1, 128, 32], [1, 32, 32]]  # both token counts scaled alike
    assert reports[0]["options"]["heads"] == 2 and reports[1]["options"]["heads"] == 4
    params = {e["metric"]: e["exponent"] for e in env["sweep"]["exponents"] if e["variable"] == "size"}
    assert params["params"] == pytest.approx(0.0, abs=1e-9)


def test_sweep_channels_scales_in_and_out():
    code, out, err = run_main("sweep", f"{EX}/my_fusion.py:MyFusion", "--in", "8x4x4", "--in", "8x4x4",
                              "--out", "8", "--vary", "channels=8,16", "--no-time", "--json")
    assert code == 0, err
    r = json.loads(out)["reports"][1]
    assert r["options"]["in_channels"] == [16, 16] and r["options"]["out_channels"] == 16
    assert r["params"]["total"] == 32 * 16 * 9 + 2 * 16


def test_options_typed_by_signature():
    from fusioncli.arguments import OptionInfo, coerce_value
    from typing import Literal, Optional, Union, Callable

    assert coerce_value(OptionInfo("k", tuple[int, ...]), "1,3,5", field="f") == (1, 3, 5)
    assert coerce_value(OptionInfo("k", list[float]), "1,2.5", field="f") == [1.0, 2.5]
    assert coerce_value(OptionInfo("k", Optional[int]), "none", field="f") is None
    assert coerce_value(OptionInfo("k", Literal["a", "b"]), "b", field="f") == "b"
    assert coerce_value(OptionInfo("k", Literal[1, 2]), "2", field="f") == 2
    assert coerce_value(OptionInfo("k", Union[str, Callable]), "gelu", field="f") == "gelu"
    assert coerce_value(OptionInfo("k", float), "1e-5", field="f") == 1e-5
    with pytest.raises(fusioncli.SpecError, match="k: invalid value 'x'; allowed: an integer"):
        coerce_value(OptionInfo("k", int), "x", field="--set k")


# --------------------------------------------------------------------------- plugins


def _plugin_site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "fusionplug_demo.py").write_text(textwrap.dedent('''
        """A plugin's module."""
        from torch import nn

        class PlugFuse(nn.Module):
            """Sum of 1x1 projections (the plugin's block)."""

            def __init__(self, in_channels: list, out_channels: int, bias: bool = False):
                super().__init__()
                self.proj = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=bias) for c in in_channels)

            def forward(self, *xs):
                out = self.proj[0](xs[0])
                for p, x in zip(list(self.proj)[1:], xs[1:]):
                    out = out + p(x)
                return out
    '''))
    info = site / "fusionplug_demo-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fusionplug-demo\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[fusioncli.blocks]\nplugfuse = fusionplug_demo:PlugFuse\n")
    return site


def test_plugin_listed_without_torch_and_analysed(tmp_path, monkeypatch):
    site = _plugin_site(tmp_path)
    code = ("import sys\nfrom fusioncli.cli.entry import run\nfrom fusioncli.cli import app\n"
            "rc = run(app, ['blocks', '--json'])\nprint('TORCH', 'torch' in sys.modules, rc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    listing, _, tail = p.stdout.rpartition("}")
    rows = json.loads(listing + "}")["blocks"]
    plug = [r for r in rows if r["kind"] == "plugfuse"]
    assert plug and plug[0]["plugin"] == "fusionplug-demo 1.2" and "TORCH False 0" in tail

    monkeypatch.syspath_prepend(str(site))
    userblock.plugin_kinds.cache_clear()
    try:
        params, macs, flops, r = counts("plugfuse", inputs=["8x4x4", "16x4x4"], out=4)
        out = 4 * 4 * 4
        assert params == 8 * 4 + 16 * 4 and macs == out * (8 + 16) and flops == 2 * macs + out
        assert r.block == "plugfuse"
        code, out, err = run_main("explain", "plugfuse")
        assert code == 0 and "fusionplug-demo 1.2" in out and "Sum of 1x1 projections" in out and "bias" in out
    finally:
        userblock.plugin_kinds.cache_clear()


# --------------------------------------------------------------------------- bad input: one line, right code

BAD = [
    (("inspect", "{f}:Nope", "--in", "8"), 2, ["SPEC: invalid value", "has no 'Nope'", "Needs"]),
    (("inspect", "{f}:ListFus", "--in", "8"), 2, ["(did you mean 'ListFuse'?)"]),
    (("inspect", "{f}:NUMBER", "--in", "8"), 2, ["is 5 (int), not callable"]),
    (("inspect", "{f}:not_a_module", "--in", "8"), 2, ["returned 3 (int), not an nn.Module"]),
    (("inspect", "{f}:BadInit", "--in", "8"), 2, ["blocks.py:", "constructing BadInit failed: RuntimeError: bad init"]),
    (("inspect", "{f}:Broken", "--in", "8x2x2"), 1, ["blocks.py:", "forward of Broken failed", "ValueError: boom"]),
    (("inspect", "{f}:Needs", "--in", "8"), 2, ["--set: Needs needs width, depth (no default)"]),
    (("inspect", "{f}:Needs", "--in", "8", "--set", "width=1", "--set", "depth=x"), 2,
     ["--set depth: invalid value 'x'; allowed: an integer"]),
    (("inspect", "{f}:Needs", "--in", "8", "--set", "width=1", "--set", "deph=1"), 2,
     ["--set deph", "options of 'Needs': width, depth, mode", "(did you mean 'depth'?)"]),
    (("inspect", "{f}:ListFuse", "--in", "8x2x2", "--out", "2", "--set", "in_channels=3"), 2,
     ["in_channels: comes from --in"]),
    (("inspect", "{f}:ListFuse", "--in", "8x2x2"), 2, ["--out: ListFuse takes out_channels (no default)"]),
    (("inspect", "{f}:ListFuse", "--in", "a=8x2x2", "--out", "2"), 2, ["need --pack dict or --pack kwargs"]),
    (("inspect", "{f}:ListFuse", "--in", "8x2x2", "--pack", "dict", "--out", "2"), 2, ["--pack: 'dict' passes named"]),
    (("inspect", "{f}:ListFuse", "--in", "a=8x2x2", "--in", "8x2x2", "--pack", "dict"), 2, ["name every input or none"]),
    (("inspect", "{f}:ListFuse"), 2, ["--in: needed for the user block"]),
    # without --in, the name and the options are still checked first: the first mistake is named
    (("inspect", "{f}:ListFus"), 2, ["(did you mean 'ListFuse'?)"]),
    (("inspect", "{f}:Needs", "--set", "deph=1"), 2, ["--set deph", "(did you mean 'depth'?)"]),
    (("inspect", "{f}:Needs", "--set", "depth=x"), 2, ["--set depth: invalid value 'x'; allowed: an integer"]),
    (("sweep", "{f}:Needs", "--set", "deph=1", "--vary", "size=2,4"), 2, ["--set deph", "(did you mean 'depth'?)"]),
    (("compare", "{f}:ListFus", "concat"), 2, ["(did you mean 'ListFuse'?)"]),
    (("inspect", "{d}/missing.py:X", "--in", "8"), 2, ["not found"]),
    (("inspect", "{f}", "--in", "8"), 2, ["is a Python file; name the block in it"]),
    (("inspect", "{d}/notes.txt:X", "--in", "8"), 2, ["is not a Python file"]),
    (("inspect", "nosuchpkg_xyz.mod:X", "--in", "8"), 2, ["module 'nosuchpkg_xyz' not found"]),
    (("inspect", "{d}/bad_import.py:X", "--in", "8"), 2, ["bad_import.py:3: importing", "ZeroDivisionError"]),
    (("inspect", "concat", "--in", "196x64", "--in", "196x64"), 2, ["'concat' takes CxHxW maps or CxDxHxW volumes"]),
    (("inspect", "concat", "--pack", "list"), 2, ["--pack: 'concat' takes its inputs as separate"]),
    (("sweep", "{f}:DictFuse", "--in", "8", "--vary", "size=2,4"), 2, ["--vary size: input 1 (8) is a vector"]),
    (("inspect", "{f}:ListFuse", "--in", "8x2x2x2x2x2", "--out", "2"), 2, ["1 to 4 positive integers"]),
]


@pytest.mark.parametrize("args,code,needles", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_user_input(args, code, needles, user_file, tmp_path):
    d = tmp_path
    (d / "notes.txt").write_text("x")
    (d / "bad_import.py").write_text("import torch\n\nx = 1 / 0\n")
    args = [a.format(f=user_file, d=d) for a in args]
    rc, out, err = run_main(*args, "--no-time")
    assert rc == code, (rc, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n.format(f=user_file) in err, (n, err)


def test_debug_shows_the_traceback(user_file):
    rc, out, err = run_main("--debug", "inspect", f"{user_file}:Broken", "--in", "8x2x2", "--no-time")
    assert rc == 1 and "Traceback" in err and "boom in forward" in err


def test_listing_and_completion_execute_no_user_file(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "evil.py"
    f.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    from fusioncli.cli.options import complete_spec

    complete_spec(str(f))
    rc, out, err = run_main("blocks")
    assert rc == 0 and not marker.exists()
    rc, out, err = run_main("inspect", f"{f}:X", "--in", "8", "--no-time")  # inspecting does run it
    assert rc == 2 and marker.exists()
