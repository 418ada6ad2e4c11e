"""The op counter: worked examples, bytes moved, peak activations, uncounted ops, per-op formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fusioncli.analysis import analyze
from fusioncli.analysis.cost import CostCounter


def count(fn, *shapes):
    xs = [torch.empty(s, device="meta") for s in shapes]
    with torch.no_grad(), CostCounter() as c:
        fn(*xs)
    return c.result()


def test_worked_examples_from_the_convention():
    add = analyze("add", inputs=["64x32x32", "64x32x32"], out=64, time=False)
    assert (add.cost.macs, add.cost.flops) == (0, 65_536)
    concat = analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False)
    assert (concat.cost.macs, concat.cost.flops) == (8_388_608, 16_842_752)


def test_concat_bytes_and_peak_activation():
    r = analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False)
    act = 64 * 32 * 32 * 4  # one float32 input map
    cat_read, cat_write = 2 * act, 2 * act
    conv_read, conv_write = 2 * act + 128 * 64 * 4 + 64 * 4, act
    assert r.cost.bytes.to_dict() == {"read": cat_read + conv_read, "written": cat_write + conv_write,
                                      "total": cat_read + conv_read + cat_write + conv_write}
    assert r.memory.peak_activation_bytes == 2 * act + act  # the concatenation, alive while the conv writes
    assert r.memory.param_bytes == (128 * 64 + 64) * 4
    assert r.cost.arithmetic_intensity == r.cost.flops / r.cost.bytes.total
    assert r.cost.by_op["aten.convolution"]["macs"] == 8_388_608
    assert r.cost.by_module["conv"]["flops"] == 16_842_752


def test_cost_and_memory_serialise_in_one_form_and_read_back():
    import json

    from fusioncli.report import entry_from_dict

    r = analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False)
    d = json.loads(json.dumps(r.to_dict()))
    act = 64 * 32 * 32 * 4
    assert d["cost"]["bytes"]["total"] == r.cost.bytes.read + r.cost.bytes.written
    assert d["cost"]["arithmetic_intensity"] == r.cost.flops / r.cost.bytes.total
    # the largest op is the cat (reads 2 maps, writes their concatenation: 4 maps), not the conv
    # (reads the concatenation, weights and bias, writes 1 map: 3 maps + 33,024 B)
    assert d["memory"] == {"param_bytes": (128 * 64 + 64) * 4, "buffer_bytes": 0, "input_bytes": 2 * act,
                           "output_bytes": act, "peak_activation_bytes": 3 * act, "largest_op_bytes": 4 * act}
    assert entry_from_dict(d) == r  # breakdowns included


def test_bfloat16_halves_bytes():
    f32 = analyze("add", inputs=["8x4x4", "8x4x4"], out=8, time=False)
    bf16 = analyze("add", inputs=["8x4x4", "8x4x4"], out=8, time=False, dtype="bfloat16")
    assert bf16.cost.bytes.total * 2 == f32.cost.bytes.total
    assert bf16.cost.flops == f32.cost.flops


def test_elementwise_formulas():
    n = 2 * 3 * 4 * 5
    shape = (2, 3, 4, 5)
    assert count(torch.sigmoid, shape).total.flops == n
    assert count(lambda x: torch.softmax(x, 1), shape).total.flops == 5 * n
    assert count(lambda x: x.mean((2, 3)), shape).total.flops == n + 2 * 3
    assert count(lambda x: F.avg_pool2d(x, 2), shape).total.flops == 4 * (2 * 3 * 2 * 2)
    assert count(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), shape).total.flops == 7 * 4 * n
    assert count(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), shape).total.flops == 0
    assert count(lambda x: torch.addcmul(x, x, x), shape).total.flops == 2 * n


def test_normalisation_formulas():
    bn = torch.nn.BatchNorm2d(3, device="meta").eval()
    assert count(bn, (2, 3, 4, 5)).total.flops == 4 * 120  # inference: normalise 2 + affine 2
    ln = torch.nn.LayerNorm(5, device="meta")
    assert count(ln, (2, 3, 4, 5)).total.flops == 7 * 120  # statistics 5 + affine 2
    gn = torch.nn.GroupNorm(1, 3, affine=False, device="meta")
    assert count(gn, (2, 3, 4, 5)).total.flops == 5 * 120


def test_matmul_macs_and_bias():
    lin = torch.nn.Linear(6, 4, device="meta")
    r = count(lin, (3, 6))  # addmm: 3*6*4 MACs, bias add 3*4
    assert (r.total.macs, r.total.flops) == (72, 2 * 72 + 12)
    r = count(lambda a, b: a @ b, (2, 3, 4), (2, 4, 5))
    assert r.total.macs == 2 * 3 * 4 * 5


def test_attention_meta_equals_cpu():
    shapes = [(1, 2, 16, 8), (1, 2, 12, 8), (1, 2, 12, 8)]
    results = []
    for device in ("meta", "cpu"):
        xs = [torch.zeros(s, device=device) for s in shapes]
        with torch.no_grad(), CostCounter() as c:
            F.scaled_dot_product_attention(*xs)
        results.append((c.result().total.macs, c.result().total.flops, c.result().uncounted))
    assert results[0] == results[1]
    macs = 2 * 16 * 12 * 8 * 2
    assert results[0][0] == macs
    assert results[0][1] == 2 * macs + 2 * (16 + 12) * 8 + 5 * 2 * 16 * 12


def test_uncounted_ops_are_listed_not_zeroed():
    r = count(lambda x: torch.fft.fft2(x).real, (1, 2, 4, 4))
    assert r.uncounted, "an op without a formula must be listed"


def test_unused_parameters_reported():
    class Half(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Conv2d(2, 2, 1)
            self.unused = torch.nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.used(x)

    m = Half().to("meta")
    x = torch.empty(1, 2, 4, 4, device="meta")
    with torch.no_grad(), CostCounter() as c:
        m(x)
    touched = c.result().touched
    unused = [n for n, p in m.named_parameters() if id(p) not in touched]
    assert unused == ["unused.weight", "unused.bias"]


def test_meta_counting_is_resolution_independent_in_memory():
    # a 4096x4096 input analysed without allocating activations
    r = analyze("concat", inputs=["64x4096x4096", "64x4096x4096"], out=64, time=False)
    assert r.cost.macs == 128 * 64 * 4096 * 4096
    assert r.memory.peak_activation_bytes == 3 * 64 * 4096 * 4096 * 4


def test_counter_leaves_no_global_module_hooks():
    from torch.nn.modules import module as nn_module

    before = (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks))
    count(lambda x: torch.fft.fft2(x).real, (1, 2, 4, 4))  # re-enters the mode to try a decomposition
    count(torch.nn.Conv2d(2, 2, 1, device="meta"), (1, 2, 4, 4))
    assert (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks)) == before


def test_meta_shortcuts_match_torch_shapes():
    """The shape-only results used on meta equal what torch computes on CPU."""
    from fusioncli.analysis.metashapes import meta_shortcut

    aten = torch.ops.aten
    cases = [
        (aten.convolution.default, lambda d: (torch.zeros(1, 4, 17, 12, device=d), torch.zeros(6, 2, 3, 5, device=d),
                                              None, [2, 1], [1, 2], [2, 1], False, [0, 0], 2)),
        (aten.max_pool2d_with_indices.default, lambda d: (torch.zeros(1, 2, 15, 8, device=d), [3, 3], [2, 2], [1, 1],
                                                          [1, 1], True)),
        (aten.avg_pool2d.default, lambda d: (torch.zeros(1, 2, 9, 7, device=d), [2, 2], [], [0, 0], True)),
        (aten.cat.default, lambda d: ([torch.zeros(1, 2, 3, device=d), torch.zeros(1, 5, 3, device=d)], 1)),
        (aten.mean.dim, lambda d: (torch.zeros(2, 3, 4, 5, device=d), [-1, -2], True)),
        (aten.add.Tensor, lambda d: (torch.zeros(2, 1, 4, device=d), torch.zeros(3, 1, device=d))),
        (aten.eq.Tensor, lambda d: (torch.zeros(2, 1, 4, device=d), torch.zeros(3, 1, device=d))),
        (aten.upsample_bilinear2d.default, lambda d: (torch.zeros(1, 2, 3, 4, device=d), [7, 9], False)),
        (aten.native_layer_norm.default, lambda d: (torch.zeros(2, 3, 8, device=d), [8], None, None, 1e-5)),
        (aten.mm.default, lambda d: (torch.zeros(5, 3, device=d), torch.zeros(3, 7, device=d))),
        (aten.addmm.default, lambda d: (torch.zeros(7, device=d), torch.zeros(5, 3, device=d),
                                        torch.zeros(3, 7, device=d))),
        (aten.bmm.default, lambda d: (torch.zeros(2, 5, 3, device=d), torch.zeros(2, 3, 7, device=d))),
        # backward ops of a training step: every gradient an output_mask asks for
        (aten.convolution_backward.default, lambda d: (
            torch.zeros(1, 6, 8, 12, device=d), torch.zeros(1, 4, 17, 12, device=d), torch.zeros(6, 2, 3, 5, device=d),
            [6], [2, 1], [1, 2], [2, 1], False, [0, 0], 2, [True, True, True])),
        (aten.convolution_backward.default, lambda d: (
            torch.zeros(1, 6, 8, 12, device=d), torch.zeros(1, 4, 17, 12, device=d), torch.zeros(6, 2, 3, 5, device=d),
            None, [2, 1], [1, 2], [2, 1], False, [0, 0], 2, [True, False, False])),
        (aten.native_batch_norm_backward.default, lambda d: (
            torch.zeros(2, 3, 4, 5, device=d), torch.zeros(2, 3, 4, 5, device=d), torch.ones(3, device=d),
            torch.zeros(3, device=d), torch.ones(3, device=d), None, None, False, 1e-5, [True, True, True])),
        (aten.native_layer_norm_backward.default, lambda d: (
            torch.zeros(2, 3, 8, device=d), torch.zeros(2, 3, 8, device=d), [8], torch.zeros(2, 3, 1, device=d),
            torch.ones(2, 3, 1, device=d), torch.ones(8, device=d), torch.zeros(8, device=d), [True, True, True])),
        (aten.threshold_backward.default, lambda d: (torch.zeros(2, 3, 4, device=d), torch.zeros(2, 3, 4, device=d),
                                                     0.0)),
        (aten._softmax_backward_data.default, lambda d: (torch.zeros(2, 3, 4, device=d), torch.zeros(2, 3, 4, device=d),
                                                         -1, torch.float32)),
        (aten.upsample_bilinear2d_backward.default, lambda d: (torch.zeros(1, 2, 7, 9, device=d), [7, 9],
                                                               [1, 2, 3, 4], False)),
        (aten.max_pool2d_with_indices_backward.default, lambda d: (
            torch.zeros(1, 2, 8, 5, device=d), torch.zeros(1, 2, 15, 8, device=d), [3, 3], [2, 2], [1, 1], [1, 1], True,
            torch.zeros(1, 2, 8, 5, dtype=torch.int64, device=d))),
        (aten.stack.default, lambda d: ([torch.zeros(2, 3, device=d), torch.zeros(2, 3, device=d)], -1)),
        (aten.repeat.default, lambda d: (torch.zeros(2, 3, device=d), [4, 1, 2])),
        (aten.pixel_shuffle.default, lambda d: (torch.zeros(1, 2, 12, 3, 5, device=d), 2)),
        (aten.pixel_unshuffle.default, lambda d: (torch.zeros(1, 3, 4, 6, device=d), 2)),
        (aten.im2col.default, lambda d: (torch.zeros(2, 3, 7, 6, device=d), [3, 3], [1, 1], [1, 1], [2, 1])),
        (aten.grid_sampler_2d.default, lambda d: (torch.zeros(2, 3, 5, 6, device=d), torch.zeros(2, 4, 7, 2, device=d),
                                                  0, 0, False)),
    ]
    for func, make in cases:
        meta = meta_shortcut(func, make("meta"))
        real = func(*make("cpu"))
        meta = meta if isinstance(meta, tuple) else (meta,)
        real = real if isinstance(real, tuple) else (real,)
        for m, r in zip(meta, real):
            assert (m is None) == (r is None or (func is aten.convolution_backward.default and r.numel() == 0)), func
            if m is not None:
                assert tuple(m.shape) == tuple(r.shape) and m.dtype == r.dtype, func
    ranges = [(aten.arange.default, (7,), {}), (aten.arange.start, (2, 9), {"dtype": torch.float32}),
              (aten.arange.start_step, (0.5, 3.0, 0.75), {}), (aten.linspace.default, (-1.0, 1.0, 5), {})]
    for func, args, kwargs in ranges:
        meta = meta_shortcut(func, args, {**kwargs, "device": torch.device("meta")})
        real = func(*args, **kwargs)
        assert (meta.shape, meta.dtype) == (real.shape, real.dtype), func


def test_counting_imports_neither_dynamo_nor_sympy():
    import subprocess
    import sys

    # every block: one that reaches a Python meta kernel calling torch._check (mm, bmm, ...)
    # pulls in sympy, ~0.5 s of `fusion inspect --no-time` (issue 8)
    code = ("import sys; from fusioncli import list_fusions; from fusioncli.analysis import analyze; "
            "[analyze(k, time=False) for k in list_fusions()]; "
            "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # torch 2.4's meta kernel of uniform_ (not 2.13's) (every weight's initialisation) calls torch._check, so
    # building any block on the meta device imports sympy there: only dynamo can be kept out
    probe = ("import sys, torch; torch.empty(3, 3, device='meta').uniform_(); print('sympy' in sys.modules)")
    init_imports_sympy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                        check=True).stdout.split() == ["True"]
    assert out.stdout.split() == ["False", str(init_imports_sympy)]


def test_compile_after_counting_still_compiles_with_torchs_wrappers():
    """The counting pass answers ``import torch._dynamo`` with a stand-in whose ``disable`` passes
    the function through (and torch caches that on the function). After it, in the same process,
    ``torch.compile`` must still compile, and every cached wrapper must be torch's, not the stand-in's."""
    import subprocess
    import sys

    code = """
