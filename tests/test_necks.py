"""Necks: hand-derived parameters and MACs, the wiring against functional transcriptions of the reference
code, every node kind in every topology, module swaps, the per-node report, and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import necks_reference as ref
from cli_helpers import run_main
from fusioncli import analyze, registry
from fusioncli.backbones import BACKBONES
from fusioncli.errors import FusionError, SpecError


def build(kind, widths, out, **options):
    torch.manual_seed(0)
    neck = registry.create_fusion(kind, widths, out, **options).eval()
    for m in neck.modules():  # non-trivial BatchNorm statistics, so a wrong BN wiring shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return neck


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def maps(widths, sizes, batch=2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, c, *((s, s) if isinstance(s, int) else s), generator=g) for c, s in zip(widths, sizes)]


def conv(cin, cout, k):  # a conv's parameters: weights + bias
    return k * k * cin * cout + cout


# --------------------------------------------------------------------------- parameters, derived by hand


def test_fpn_parameters():
    # torchvision FeaturePyramidNetwork([256, 512, 1024, 2048], 256) / mmdet FPN(..., 256): laterals + 3x3 outputs
    laterals = conv(256, 256, 1) + conv(512, 256, 1) + conv(1024, 256, 1) + conv(2048, 256, 1)
    outputs = 4 * conv(256, 256, 3)
    assert laterals == 984_064 and outputs == 2_360_320
    assert count(build("neck:fpn", [256, 512, 1024, 2048], 256)) == laterals + outputs == 3_344_384
    # P6 from C5 (on input), P7 from ReLU(P6): stride-2 3x3 convs
    small = conv(16, 8, 1) + conv(32, 8, 1) + conv(64, 8, 1) + 3 * conv(8, 8, 3) + conv(64, 8, 3) + conv(8, 8, 3)
    assert count(build("neck:fpn", [16, 32, 64], 8, extra_levels=2, extra="conv", extra_source="input",
                       extra_relu=True)) == small == 7_872


def test_pafpn_parameters():
    fpn = 3_344_384
    bottom_up = 3 * conv(256, 256, 3) + 3 * conv(256, 256, 3)  # downsample convs, pafpn convs
    assert count(build("neck:pafpn", [256, 512, 1024, 2048], 256)) == fpn + bottom_up == 6_884_864
    # node concat: each merge is a 1x1 conv from 2C
    lat = conv(16, 8, 1) + conv(32, 8, 1) + conv(64, 8, 1)
    merges = 4 * conv(16, 8, 1)  # 2 top-down, 2 bottom-up
    assert count(build("neck:pafpn", [16, 32, 64], 8, node="concat")) == lat + merges + 3 * conv(8, 8, 3) \
        + 2 * conv(8, 8, 3) + 2 * conv(8, 8, 3) == 5_552


def bifpn_params(widths, c, repeats):
    """Extra P6 (conv1x1 + BN when the width differs, then a pool), P7 (a pool); first-layer edge projections
    (P3_0 feeds 1 node, P4_0 and P5_0 feed 2); per layer 8 nodes of (weights + dw 3x3 + pw 1x1 + BN)."""
    proj = lambda cin: 0 if cin == c else cin * c + c + 2 * c  # noqa: E731
    p6 = proj(widths[2])
    edges = proj(widths[0]) + 2 * proj(widths[1]) + 2 * proj(widths[2])
    weights = 4 * 2 + 3 * 3 + 2  # td nodes: 2 inputs; out P4-P6: 3; out P7: 2
    node = 9 * c + c * c + c + 2 * c
    return p6 + edges + repeats * (8 * node + weights)


def test_bifpn_parameters():
    d0 = bifpn_params([40, 112, 320], 64, 3)
    assert d0 == (320 * 64 + 192) + (40 * 64 + 192) + 2 * (112 * 64 + 192) + 2 * (320 * 64 + 192) \
        + 3 * (8 * 4_864 + 19) == 196_281
    assert count(build("neck:bifpn", [40, 112, 320], 64)) == d0
    assert count(build("neck:bifpn", [8, 16, 32], 16, repeats=2)) == bifpn_params([8, 16, 32], 16, 2) == 9_062


def test_dpt_parameters():
    def dpt(widths, f):
        rn = sum(9 * c * f for c in widths)  # no bias
        rcu = 2 * conv(f, f, 3)
        return rn + rcu * (1 + 2 * (len(widths) - 1)) + len(widths) * conv(f, f, 1)

    assert count(build("neck:dpt", [96, 192, 384, 768], 256)) == dpt([96, 192, 384, 768], 256) == 11_842_048
    assert count(build("neck:dpt", [8, 16, 32], 16)) == dpt([8, 16, 32], 16) == 32_080
    # node.variant=reference: refinenet4's never-run resConfUnit1 as well, 2 * (9F^2 + F) = 1,180,160 at F = 256,
    # as the reference's sum(p.numel()); the report lists its four tensors as unused
    ref = build("neck:dpt", [96, 192, 384, 768], 256, **{"node.variant": "reference"})
    assert count(ref) == 11_842_048 + 2 * conv(256, 256, 3) == 11_842_048 + 1_180_160
    r = analyze("neck:dpt", inputs=["8x16x16", "16x8x8", "32x4x4"], out=16, options={"node.variant": "reference"},
                time=False)
    assert r.params["total"] == 32_080 + 2 * conv(16, 16, 3)
    assert sorted(r.unused_params) == [f"nodes.fuse_P4.op.rcu1.conv{i}.{t}" for i in (1, 2) for t in ("bias", "weight")]


def test_unet_parameters():
    def level(c_low, c, cin_block):
        return (4 * c_low * c + c) + conv(cin_block, c, 3) + conv(c, c, 3)

    paper = sum(level(2 * c, c, 2 * c) for c in (512, 256, 128, 64))  # cat: the block takes 2C
    assert count(build("neck:unet", [64, 128, 256, 512, 1024], 64)) == paper == 12_188_480
    # node add (C), BN after each conv, no conv bias
    bn = (4 * 32 * 16 + 16) + 2 * (9 * 16 * 16 + 32) + (4 * 16 * 8 + 8) + 2 * (9 * 8 * 8 + 16)
    assert count(build("neck:unet", [8, 16, 32], 8, node="add", norm="bn")) == bn == 8_440


def test_segformer_neck_parameters_and_the_block():
    paper = sum(conv(c, 256, 1) for c in (32, 64, 160, 256)) + conv(4 * 256, 256, 1)
    neck = build("neck:segformer", [32, 64, 160, 256], 256)
    assert count(neck) == paper == 394_496 == count(registry.create_fusion("segformer", [32, 64, 160, 256], 256))
    reference = (8 + 16 + 32) * 16 + 3 * 2 * 16 + 3 * 16 * 16 + 2 * 16  # ConvModules: no bias, BN
    assert count(build("neck:segformer", [8, 16, 32], 16, variant="reference")) == reference == 1_792


# --------------------------------------------------------------------------- wiring against the reference code


def outputs(neck, xs):
    with torch.no_grad():
        return list(neck(*xs).values())


def close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"extra_levels": 2, "extra": "conv", "extra_source": "input"},
                                     {"extra_levels": 2, "extra": "conv", "extra_relu": True},
                                     {"extra_levels": 1}])
def test_fpn_wiring_matches_mmdet(options):
    widths, sizes = [8, 16, 32], [(20, 26), (10, 13), (5, 7)]  # odd sizes: nearest to the exact size
    neck = build("neck:fpn", widths, 8, first_level=3, **options)
    xs = maps(widths, sizes)
    with torch.no_grad():
        close(outputs(neck, xs), ref.fpn(neck.state_dict(), xs, first=3, **options))


def test_pafpn_wiring_matches_mmdet():
    widths, sizes = [8, 16, 32], [16, 8, 4]
    neck = build("neck:pafpn", widths, 8, extra_levels=1)
    xs = maps(widths, sizes)
    with torch.no_grad():
        close(outputs(neck, xs), ref.fpn(neck.state_dict(), xs, first=2, extra_levels=1, pafpn=True))


@pytest.mark.parametrize("pad,sizes", [("symmetric", [32, 16, 8]), ("same", [32, 16, 8]), ("same", [20, 10, 5])])
def test_bifpn_wiring_matches_rwightman(pad, sizes):
    """pad=same against zylo117's MaxPool2dStaticSamePadding in every pool (odd sizes: 5 -> 3 -> 2)."""
    widths = [8, 16, 32]
    neck = build("neck:bifpn", widths, 16, repeats=2, pad=pad)
    for name, p in neck.named_parameters():
        if name.endswith("edge_weights"):
            p.data.uniform_(0.2, 1.5)  # not all ones: a weight applied to the wrong input shows
    xs = maps(widths, sizes)
    with torch.no_grad():
        got = outputs(neck, xs)
        close(got, ref.bifpn(neck.state_dict(), xs, width=16, repeats=2, same=pad == "same"))
        if pad == "same":  # the windows moved: not what the symmetric pools give
            other = ref.bifpn(neck.state_dict(), xs, width=16, repeats=2)
            assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(got, other))


