"""The block registry: one line per block kind.

The table below is plain data so that ``fusion blocks``, ``fusion presets``, ``--help``
and shell completion can list every kind without importing torch (about 2 s here).
A block's class is imported only when the block is built or its options are read.
Adding a block is one module in ``fusioncli/blocks/`` plus one line here; the tests
run over this table, so they pick it up without edits.
"""

from __future__ import annotations

import fnmatch
import importlib
import typing
from dataclasses import dataclass
from typing import Any

from . import arguments
from .arguments import OptionInfo
from .errors import SpecError


@dataclass(frozen=True)
class BlockInfo:
    kind: str
    target: str  # "module:Class" under fusioncli.blocks
    summary: str
    source: str  # paper, venue, year
    inputs: tuple[str, ...]  # documented default input shapes (CxHxW, or NxC tokens) for `fusion inspect KIND`
    out: int  # documented default output width
    alt_inputs: tuple[str, ...] = ()  # a second configuration for the tests (mismatched widths/sizes where allowed)
    # the input ranks the kind takes: each pattern gives input i the rank pattern[min(i, len - 1)];
    # ((3,), (4,)): all CxHxW maps or all CxDxHxW volumes (then option dims = 3)
    ranks: tuple[tuple[int, ...], ...] = ((3,),)


_RANK_NAMES = {1: "C vectors", 2: "NxC tokens", 3: "CxHxW maps", 4: "CxDxHxW volumes"}


def _pattern_text(pattern: tuple[int, ...]) -> str:
    if len(pattern) == 1:
        return _RANK_NAMES[pattern[0]]
    *first, rest = pattern
    return ", ".join(_RANK_NAMES[r].rstrip("s") for r in first) + ", then " + _RANK_NAMES[rest]