import gc, sys, types, torch
from fusioncli import create_fusion
from fusioncli.analysis import analyze

def cached():  # functions carrying a value that is the function itself: stand-in pass-throughs left behind
    # type(), not isinstance: dead weak proxies raise on isinstance; torch's and fusion's functions (networkx
    # decorators, say, keep functions that refer to themselves for their own reasons)
    fns = [o for o in gc.get_objects() if type(o) is types.FunctionType and (o.__module__ or "").startswith(("torch", "fusioncli"))]
    return [f for f in fns if any(v is f for v in vars(f).values())], fns

analyze("crossattn", time=False)  # CostCounter.__torch_dispatch__ goes through torch._disable_dynamo
left, _ = cached()
assert not left, [f.__qualname__ for f in left]
assert "torch._dynamo" not in sys.modules
block = create_fusion("aff", in_channels=[8, 8], out_channels=8).eval()
x = torch.randn(1, 8, 8, 8)
compiled = torch.compile(block, backend="eager")
with torch.no_grad():
    torch.testing.assert_close(compiled(x, x), block(x, x))
import torch._dynamo
assert type(sys.modules["torch._dynamo"]) is types.ModuleType and torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
analyze("crossattn", time=False)  # the same kernels again: now wrapped by the real torch._dynamo
left, fns = cached()
assert not left, [f.__qualname__ for f in left]
wrapped = [f for f in fns if "__dynamo_disable" in vars(f)]
print(len(wrapped))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) >= 1  # torch's own wrappers were cached, on the second pass