@pytest.mark.parametrize("upsample", ["scale", "size"])
def test_dpt_wiring_matches_the_reference(upsample):
    widths = [8, 16, 32, 32]
    sizes = [24, 12, 6, 3] if upsample == "scale" else [28, 14, 7, 4]  # Depth Anything: 7 -> 4, 4 upsampled to 7
    neck = build("neck:dpt", widths, 16, upsample=upsample)
    xs = maps(widths, sizes)
    with torch.no_grad():
        close(outputs(neck, xs), [ref.dpt(neck.state_dict(), xs, first=2, size_mode=upsample == "size")])


@pytest.mark.parametrize("padding,sizes", [("same", [33, 16, 8]), ("valid", [60, 28, 12])])
def test_unet_wiring_matches_the_reference(padding, sizes):
    widths = [8, 16, 32]
    neck = build("neck:unet", widths, 8, padding=padding)
    xs = maps(widths, sizes)
    with torch.no_grad():
        close(outputs(neck, xs), ref.unet(neck.state_dict(), xs, first=0, padding=padding))


def test_unet_paper_shapes():
    r = analyze("unet-original-decoder", time=False)
    # 28 -> up 56 (crop 64 -> 56) -> 54 -> 52; 104 (136) -> 100; 200 (280) -> 196; 392 (568) -> 388
    assert r.outputs == [[1, 64, 388, 388], [1, 128, 196, 196], [1, 256, 100, 100], [1, 512, 52, 52]]


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_segformer_neck_computes_the_segformer_block(variant):
    widths, sizes = [8, 16, 32], [16, 8, 4]
    neck = build("neck:segformer", widths, 16, variant=variant)
    block = registry.create_fusion("segformer", widths, 16, variant=variant).eval()
    state = {}
    for i in range(len(widths)):
        for k, v in neck.nodes[f"linear_P{2 + i}"].op.state_dict().items():
            state[f"linear.{i}.{k}"] = v
    fuse = neck.nodes["fuse"].op
    if variant == "paper":
        state.update({f"fuse.{k}": v for k, v in fuse.conv.state_dict().items()})
    else:
        state.update({f"fuse.0.{k}": v for k, v in fuse.conv.state_dict().items()})
        state.update({f"fuse.1.{k}": v for k, v in fuse.norm.state_dict().items()})
    block.load_state_dict(state)
    xs = maps(widths, sizes)
    with torch.no_grad():
        close(outputs(neck, xs), [block(*xs)])
    a = analyze(neck, inputs=["8x16x16", "16x8x8", "32x4x4"], time=False)
    b = analyze(block, inputs=["8x16x16", "16x8x8", "32x4x4"], time=False)
    assert (a.cost.macs, a.params["total"]) == (b.cost.macs, b.params["total"])


