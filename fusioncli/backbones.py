"""Feature pyramids of common backbones: widths and strides, to build a neck's inputs from an image size.

``--backbone NAME --image HxW`` gives one input per pyramid level, fine to coarse, each
``C x ceil(H/s) x ceil(W/s)`` (or floor, as the backbone's own strided layers round):

* ``ceil``: a stride-2 layer with padding k//2 (3x3 pad 1, 7x7 pad 3, 5x5 pad 2) outputs
  ceil(h/2), and nested ceilings compose: ceil(ceil(h/2)/2) = ceil(h/4). ResNet (stem 7x7/2 pad 3,
  max pool 3x3/2 pad 1, stride-2 3x3 convs), EfficientNet (timm, symmetric padding), MiT
  (overlapping patch embeddings 7x7/4 pad 3, 3x3/2 pad 1), Darknet-53 and YOLOv8 (3x3/2 pad 1),
  Swin (the patch embedding and patch merging pad odd sizes).
* ``floor``: non-overlapping patchify layers (ConvNeXt: 4x4/4 stem, 2x2/2 downsampling).
* ``vit``: a ViT of patch ``p`` gives floor(h/p) tokens a side, and DPT's reassemble stage
  resamples them 4x, 2x, 1x (transposed convs, identity) and 1/2 (3x3 stride-2 conv, pad 1:
  ceil): DPT (Ranftl et al. 2021) and Depth Anything (Yang et al. 2024).

Torch-free: listing and shape checks use it without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import SpecError


@dataclass(frozen=True)
class Backbone:
    name: str
    widths: tuple[int, ...]  # per level, fine to coarse
    strides: tuple[float, ...]  # per level: input pixels per output pixel
    first_level: int  # the finest level's index (log2 of its stride: C2 at stride 4)
    source: str  # where the widths and strides come from
    rounding: str = "ceil"  # "ceil", "floor" or "vit" (see the module docstring)
    patch: int = 0  # vit: the patch size

    def sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(H, W) of each level for an image of ``height`` x ``width``."""
        if self.rounding == "vit":
            th, tw = height // self.patch, width // self.patch
            return [(th * 4, tw * 4), (th * 2, tw * 2), (th, tw), (math.ceil(th / 2), math.ceil(tw / 2))]
        rnd = math.ceil if self.rounding == "ceil" else math.floor
        return [(rnd(height / s), rnd(width / s)) for s in self.strides]

    def pyramid(self, height: int, width: int) -> list[str]:
        """The neck's inputs, ``CxHxW`` per level."""
        return [f"{c}x{h}x{w}" for c, (h, w) in zip(self.widths, self.sizes(height, width))]


_RESNET = "He et al., Deep Residual Learning, CVPR 2016, Table 1 (conv2_x..conv5_x); torchvision / timm feature_info"
_CONVNEXT = "Liu et al., A ConvNet for the 2020s, CVPR 2022, Table 9 (C = (96, 192, 384, 768) T/S, (128, ...) B); timm feature_info"
_SWIN = "Liu et al., Swin Transformer, ICCV 2021, Table 7 (C = 96 T/S, 128 B; stages C, 2C, 4C, 8C); timm feature_info"
_EFFNET = ("Tan & Le, EfficientNet, ICML 2019 (stages 3, 5, 7 at strides 8, 16, 32, widths scaled); EfficientDet's "
           "P3-P5 inputs: zylo117 efficientdet/model.py conv_channel_coef; timm feature_info out_indices (2, 3, 4)")
_MIT = "Xie et al., SegFormer, NeurIPS 2021, Table 6 (MiT-B0 C = 32, 64, 160, 256; B1-B5 64, 128, 320, 512)"
_DPT = ("Ranftl et al., Vision Transformers for Dense Prediction, ICCV 2021: isl-org/DPT dpt/models.py "
        "(DPT-Base features [96, 192, 384, 768], DPT-Large [256, 512, 1024, 1024]; patch 16, reassemble 4x, 2x, 1x, 1/2)")
_DA = ("Yang et al., Depth Anything, CVPR 2024: LiheYoung/Depth-Anything depth_anything/dpt.py model_configs "
       "(vits out_channels [48, 96, 192, 384], vitb [96, 192, 384, 768], vitl [256, 512, 1024, 1024]; patch 14)")
