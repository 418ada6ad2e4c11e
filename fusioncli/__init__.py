"""fusion: an architecture explorer for feature fusion blocks and the necks built of them.

``import fusioncli`` does not import torch; the torch-backed parts load on first use.

>>> import fusioncli
>>> fusioncli.list_fusions("c*")
['concat', 'cat', 'cbam', 'crossattn', 'carafe']
>>> fusioncli.list_necks()
['neck:fpn', 'neck:pafpn', 'neck:bifpn', 'neck:dpt', 'neck:unet', 'neck:segformer']
>>> block = fusioncli.create_fusion("concat", in_channels=[64, 64], out_channels=64)
>>> sum(p.numel() for p in block.parameters())  # the 1x1 conv: 128*64 weights + 64 biases
8256
>>> report = fusioncli.analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False)
>>> report.cost.macs == 128 * 64 * 32 * 32  # one MAC per weight per output pixel
True
>>> fpn = fusioncli.create_fusion("neck:fpn", [256, 512, 1024, 2048], 256, node="add")
>>> sum(p.numel() for p in fpn.parameters())  # torchvision's FeaturePyramidNetwork([256, 512, 1024, 2048], 256)
3344384
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import FusionError, RunError, SpecError
from .registry import block_options, create_fusion, list_fusions, list_necks

__all__ = [
    "__version__",
    "FusionError",
    "RunError",
    "SpecError",
    "Spec",
    "analyze",
    "block_options",
    "compare",
    "create_fusion",
    "list_fusions",
    "list_necks",
    "register_formula",
    "resolve_spec",
]


def __getattr__(name: str):
    # loaded on first use: ``fusion --help`` and the listings import this package too
    if name in ("analyze", "compare"):
        from . import analysis

        return getattr(analysis, name)
    if name == "register_formula":
        from .analysis.formulas import register_formula

        return register_formula
    if name in ("Spec", "resolve_spec"):
        from . import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'fusioncli' has no attribute {name!r}")