# --------------------------------------------------------------------------- every node kind in every topology

NECK_SHAPES = {k: ([8, 16, 32], [16, 8, 4]) for k in registry.list_necks()}


@pytest.mark.parametrize("neck", registry.list_necks())
@pytest.mark.parametrize("kind", registry.list_fusions())
def test_every_node_kind_serves_or_is_refused_naming_the_merge(neck, kind):
    widths, sizes = NECK_SHAPES[neck]
    try:
        with torch.device("meta"):
            m = registry.create_fusion(neck, widths, 16, node=kind).eval()
            outs = m(*[torch.empty(2, c, s, s) for c, s in zip(widths, sizes)])
    except SpecError as e:
        assert str(e).startswith("node '"), e  # exit 2, naming the merge
        # arity or width rule; or a block that is no map merge (not_a_node: learned upsampling, tokens, several
        # outputs, a vector input)
        assert kind in ("cat", "dpt", "aff", "iaff", "crossattn", "hrnet", "film", "sfnet", "fapn", "carafe", "dysample",
                        "msdeform", "gatedxattn", "qformer"), (neck, kind, e)
        return
    merges = [n for n in m.nodes.values() if n.merge]
    assert merges and all(n.kind == kind for n in merges)
    # every output has the width the topology planned for it (16, or the concatenation's sum with cat)
    assert {k: tuple(o.shape[:2]) for k, o in outs.items()} == {k: (2, m.widths[v]) for k, v in m.outputs.items()}