def shape_options(kind: str, shapes, *, field: str = "--in", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the input ranks against the kind's ``ranks`` and return the options they imply: ``{"dims": 3}``
    for volumes (CxDxHxW) fed to a kind that takes them, else ``{}``. ``options``: those already set,
    to refuse ``dims`` set against the inputs' rank."""
    info = get_info(kind)
    ranks = tuple(len(s) for s in shapes)
    if not any(all(r == p[min(i, len(p) - 1)] for i, r in enumerate(ranks)) for p in info.ranks):
        allowed = " or ".join(_pattern_text(p) for p in info.ranks)
        known = {r for p in info.ranks for r in p}
        bad = next((s for s in shapes if len(s) not in known), next((s for s in shapes if len(s) != ranks[0]), shapes[0]))
        got = "x".join(str(d) for d in bad)
        raise SpecError.bad(field, got, f"'{kind}' takes {allowed} (got ranks {', '.join(map(str, ranks))}); "
                            "inputs of other ranks are for user blocks (FILE.py:NAME)")
    if (4,) not in info.ranks:
        return {}
    dims = 3 if ranks[0] == 4 else 2
    given = (options or {}).get("dims")
    if given is not None and str(given) != str(dims):
        raise SpecError.bad("dims", given, f"the inputs are {_RANK_NAMES[ranks[0]]}: dims = {dims} (set by the inputs)")
    return {"dims": 3} if dims == 3 else {}


BLOCKS: tuple[BlockInfo, ...] = (
    BlockInfo("concat", "concat:ConcatFusion", "Concatenate on channels, then a conv (1x1; kernel=3: BEVFusion) from the sum of input widths",
              "generic (e.g. U-Net skip fusion; Ronneberger et al., MICCAI 2015)", ("64x32x32", "64x32x32"), 64,
              ("32x8x16x16", "96x4x8x8", "16x8x16x16"), ((3,), (4,))),
    BlockInfo("add", "add:AddFusion", "Element-wise sum, with a 1x1 projection for each input whose width differs",
              "generic (e.g. FPN lateral merge; Lin et al., CVPR 2017)", ("64x32x32", "64x32x32"), 64,
              ("32x8x16x16", "64x4x8x8"), ((3,), (4,))),
    BlockInfo("gated", "gated:GatedFusion", "Learned sigmoid gate g: g*X1 + (1-g)*X2 (softmax over n gates for n > 2)",
              "generic gated fusion (e.g. GFF, Li et al., AAAI 2020)", ("64x32x32", "64x32x32"), 64,
              ("32x8x16x16", "64x4x8x8", "16x8x16x16"), ((3,), (4,))),
    BlockInfo("multiscale", "multiscale:MultiScaleFusion",
              "Parallel conv branches of several kernel sizes/strides, merged by concat or sum, then refined",
              "Inception-style (Szegedy et al., CVPR 2015)", ("64x32x32", "64x32x32"), 64,
              ("32x16x16", "48x8x8")),
    BlockInfo("cat", "cat:CatFusion", "Concatenate on channels, nothing else (out = the sum of input widths)",
              "generic (the original U-Net decoder's merge; Ronneberger et al., MICCAI 2015)",
              ("64x32x32", "64x32x32"), 128, ("32x16x16", "96x8x8")),
    # --- the published designs (issue: block zoo); see ../shared/BLOCKS.md
    BlockInfo("dpt", "dpt:DPTFusion",
              "DPT/MiDaS FeatureFusionBlock: X1 + RCU(X2), RCU, x2 bilinear upsample (or to size), 1x1 out conv",
              "Ranftl et al., Vision Transformers for Dense Prediction, ICCV 2021", ("256x24x24", "256x24x24"), 256,
              ("256x12x12", "256x24x24")),
    BlockInfo("aff", "aff:AFF",
              "Attentional feature fusion: MS-CAM attention M(X+Y); M*X + (1-M)*Y (variant=reference: the code's 2x)",
              "Dai et al., Attentional Feature Fusion, WACV 2021", ("64x32x32", "64x32x32"), 64,
              ("64x32x32", "64x16x16")),
    BlockInfo("iaff", "aff:IAFF",
              "Iterative AFF: a second MS-CAM on the first fusion re-weights X and Y (variant=reference reuses global_att)",
              "Dai et al., Attentional Feature Fusion, WACV 2021", ("64x32x32", "64x32x32"), 64,
              ("64x16x16", "64x32x32")),
    BlockInfo("sk", "sk:SKFusion", "Selective kernel: conv branches of several kernels, softmax over branches (variant=reference: timm split input)",
              "Li et al., Selective Kernel Networks, CVPR 2019", ("64x32x32", "64x32x32"), 64,
              ("32x16x16", "96x8x8")),
    BlockInfo("skff", "skff:SKFF", "Selective kernel feature fusion of n streams (MIRNet)",
              "Zamir et al., Learning Enriched Features for Real Image Restoration (MIRNet), ECCV 2020",
              ("64x32x32", "64x32x32", "64x32x32"), 64, ("64x32x32", "64x16x16")),
    BlockInfo("bifpn", "bifpn:BiFPNFusion", "BiFPN node: fast normalised weighted sum, Swish, depthwise-separable conv, BN",
              "Tan et al., EfficientDet, CVPR 2020", ("64x32x32", "64x16x16"), 64,
              ("112x16x16", "64x16x16", "64x32x32")),
    BlockInfo("asff", "asff:ASFF", "Adaptive spatial feature fusion: per-pixel softmax weights over 3 pyramid levels",
              "Liu et al., Learning Spatial Fusion for Single-Shot Object Detection, arXiv 2019",
              ("512x13x13", "256x26x26", "256x52x52"), 1024, ("128x8x8", "64x16x16", "32x32x32")),
    BlockInfo("fpn", "fpn:FPNFusion", "FPN top-down merge: lateral 1x1 + upsampled coarser level, 3x3 output conv",
              "Lin et al., Feature Pyramid Networks for Object Detection, CVPR 2017", ("512x32x32", "256x16x16"), 256,
              ("256x64x64", "512x32x32", "256x16x16")),
    BlockInfo("pan", "pan:PANFusion", "PANet bottom-up merge: 3x3 stride-2 conv of the finer level + lateral, 3x3 conv (variant=reference: mmdet)",
              "Liu et al., Path Aggregation Network for Instance Segmentation, CVPR 2018",
              ("256x32x32", "256x16x16"), 256, ("128x64x64", "256x32x32", "256x16x16")),
    BlockInfo("gff", "gff:GFF", "Gated fully fusion: each level gated by itself and by all others (variant=reference: code's C-channel gates)",
              "Li et al., Gated Fully Fusion for Semantic Segmentation, AAAI 2020",
              ("256x64x64", "512x32x32", "1024x16x16"), 128, ("32x16x16", "64x8x8")),
    BlockInfo("ffm", "ffm:FFM", "BiSeNet FFM: concat, ConvBNReLU, channel attention, residual (variant=reference: mmseg)",
              "Yu et al., BiSeNet, ECCV 2018", ("128x64x64", "128x64x64"), 256, ("64x32x32", "128x16x16")),
    BlockInfo("se", "attention:SEFusion", "Concat, 1x1 conv, squeeze-and-excitation channel attention (variant=reference: timm widths)",
              "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018", ("64x32x32", "64x32x32"), 64,
              ("32x8x16x16", "96x4x8x8"), ((3,), (4,))),
    BlockInfo("cbam", "attention:CBAMFusion", "Concat, 1x1 conv, CBAM channel then spatial attention (variant=reference: timm)",
              "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018", ("64x32x32", "64x32x32"), 64,
              ("32x16x16", "96x8x8")),
    BlockInfo("segformer", "segformer:SegFormerFusion", "All-MLP head: per-level linear to C, resize to finest, concat, linear fuse (variant=reference: mmseg)",
              "Xie et al., SegFormer, NeurIPS 2021", ("32x128x128", "64x64x64", "160x32x32", "256x16x16"), 256,
              ("16x32x32", "32x16x16")),
    BlockInfo("crossattn", "crossattn:CrossAttentionFusion",
              "Multi-head cross-attention: queries from X1, keys/values from X2, residual",
              "cross-attention fusion (e.g. Chen et al., CrossViT, ICCV 2021)", ("64x16x16", "64x8x8"), 64,
              ("32x16x16", "96x8x8")),
    # --- second wave, part A (issue 19): CSP fusions, channel attention; see ../shared/BLOCKS.md
    BlockInfo("c2f", "csp:C2fFusion", "Concat, then YOLOv8's C2f: 1x1, split, n bottlenecks, concat every stage, 1x1",
              "Ultralytics YOLOv8, 2023 (ultralytics nn/modules/block.py C2f)", ("512x20x20", "256x40x40"), 256,
              ("64x8x8", "32x16x16", "16x16x16")),
    BlockInfo("repc3", "csp:RepC3Fusion", "RT-DETR CCFM fusion: concat, CSP layer of RepVGG blocks (3x3 + 1x1 branches)",
              "Zhao et al., DETRs Beat YOLOs on Real-time Object Detection (RT-DETR), CVPR 2024",
              ("256x20x20", "256x40x40"), 256, ("64x16x16", "96x8x8")),
    BlockInfo("eca", "attention:ECAFusion", "Concat, 1x1 conv, efficient channel attention: 1-D conv over pooled channels (variant=reference: k=3)",
              "Wang et al., ECA-Net: Efficient Channel Attention, CVPR 2020", ("64x32x32", "64x32x32"), 64,
              ("32x16x16", "96x8x8")),
    BlockInfo("coordatt", "attention:CoordAttFusion", "Concat, 1x1 conv, coordinate attention: pooled along H and W, two directional gates",
              "Hou et al., Coordinate Attention for Efficient Mobile Network Design, CVPR 2021", ("64x32x32", "64x32x32"), 64,
              ("32x16x16", "96x8x8")),
    BlockInfo("hrnet", "hrnet:HRNetFusion", "HRNet exchange unit: n branches to n outputs, each the ReLU'd sum of all branches (1x1+BN+resize up, stride-2 3x3 chains down)",
              "Wang et al., Deep High-Resolution Representation Learning for Visual Recognition, TPAMI 2020",
              ("18x128x128", "36x64x64", "72x32x32", "144x16x16"), 18, ("18x15x15", "16x8x8", "24x4x4")),
    BlockInfo("film", "film:FiLMFusion", "FiLM: a vector (2nd input) gives per-channel gamma, beta by a linear layer; gamma*X + beta (variant=reference: 1+gamma)",
              "Perez et al., FiLM: Visual Reasoning with a General Conditioning Layer, AAAI 2018", ("128x14x14", "4096"), 128,
              ("128x9x7", "24"), ((3, 1),)),
    # --- second wave, sampling and alignment (issue 19); see ../shared/BLOCKS.md
    BlockInfo("carafe", "upsample:CARAFEFusion",
              "FPN level with CARAFE upsampling: per-pixel softmax k x k kernels reassemble the coarse map, add, 3x3 conv",
              "Wang et al., CARAFE: Content-Aware ReAssembly of FEatures, ICCV 2019", ("256x32x32", "512x16x16"), 256,
              ("64x16x16", "96x8x8")),
    BlockInfo("dysample", "upsample:DySampleFusion",
              "FPN level with DySample upsampling: learned point offsets, grid_sample the coarse map, add, 3x3 conv",
              "Liu et al., Learning to Upsample by Learning to Sample, ICCV 2023", ("256x32x32", "512x16x16"), 256,
              ("64x16x16", "96x8x8")),
    BlockInfo("sfnet", "align:SFNetFusion",
              "Flow alignment: a learned 2-channel flow warps the coarse map (grid_sample), add to the lateral, 3x3 conv",
              "Li et al., Semantic Flow for Fast and Accurate Scene Parsing (SFNet), ECCV 2020", ("256x32x32", "512x16x16"),
              256, ("64x16x16", "96x6x6")),
    BlockInfo("fapn", "align:FaPNFusion",
              "FaPN: feature selection, DCNv2 (pure PyTorch) aligns the upsampled coarse map, add, 3x3 (variant=reference: 2U)",
              "Huang et al., FaPN: Feature-aligned Pyramid Network for Dense Image Prediction, ICCV 2021",
              ("256x32x32", "512x16x16"), 256, ("64x16x16", "96x6x6")),
    BlockInfo("msdeform", "msdeform:MSDeformAttnFusion",
              "Multi-scale deformable attention: every pixel of every level samples P points per head and level (tokens out)",
              "Zhu et al., Deformable DETR, ICLR 2021", ("256x32x32", "256x16x16", "256x8x8"), 256,
              ("64x16x16", "128x8x8")),
    # tokens NxC: N tokens of width C
    BlockInfo("gatedxattn", "tokens:GatedXAttnFusion",
              "Flamingo gated cross-attention: text tokens attend to visual tokens, tanh gates (init 0) on attention and FFN",
              "Alayrac et al., Flamingo, NeurIPS 2022", ("64x1024", "256x1024"), 1024, ("16x1024", "48x768"),
              ((2,),)),
    BlockInfo("qformer", "tokens:QFormerFusion",
              "BLIP-2 Q-Former layer: learned queries, self-attention, cross-attention to the image tokens, FFN",
              "Li et al., BLIP-2, ICML 2023", ("257x1408",), 768, ("50x512",), ((2,),)),
)

# Necks: whole decoders over a feature pyramid (fusioncli.necks), their fusion node swappable
# (option ``node``, its options ``node.NAME``). Default inputs: the pyramid of the backbone and
# image named in ``source``'s last clause (see fusioncli.backbones).
NECKS: tuple[BlockInfo, ...] = (
    BlockInfo("neck:fpn", "fpn:FPN", "FPN: lateral 1x1s, top-down merges (node, default add), 3x3 output convs, extra levels",
              "Lin et al., CVPR 2017; mmdet necks/fpn.py, torchvision FeaturePyramidNetwork; resnet50 at 512x512",
              ("256x128x128", "512x64x64", "1024x32x32", "2048x16x16"), 256, ("16x32x32", "32x16x16", "64x8x8")),
    BlockInfo("neck:pafpn", "fpn:PAFPN", "PAFPN: FPN plus a bottom-up path of stride-2 convs and merges (node, default add)",
              "Liu et al., CVPR 2018; mmdet necks/pafpn.py; resnet50 at 512x512",
              ("256x128x128", "512x64x64", "1024x32x32", "2048x16x16"), 256, ("16x32x32", "32x16x16", "64x8x8")),
    BlockInfo("neck:bifpn", "bifpn:BiFPN", "BiFPN: repeated top-down + bottom-up layers of weighted nodes (node, default bifpn), P3-P7",
              "Tan et al., EfficientDet, CVPR 2020; rwightman effdet BiFpn, zylo117 BiFPN; efficientnet_b0 at 512x512",
              ("40x64x64", "112x32x32", "320x16x16"), 64, ("24x32x32", "40x16x16", "80x8x8")),
    BlockInfo("neck:dpt", "dpt:DPTDecoder", "DPT decoder: 3x3 convs to F per level, fusions (node, default dpt) coarse to fine",
              "Ranftl et al., ICCV 2021; isl-org/DPT, Depth-Anything DPTHead; vit_b at 384x384",
              ("96x96x96", "192x48x48", "384x24x24", "768x12x12"), 256, ("16x32x32", "32x16x16", "64x8x8")),
    BlockInfo("neck:unet", "unet:UNetDecoder", "U-Net decoder: 2x2 up-conv, merge with the skip (node, default cat), two 3x3 convs",
              "Ronneberger et al., MICCAI 2015; milesial Pytorch-UNet; the paper's widths at 256x256",
              ("64x256x256", "128x128x128", "256x64x64", "512x32x32", "1024x16x16"), 64,
              ("16x32x32", "32x16x16", "64x8x8")),
    BlockInfo("neck:segformer", "segformer:SegFormerHead", "SegFormer head: per-level linear, resize to finest, one all-level merge (node, default concat)",
              "Xie et al., NeurIPS 2021; mmseg SegformerHead; mit_b0 at 512x512",
              ("32x128x128", "64x64x64", "160x32x32", "256x16x16"), 256, ("16x32x32", "32x16x16", "64x8x8")),
)

_BY_KIND = {b.kind: b for b in (*BLOCKS, *NECKS)}
_NECK_KINDS = frozenset(b.kind for b in NECKS)


def kinds() -> dict[str, BlockInfo]:
    """The built-in kinds (a mapping: membership tests without building a list)."""
    return _BY_KIND


def list_fusions(pattern: str = "*") -> list[str]:
    """Registered block kinds matching an fnmatch ``pattern``, in registry order."""
    return [b.kind for b in BLOCKS if fnmatch.fnmatchcase(b.kind, pattern)]


def list_necks(pattern: str = "*") -> list[str]:
    """Registered neck kinds (``neck:fpn``, ...) matching an fnmatch ``pattern``, in registry order."""
    return [b.kind for b in NECKS if fnmatch.fnmatchcase(b.kind, pattern)]


def is_neck(kind: str) -> bool:
    return kind in _NECK_KINDS


def get_info(kind: str) -> BlockInfo:
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise SpecError.bad("block", kind, "allowed: " + ", ".join(_BY_KIND), choices=_BY_KIND) from None


def get_class(kind: str) -> type:
    module, cls = get_info(kind).target.split(":")
    package = "necks" if kind in _NECK_KINDS else "blocks"
    return getattr(importlib.import_module(f"fusioncli.{package}.{module}"), cls)


# --------------------------------------------------------------------------- options


def block_options(kind: str) -> dict[str, OptionInfo]:
    """Options of a block kind: the keyword-only arguments of its class and its bases."""
    from inspect import signature  # the block class imports torch anyway; listings skip both

    cls = get_class(kind)
    options: dict[str, OptionInfo] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith("torch"):
            continue
        hints = typing.get_type_hints(init)
        for p in signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.name != "node_options":  # a neck's node options: node.NAME
                default = getattr(cls, f"default_{p.name}", p.default)
                options[p.name] = OptionInfo(p.name, hints.get(p.name, type(default)), default)
    return options


def coerce_options(kind: str, raw: dict[str, Any], *, field: str = "--set") -> dict[str, Any]:
    """Validate option names and convert values (strings from ``--set`` or TOML values).

    A neck's options also hold its node's, as ``node.NAME``, typed by the node kind (a built-in
    kind or a user block reference).
    """
    if kind not in _NECK_KINDS:
        return arguments.coerce_options(block_options(kind), raw, owner=kind, field=field)
    own = {k: v for k, v in raw.items() if not k.startswith("node.")}
    typed = arguments.coerce_options(block_options(kind), own, owner=kind, field=field)
    node = typed.get("node", block_options(kind)["node"].default)
    known = {f"node.{k}": v for k, v in node_options(node, field=field).items()}
    node_raw = {k: v for k, v in raw.items() if k.startswith("node.")}
    typed.update(arguments.coerce_options(known, node_raw, owner=node, field=field))
    return typed


def node_options(node: str, *, field: str = "--node") -> dict[str, OptionInfo]:
    """The options a neck's node takes: a built-in block's, or a user block's signature."""
    from . import userblock
    from .spec import node_of

    ref = node_of(node, field)
    if ref in _BY_KIND:
        return block_options(ref)
    return {k: v for k, v in userblock.options_of(userblock.load_reference(ref)).items()
            if k not in userblock.CONVENTION}


def split_node_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A neck's flat options -> (its own options, its node's options without the ``node.`` prefix)."""
    own = {k: v for k, v in options.items() if not k.startswith("node.")}
    return own, {k[5:]: v for k, v in options.items() if k.startswith("node.")}


def resolved_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """All options of ``kind`` with defaults filled in (for reports; a neck's node options as ``node.NAME``)."""
    shown = {name: options.get(name, info.default) for name, info in block_options(kind).items()}
    if kind in _NECK_KINDS:
        for name, info in node_options(shown["node"]).items():
            shown[f"node.{name}"] = options.get(f"node.{name}", info.shown_default())
    return shown


def create_fusion(kind: str, in_channels: list[int] | tuple[int, ...], out_channels: int, **options: Any):
    """Build a fusion block: ``create_fusion("concat", in_channels=[64, 128], out_channels=64)``.

    Options are validated and converted as on the command line (``kernels="1,3,5"`` and
    ``kernels=(1, 3, 5)`` both work); an unknown option or a bad value raises
    :class:`fusioncli.errors.SpecError`.
    """
    cls = get_class(kind)
    opts = coerce_options(kind, options, field="option")
    if kind in _NECK_KINDS:
        own, node = split_node_options(opts)
        if "node" in own:
            from .spec import node_of

            own["node"] = node_of(own["node"], "node")
        return cls(list(in_channels), out_channels, **own, node_options=node)
    return cls(list(in_channels), out_channels, **opts)
