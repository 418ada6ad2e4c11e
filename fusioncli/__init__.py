"""fusion: an architecture explorer for feature fusion blocks.

``import fusioncli`` does not import torch; the torch-backed parts load on first use.

>>> import fusioncli
>>> fusioncli.list_fusions("c*")
['concat']
>>> block = fusioncli.create_fusion("concat", in_channels=[64, 64], out_channels=64)  # doctest: +SKIP
>>> report = fusioncli.analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False)  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import FusionError, RunError, SpecError
from .registry import block_options, create_fusion, list_fusions
from .spec import Spec, resolve_spec

__all__ = [
    "__version__",
    "FusionError",
    "RunError",
    "SpecError",
    "Spec",
    "analyze",
    "block_options",
    "create_fusion",
    "list_fusions",
    "resolve_spec",
]


def __getattr__(name: str):
    if name == "analyze":
        from .analysis import analyze

        return analyze
    raise AttributeError(f"module 'fusioncli' has no attribute {name!r}")