@pytest.mark.parametrize("neck", registry.list_necks())
def test_common_nodes_serve_every_topology(neck):
    widths, sizes = NECK_SHAPES[neck]
    for kind in ("add", "concat", "gated", "bifpn", "se"):
        m = registry.create_fusion(neck, widths, 16, node=kind).eval()
        with torch.no_grad():
            outs = m(*maps(widths, sizes))
        assert outs and all(torch.isfinite(o).all() for o in outs.values()), (neck, kind)


def test_a_user_block_is_a_node(tmp_path):
    r = analyze("neck:fpn", inputs=["64x32x32", "64x16x16"], out=64, options={"node": "examples/my_fusion.py:MyFusion"},
                time=False)
    merge = next(n for n in r.nodes if n.merge)
    # MyFusion: conv3x3(cat(X1, X2) -> C), no bias, then BN: 9 x 128 x 64 + 2 x 64
    assert merge.params == 9 * 128 * 64 + 2 * 64 and merge.macs == 9 * 128 * 64 * 32 * 32
    assert merge.kind.endswith("my_fusion.py:MyFusion")


# --------------------------------------------------------------------------- module swaps


def test_neck_survives_module_swaps():
    neck = build("neck:bifpn", [8, 16, 32], 16, repeats=1)
    xs = maps([8, 16, 32], [16, 8, 4])
    y0 = outputs(neck, xs)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(neck).eval()
    ran = []
    hooks = [m.register_forward_hook(lambda m, i, o: ran.append(type(m))) for m in converted.modules()]
    y1 = outputs(converted, xs)
    for h in hooks:
        h.remove()
    assert nn.SyncBatchNorm in ran and nn.BatchNorm2d not in ran
    close(y0, y1)
    # a node replaced by assignment is the one that runs; state_dict round trip
    neck.nodes["L0_td_P6"].op.act = nn.Identity()  # Swish off in one node
    y2 = outputs(neck, xs)
    assert not torch.allclose(y0[3], y2[3])
    fresh = build("neck:bifpn", [8, 16, 32], 16, repeats=1)
    fresh.nodes["L0_td_P6"].op.act = nn.Identity()
    fresh.load_state_dict(neck.state_dict())
    close(outputs(fresh, xs), y2)


# --------------------------------------------------------------------------- the report


def test_resnet50_fpn_preset_exact_params_and_macs():
    r = analyze("resnet50-fpn", time=False)
    sizes = [(200, 334), (100, 167), (50, 84), (25, 42)]  # ceil(800/s) x ceil(1333/s), s = 4 .. 32
    widths = [256, 512, 1024, 2048]
    assert r.inputs == [[1, c, h, w] for c, (h, w) in zip(widths, sizes)]
    laterals = sum(c * 256 * h * w for c, (h, w) in zip(widths, sizes))  # 1x1: Cin x C per output pixel
    outputs_ = sum(9 * 256 * 256 * h * w for h, w in sizes)
    assert r.params["total"] == 3_344_384
    assert r.cost.macs == laterals + outputs_ == 60_565_094_400
    assert r.outputs[-1] == [1, 256, 13, 21]  # P6: max pool kernel 1 stride 2 of 25x42
    by_id = {n.id: n for n in r.nodes}
    assert by_id["lateral_P5"].macs == 2048 * 256 * 25 * 42 and by_id["merge_P2"].macs == 0
    # the add merge: 1 FLOP per output element + the nearest upsampling's per-element count
    assert by_id["merge_P2"].input_shapes == [[1, 256, 200, 334], [1, 256, 100, 167]]
    assert by_id["merge_P2"].output_shape == [1, 256, 200, 334] and by_id["merge_P2"].inputs == ["lateral_P2", "merge_P3"]


@pytest.mark.parametrize("spec", ["resnet50-fpn", "retinanet-r50-fpn", "pafpn-r50", "efficientdet-d0-bifpn",
                                  "dpt-vitb-decoder", "depth-anything-vits-decoder", "segformer-b0-decoder",
                                  "unet-original-decoder"])
def test_nodes_partition_the_neck(spec):
    r = analyze(spec, time=False)
    for field in ("macs", "flops"):
        assert sum(getattr(n, field) for n in r.nodes) == getattr(r.cost, field), field
    assert sum(n.bytes for n in r.nodes) == r.cost.bytes.total
    assert sum(n.params for n in r.nodes) == r.params["total"]


