"""Shared machinery of every fusion block: input validation and spatial alignment.

A block takes ``in_channels`` (one width per input map) and ``out_channels``, then
keyword-only options. ``forward(*xs)`` takes the maps X1..Xn, each (B, Ci, Hi, Wi).

Inputs whose spatial sizes differ are resized to a reference size chosen by
``align`` (``first``, ``largest`` or ``smallest``) with ``F.interpolate``
(``resize_mode``, ``align_corners``). Each input owns a :class:`Resize` module so the
inserted resize shows up as a layer in the per-layer table. When sizes already
match, no module is called and no tensor is touched: alignment costs one size comparison
per input. Likewise, ``nn.Identity`` layers standing for options that are off (no norm, no
activation, no projection for an input already ``out_channels`` wide) are kept in the
module tree but never called (:func:`apply_each`, :func:`run_chain`, :class:`Chain`).
``forward`` reads its modules from the live tree on every call, so layers swapped after
construction (SyncBatchNorm, an activation replaced, fused modules) are the ones that run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError

AlignRef = Literal["first", "largest", "smallest"]
ResizeMode = Literal["nearest", "nearest-exact", "bilinear", "bicubic", "area"]

_ACTS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "hardswish": nn.Hardswish,
    "none": nn.Identity,
}
ActName = Literal["relu", "gelu", "silu", "swish", "sigmoid", "leaky_relu", "prelu", "hardswish", "none"]
NormName = Literal["bn", "gn", "none"]


def create_act(name: str) -> nn.Module:
    """Activation layer from its name (timm's ``create_act`` idea, reduced to what blocks use)."""
    return _ACTS[name]()


def create_norm(name: str, channels: int) -> nn.Module:
    if name == "bn":
        return nn.BatchNorm2d(channels)
    if name == "gn":
        return nn.GroupNorm(min(32, channels), channels) if channels % min(32, channels) == 0 else nn.GroupNorm(1, channels)
    return nn.Identity()


class Resize(nn.Module):
    """Resize a map to a target (H, W); a visible layer in the per-layer table."""

    def __init__(self, mode: str, align_corners: bool) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners if mode in ("bilinear", "bicubic") else None

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class FusionBlock(nn.Module):
    """Base class: validates widths and aligns spatial sizes.

    Subclasses set ``min_inputs`` / ``max_inputs`` and may change the alignment
    defaults with the class attributes ``default_align``, ``default_resize_mode`` and
    ``default_align_corners``.
    """

    min_inputs = 1
    max_inputs: int | None = None
    node_refusal: str | None = None  # why the block cannot be a neck's merge node (None: it can)
    default_align = "first"
    default_resize_mode = "bilinear"
    default_align_corners = False

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        *,
        align: AlignRef = None,  # type: ignore[assignment]  # None: the class default
        resize_mode: ResizeMode = None,  # type: ignore[assignment]
        align_corners: bool = None,  # type: ignore[assignment]
    ) -> None:
        super().__init__()
        in_channels = list(in_channels)
        kind = getattr(self, "kind", type(self).__name__)
        if len(in_channels) < self.min_inputs or (self.max_inputs is not None and len(in_channels) > self.max_inputs):
            allowed = f"at least {self.min_inputs}" if self.max_inputs is None else (
                f"exactly {self.min_inputs}" if self.min_inputs == self.max_inputs
                else f"{self.min_inputs} to {self.max_inputs}")
            raise SpecError(f"in_channels: '{kind}' got {len(in_channels)} input(s); allowed: {allowed}", field="in_channels")
        for c in [*in_channels, out_channels]:
            if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
                raise SpecError.bad("channels", c, "allowed: positive integers")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.align_ref = align or self.default_align
        self.resize_mode = resize_mode or self.default_resize_mode
        self.align_corners = self.default_align_corners if align_corners is None else align_corners
        self.resize = nn.ModuleList(Resize(self.resize_mode, self.align_corners) for _ in in_channels)

    def target_size(self, xs: Sequence[torch.Tensor]) -> tuple[int, int]:
        return self.reference_size([tuple(x.shape[-2:]) for x in xs])

    def reference_size(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The (H, W) that inputs are aligned to, chosen by ``align``."""
        if self.align_ref == "first":
            return sizes[0]
        key = lambda s: (s[0] * s[1], s)  # noqa: E731
        return max(sizes, key=key) if self.align_ref == "largest" else min(sizes, key=key)

    def aligned(self, xs: Sequence[torch.Tensor], size: Sequence[int] | None = None) -> Sequence[torch.Tensor]:
        """Resize every input to ``size`` (default: the ``align`` reference).

        Inputs already at that size are passed through; when all of them are (the common
        case), ``xs`` itself is returned after one shape comparison per input.
        """
        if size is None:
            # One C call per input when whole shapes match (``Tensor.shape`` costs ~0.2 us an
            # access here, ``is_same_size`` compares without building ``torch.Size`` objects).
            x0 = xs[0]
            for x in xs[1:]:
                if not x.is_same_size(x0):
                    break
            else:
                return xs
            first = x0.shape[-2:]
            if all(x.shape[-2:] == first for x in xs[1:]):  # widths differ, sizes match
                return xs
            size = self.target_size(xs)
        else:
            size = tuple(size)
        return [x if x.shape[-2:] == size else r(x, size) for r, x in zip(self.resize, xs)]

    def output_shape(self, shapes: Sequence[Sequence[int]]) -> tuple[int, ...]:
        """The documented shape contract: output (C, H, W) for inputs ``[(Ci, Hi, Wi), ...]``.

        Default: ``out_channels`` at the ``align`` reference size. Blocks that change the
        resolution (e.g. DPT's x2 upsampling) override this; the tests check every block's
        forward against it.
        """
        return (self.out_channels, *self.reference_size([tuple(s[-2:]) for s in shapes]))

    def check_inputs(self, xs: Sequence[torch.Tensor]) -> None:
        if len(xs) != len(self.in_channels):
            raise SpecError(f"forward: expected {len(self.in_channels)} inputs, got {len(xs)}", field="inputs")


# Blocks are dropped into real models (``create_fusion``), where their layers get swapped:
# ``nn.SyncBatchNorm.convert_sync_batchnorm``, an activation replaced by assignment, fusing for
# quantization. So ``forward`` reads its modules from the live tree on every call, never from
# a copy made at construction (a copy would keep calling the old modules after a swap, and
# those are no longer moved by ``.to()`` nor saved by ``state_dict``). Reading a container's
# ``_modules`` directly spares ``ModuleList.__iter__``'s Python call (~0.5 us); an
# ``nn.Identity`` (an option that is off) is skipped rather than called (~1 us a call).


def children(container: nn.Module):
    """The container's current children, in order (a ``ModuleList``'s or ``Sequential``'s)."""
    return container._modules.values()


def apply_each(container: nn.Module, xs: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """``[m(x) for m, x in zip(container, xs)]``, not calling identities; ``xs`` itself when
    every child is an identity. An identity never runs, so it is not an executed layer."""
    mods = container._modules.values()
    if all(type(m) is nn.Identity for m in mods):
        return xs
    return [x if type(m) is nn.Identity else m(x) for m, x in zip(mods, xs)]


def run_chain(x: torch.Tensor, *modules: nn.Module) -> torch.Tensor:
    """``x`` through ``modules`` in order, skipping identities."""
    for m in modules:
        if type(m) is not nn.Identity:
            x = m(x)
    return x


class Chain(nn.Sequential):
    """``nn.Sequential`` that does not call its ``nn.Identity`` members (the norm or activation
    of an option that is off): same module tree and parameter names as the plain container,
    one module call (~1-3 us of Python, more than a small GPU kernel) less per identity."""

    def forward(self, x):
        for m in self._modules.values():
            if type(m) is not nn.Identity:
                x = m(x)
        return x


def sum_maps(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """``X1 + X2 + ... + Xn``, left to right. (As a function, its partial sums are gone when it
    returns: a block that keeps a large intermediate in a local holds its memory, cold in cache
    by the next allocation, for the rest of ``forward``.)"""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def conv1x1(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)


def projections(in_channels: Sequence[int], out_channels: int, bias: bool = True) -> nn.ModuleList:
    """A 1x1 projection for each input whose width differs from ``out_channels``, identity otherwise."""
    return nn.ModuleList(nn.Identity() if c == out_channels else conv1x1(c, out_channels, bias) for c in in_channels)