_DARKNET = "Redmon & Farhadi, YOLOv3: An Incremental Improvement, 2018, Table 1 (Darknet-53 at strides 8, 16, 32)"
_YOLOV8 = ("ultralytics/ultralytics ultralytics/cfg/models/v8/yolov8.yaml: P3/P4/P5 outputs 256, 512, 1024 x width "
           "(n 0.25, s 0.5, m 0.75, l 1.0, x 1.25), capped at max_channels (1024, 1024, 768, 512, 512)")

_PYR4 = (4, 8, 16, 32)
_PYR3 = (8, 16, 32)
_ENTRIES = [
    Backbone("resnet18", (64, 128, 256, 512), _PYR4, 2, _RESNET),
    Backbone("resnet34", (64, 128, 256, 512), _PYR4, 2, _RESNET),
    Backbone("resnet50", (256, 512, 1024, 2048), _PYR4, 2, _RESNET),
    Backbone("resnet101", (256, 512, 1024, 2048), _PYR4, 2, _RESNET),
    Backbone("resnet152", (256, 512, 1024, 2048), _PYR4, 2, _RESNET),
    Backbone("convnext_tiny", (96, 192, 384, 768), _PYR4, 2, _CONVNEXT, "floor"),
    Backbone("convnext_small", (96, 192, 384, 768), _PYR4, 2, _CONVNEXT, "floor"),
    Backbone("convnext_base", (128, 256, 512, 1024), _PYR4, 2, _CONVNEXT, "floor"),
    Backbone("swin_tiny", (96, 192, 384, 768), _PYR4, 2, _SWIN),
    Backbone("swin_small", (96, 192, 384, 768), _PYR4, 2, _SWIN),
    Backbone("swin_base", (128, 256, 512, 1024), _PYR4, 2, _SWIN),
    *(Backbone(f"efficientnet_b{i}", w, _PYR3, 3, _EFFNET) for i, w in enumerate([
        (40, 112, 320), (40, 112, 320), (48, 120, 352), (48, 136, 384), (56, 160, 448), (64, 176, 512),
        (72, 200, 576), (80, 224, 640)])),
    Backbone("mit_b0", (32, 64, 160, 256), _PYR4, 2, _MIT),
    *(Backbone(f"mit_b{i}", (64, 128, 320, 512), _PYR4, 2, _MIT) for i in range(1, 6)),
    Backbone("vit_b", (96, 192, 384, 768), _PYR4, 2, _DPT, "vit", 16),
    Backbone("vit_l", (256, 512, 1024, 1024), _PYR4, 2, _DPT, "vit", 16),
    Backbone("dinov2_vits", (48, 96, 192, 384), (3.5, 7, 14, 28), 2, _DA, "vit", 14),
    Backbone("dinov2_vitb", (96, 192, 384, 768), (3.5, 7, 14, 28), 2, _DA, "vit", 14),
    Backbone("dinov2_vitl", (256, 512, 1024, 1024), (3.5, 7, 14, 28), 2, _DA, "vit", 14),
    Backbone("darknet53", (256, 512, 1024), _PYR3, 3, _DARKNET),
    *(Backbone(f"yolov8{s}", w, _PYR3, 3, _YOLOV8) for s, w in [
        ("n", (64, 128, 256)), ("s", (128, 256, 512)), ("m", (192, 384, 576)), ("l", (256, 512, 512)),
        ("x", (320, 640, 640))]),
]
BACKBONES: dict[str, Backbone] = {b.name: b for b in _ENTRIES}


def get_backbone(name: str, field: str = "--backbone") -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise SpecError.bad(field, name, "allowed: " + ", ".join(BACKBONES), choices=BACKBONES) from None


def parse_image(text, field: str = "--image") -> tuple[int, int]:
    """``"800x1333"`` -> (800, 1333); ``"512"`` or 512 -> (512, 512)."""
    help_ = "expected HxW or S (a square), positive integers, e.g. 800x1333 or 512"
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, (list, tuple)) and len(text) == 2:
        text = f"{text[0]}x{text[1]}"
    if not isinstance(text, str):
        raise SpecError.bad(field, text, help_)
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise SpecError.bad(field, text, help_)
    h = int(parts[0])
    return h, int(parts[-1])