def test_retinanet_preset():
    r = analyze("retinanet-r50-fpn", time=False)
    sizes = [(100, 167), (50, 84), (25, 42)]
    p6, p7 = (13, 21), (7, 11)
    params = conv(512, 256, 1) + conv(1024, 256, 1) + conv(2048, 256, 1) + 3 * conv(256, 256, 3) \
        + conv(2048, 256, 3) + conv(256, 256, 3)
    assert r.params["total"] == params == 7_997_440
    macs = sum(c * 256 * h * w for c, (h, w) in zip([512, 1024, 2048], sizes)) \
        + sum(9 * 256 * 256 * h * w for h, w in sizes) + 9 * 2048 * 256 * p6[0] * p6[1] + 9 * 256 * 256 * p7[0] * p7[1]
    assert r.cost.macs == macs
    assert [o[2:] for o in r.outputs] == [list(s) for s in (*sizes, p6, p7)]


def test_backbone_table_shapes():
    assert BACKBONES["resnet50"].pyramid(800, 1333) == ["256x200x334", "512x100x167", "1024x50x84", "2048x25x42"]
    assert BACKBONES["convnext_tiny"].pyramid(1333, 1333)[-1] == "768x41x41"  # floor(1333 / 32), patchify layers
    assert BACKBONES["efficientnet_b3"].pyramid(896, 896) == ["48x112x112", "136x56x56", "384x28x28"]
    assert BACKBONES["vit_b"].pyramid(384, 384) == ["96x96x96", "192x48x48", "384x24x24", "768x12x12"]
    assert BACKBONES["dinov2_vits"].pyramid(518, 518)[-1] == "384x19x19"  # 37 tokens, then stride-2 conv: ceil
    assert BACKBONES["yolov8m"].widths == (192, 384, 576)  # 256, 512, min(1024, 768) x 0.75
    assert BACKBONES["mit_b0"].widths == (32, 64, 160, 256) and BACKBONES["mit_b3"].widths == (64, 128, 320, 512)


# --------------------------------------------------------------------------- the command line


def test_compare_necks_by_node_json(monkeypatch):
    code, out, err = run_main("compare", "resnet50-fpn", "--node", "add", "--node", "concat", "--node", "aff",
                              "--node", "gated", "--node", "bifpn", "--no-time", "-f", "json")
    assert code == 0, err
    reports = json.loads(out)["reports"]
    assert [r["name"] for r in reports] == [f"resnet50-fpn[{k}]" for k in ("add", "concat", "aff", "gated", "bifpn")]
    merges = [[n["params"] for n in r["nodes"] if n["merge"]] for r in reports]
    c = 256
    aff = 2 * (c * 64 + 64 + 2 * 64 + 64 * c + c + 2 * c)  # MS-CAM local + global branches (r = 4)
    bifpn = 2 + 9 * c + c * c + c + 2 * c
    assert merges == [[0] * 3, [2 * c * c + c] * 3, [aff] * 3, [2 * c * c + c] * 3, [bifpn] * 3]
    assert [r["params"]["total"] for r in reports] == [3_344_384 + 3 * sum(m[:1]) for m in merges]
    assert reports[1]["ratios"]["params"] == pytest.approx((3_344_384 + 3 * 131_328) / 3_344_384)
    monkeypatch.setenv("COLUMNS", "80")  # five designs, node by node, whole at 80 columns
    code, table, err = run_main("compare", "resnet50-fpn", "--node", "add", "--node", "concat", "--node", "aff",
                                "--node", "gated", "--node", "bifpn", "--no-time")
    assert code == 0 and "MACs per node" in table and "columns: resnet50-fpn[COLUMN]" in table
    assert "…" not in table and max(map(len, table.splitlines())) <= 80
    from fusioncli.render.table import si

    macs_rows = table[table.index("MACs per node"):].splitlines()
    header = next(line for line in macs_rows if line.startswith("┃"))
    assert header.replace("┃", " ").split() == ["node", "add", "concat", "aff", "gated", "bifpn"]
    total = next(line for line in macs_rows if line.startswith("│   total"))
    assert total.replace("│", " ").split()[1:] == [w for r in reports for w in si(r["cost"]["macs"]).split()]


