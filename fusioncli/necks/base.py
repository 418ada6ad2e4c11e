"""What every neck is made of: named nodes run in a fixed order over a pyramid.

A neck is a graph of :class:`Node` modules, each computing one tensor from tensors named
before it (the inputs ``C2``, ``C3``, ... and earlier nodes). A node is either a layer of
the topology (a lateral 1x1 conv, an output 3x3 conv, a stride-2 conv, a max pool, an
upsampling) or a *merge*: the fusion node, built from any fusion kind (``--node``). A
merge brings its inputs to what the node needs, visibly, as layers of the node:

* ``proj.i``: a projection of input ``i`` to the neck's width where the topology's reference
  code has one (BiFPN's per-edge 1x1 conv + BN);
* ``resize.i``: input ``i`` resized to the size of the merge's reference input (``ref``,
  the level the merge belongs to) when the sizes differ: upsampling (nearest, as FPN),
  max pooling (BiFPN), centre crop or zero pad (U-Net).

Every op of the forward runs inside exactly one node, so the nodes' costs add up to the
neck's total (the per-node report is a partition). ``forward(*pyramid)`` returns a dict
``{"P3": tensor, ...}`` of the output levels. The plan holds names only: a node swapped
after construction (SyncBatchNorm, fused layers) is the one that runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FusionError, RunError, SpecError
from ..blocks.base import apply_each, children, pad_same


class CropOrPad(nn.Module):
    """Centre-crop a larger map or zero-pad a smaller one to a target (H, W) (U-Net's skip crop;
    milesial/Pytorch-UNet's ``F.pad`` of the upsampled map: the extra row/column at the end)."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = size
        if h >= th and w >= tw:
            top, left = (h - th) // 2, (w - tw) // 2
            return x[..., top:top + th, left:left + tw]
        dh, dw = th - h, tw - w
        return F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])


class Node(nn.Module):
    """One node of a neck: optional per-input projections and resizes, then ``op``.

    ``kind`` is what the report shows (the fusion kind of a merge, or the layer's name);
    ``level`` the pyramid level of its output; ``merge`` whether it is a fusion node.
    """

    def __init__(self, op: nn.Module, *, kind: str, level: int, merge: bool = False,
                 proj: Sequence[nn.Module] | None = None, resize: Sequence[nn.Module] | None = None,
                 ref: int = 0, size_input: bool = False) -> None:
        super().__init__()
        self.size_input = size_input  # the last input only gives the output size: op(*rest, size=its (H, W))
        self.kind = kind
        self.level = level
        self.merge = merge
        self.ref = ref
        self.proj = nn.ModuleList(proj) if proj is not None else None
        self.resize = nn.ModuleList(resize) if resize is not None else None
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.size_input:
            *xs, target = xs
            return self._run(xs, size=target.shape[-2:])
        return self._run(xs)

    def _run(self, xs, **kw) -> torch.Tensor:
        if self.proj is not None:
            xs = apply_each(self.proj, xs)
        if self.resize is not None:
            size = xs[self.ref].shape[-2:]
            xs = [x if x.shape[-2:] == size else r(x, size) for r, x in zip(children(self.resize), xs)]
        return self.op(*xs, **kw)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, level={self.level}" + (", merge=True" if self.merge else "")