def test_inspect_neck_table_and_backbone_flags():
    code, out, err = run_main("inspect", "neck:fpn", "--backbone", "resnet18", "--image", "256", "--node", "concat",
                              "--set", "node.norm=bn", "--no-time")
    assert code == 0, err
    assert "Nodes" in out and "merge_P2" in out and "lateral_P5" in out
    code, out, err = run_main("inspect", "neck:fpn", "--backbone", "resnet18", "--image", "256", "--no-time", "-f",
                              "json")
    r = json.loads(out)["reports"][0]
    assert r["inputs"] == [[1, 64, 64, 64], [1, 128, 32, 32], [1, 256, 16, 16], [1, 512, 8, 8]]
    assert r["options"]["first_level"] == 2 and [n["id"] for n in r["nodes"]][:1] == ["lateral_P2"]


def test_timed_neck_has_node_latencies():
    r = analyze("neck:fpn", inputs=["8x16x16", "16x8x8"], out=8, min_time=0.05)
    assert all(n.latency_ms is not None and n.latency_ms > 0 for n in r.nodes)


def test_sweep_over_node_and_image():
    code, out, err = run_main("sweep", "neck:fpn", "--backbone", "resnet18", "--vary", "node=add,concat",
                              "--vary", "image=128,256", "--image", "128", "--no-time", "-f", "json")
    assert code == 0, err
    d = json.loads(out)
    points = [(r["sweep"]["values"]["node"], r["sweep"]["values"]["image"], r["cost"]["macs"]) for r in d["reports"]]
    assert [p[:2] for p in points] == [("add", 128), ("add", 256), ("concat", 128), ("concat", 256)]
    assert points[1][2] == 4 * points[0][2]  # every level doubles in both sides at 256 (sizes divisible by 32)


@pytest.mark.parametrize("args,field", [
    (["neck:fpn", "--node", "nosuch"], "--node"),
    (["neck:fpn", "--node", "neck:bifpn"], "--node"),
    (["neck:bifpn", "--node", "aff"], "node"),
    (["neck:fpn", "--backbone", "resnet9", "--image", "512"], "--backbone"),
    (["neck:fpn", "--backbone", "resnet50"], "--image"),
    (["neck:fpn", "--image", "512"], "--image"),
    (["neck:fpn", "--backbone", "resnet50", "--image", "0x512"], "--image"),
    (["neck:fpn", "--backbone", "resnet50", "--image", "512", "--in", "8x8x8"], "--in"),
    (["concat", "--node", "add"], "--node"),
    (["neck:fpn", "--set", "node.rr=4", "--node", "aff"], "--set node.rr"),
    (["neck:fpn", "--node", "add", "--node", "aff"], "--node"),
    (["neck:fpn", "--set", "extra_levels=-1"], "--set extra_levels"),
])
def test_bad_neck_input_is_one_line_exit_2(args, field):
    code, out, err = run_main("inspect", *args, "--no-time", "-f", "json")
    assert code == 2, (args, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert json.loads(out)["error"]["field"] == field, out


def test_a_node_that_cannot_serve_names_the_merge():
    with pytest.raises(FusionError, match=r"node 'L0_out_P4': 'aff' cannot serve this merge \(3 inputs"):
        registry.create_fusion("neck:bifpn", [8, 16, 32], 16, node="aff")
    code, out, err = run_main("inspect", "neck:segformer", "--node", "crossattn", "--no-time")
    assert code == 2 and "node 'fuse'" in err and "4 inputs" in err


def test_markdown_has_the_node_table():
    code, out, err = run_main("inspect", "neck:fpn", "--in", "8x16x16", "--in", "16x8x8", "--out", "8", "--no-time",
                              "-f", "markdown")
    assert code == 0, err
    # output_P2: 3x3 conv 8 -> 8 at 16x16: 9 x 8 x 8 x 256 MACs
    assert "| output_P2 | 2 | conv3x3 | 8x16x16 -> 8x16x16 | 584 | 147,456 |" in out
    assert "| \\* merge_P2 | 2 | add | 8x16x16 + 8x8x8 -> 8x16x16 | 0 | 0 | 2,048 |" in out


def test_crosscheck_runs_on_a_neck_with_pooled_merges():
    """fvcore traces with the JIT, where shapes are tensors: BiFPN's pooled resizes still run."""
    r = analyze("neck:bifpn", inputs=["8x16x16", "16x8x8", "32x4x4"], out=8, time=False, crosscheck=True)
    assert "error" not in r.crosscheck["fvcore"] and r.crosscheck["fvcore"]["value"] > 0