class Neck(nn.Module):
    """A neck: ``nodes`` (an ``nn.ModuleDict``) run in insertion order over the named pyramid.

    Subclasses build the graph in ``__init__`` with :meth:`add` and :meth:`output`.
    ``in_channels`` are the pyramid's widths, fine to coarse; the inputs are named
    ``C{first_level}``, ``C{first_level + 1}``, ...
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, first_level: int) -> None:
        super().__init__()
        in_channels = list(in_channels)
        for c in [*in_channels, out_channels]:
            if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
                raise SpecError.bad("channels", c, "allowed: positive integers")
        if first_level < 0:
            raise SpecError.bad("first_level", first_level, "allowed: an integer >= 0 (2: the finest input is C2)")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.first_level = first_level
        self.input_names = tuple(f"C{first_level + i}" for i in range(len(in_channels)))
        self.nodes = nn.ModuleDict()
        self.plan: list[tuple[str, tuple[str, ...]]] = []  # (node id, names of its inputs), in order
        self.outputs: dict[str, str] = {}  # output level name -> node id
        self.widths: dict[str, int] = dict(zip(self.input_names, in_channels))  # tensor name -> channels

    def add(self, node_id: str, node: Node, inputs: Sequence[str], width: int) -> str:
        self.nodes[node_id] = node
        self.plan.append((node_id, tuple(inputs)))
        self.widths[node_id] = width
        return node_id

    def output(self, level: int | str, node_id: str) -> None:
        """Make ``node_id`` an output: ``P{level}``, or the name given."""
        self.outputs[level if isinstance(level, str) else f"P{level}"] = node_id

    def forward(self, *xs: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(xs) != len(self.input_names):
            raise SpecError(f"forward: expected {len(self.input_names)} pyramid levels "
                            f"({', '.join(self.input_names)}), got {len(xs)}", field="inputs")
        env = dict(zip(self.input_names, xs))
        nodes = self.nodes._modules
        for node_id, names in self.plan:
            args = [env[n] for n in names]
            try:
                env[node_id] = nodes[node_id](*args)
            except FusionError:
                raise
            except Exception as e:
                node = nodes[node_id]
                shapes = " + ".join("x".join(str(int(d)) for d in a.shape[1:]) for a in args)
                raise RunError(f"node {node_id!r} ({getattr(node, 'kind', type(node).__name__)}, inputs {shapes}) "
                               f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        return {name: env[node_id] for name, node_id in self.outputs.items()}

    def node_inputs(self) -> dict[str, tuple[str, ...]]:
        return dict(self.plan)


# --------------------------------------------------------------------------- the swappable node


def fusion_factory(kind: str, options: dict[str, Any] | None = None) -> Callable[[list[int], int], nn.Module]:
    """``make(in_channels, out_channels)`` building the fusion node ``kind`` (a built-in kind, or a
    user block reference ``/abs/file.py:Name`` / ``package.module:Name`` / plugin kind) with
    ``options`` (already typed)."""
    from .. import registry, userblock

    options = dict(options or {})
    if registry.is_neck(kind):
        raise SpecError.bad("node", kind, "a fusion block kind or a user block (FILE.py:NAME), not a neck")
    if kind in registry.kinds():
        def make(in_channels: list[int], out_channels: int) -> nn.Module:
            return registry.create_fusion(kind, in_channels, out_channels, **options)
        return make
    target = userblock.load_reference(kind)

    def make_user(in_channels: list[int], out_channels: int) -> nn.Module:
        kwargs = dict(options)
        convention = userblock.takes(target)
        if "in_channels" in convention:
            kwargs["in_channels"] = userblock.channels_arg(target, in_channels)
        if "out_channels" in convention:
            kwargs["out_channels"] = out_channels
        return userblock.construct(target, kwargs, userblock.reference_roots(kind))
    return make_user


def node_width(kind: str, in_channels: Sequence[int], width: int) -> int:
    """The output width a merge of ``kind`` gets: the neck's ``width``, or the sum of the inputs for a
    kind whose output is their concatenation (``cat``)."""
    from .. import registry

    if kind in registry.kinds() and getattr(registry.get_class(kind), "width_rule", None) == "sum":
        return sum(in_channels)
    return width


def build_merge(make: Callable, kind: str, node_id: str, in_channels: Sequence[int], out_channels: int,
                **node_kw: Any) -> Node:
    """A merge node: the fusion block from ``make``, its construction errors naming the merge."""
    widths = " + ".join(map(str, in_channels))
    try:
        op = make(list(in_channels), out_channels)
    except FusionError as e:
        raise SpecError(f"node {node_id!r}: '{kind}' cannot serve this merge ({len(in_channels)} inputs, "
                        f"widths {widths} -> {out_channels}): {e}", field="node") from None
    if getattr(op, "not_a_node", None):
        raise SpecError(f"node {node_id!r}: '{kind}' cannot serve a merge: {op.not_a_node}", field="node")
    return Node(op, kind=kind, merge=True, **node_kw)


def takes_size(module: nn.Module) -> bool:
    """Whether ``module.forward`` takes a ``size`` keyword (the ``dpt`` block, as Depth Anything's)."""
    import inspect

    try:
        return "size" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def conv(cin: int, cout: int, k: int, stride: int = 1, bias: bool = True, padding: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding, bias=bias)


class MaxPool(nn.Module):
    """``F.max_pool2d(x, kernel, stride, padding)``: torchvision's / mmdet's P6 (1, 2, 0) or a BiFPN 3x3/2 pool;
    ``padding="same"``: TF-"same" padding (``pad_same``), as zylo117's BiFPN."""

    def __init__(self, kernel: int, stride: int, padding: int | str) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            return F.max_pool2d(pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}"
