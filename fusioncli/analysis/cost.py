"""Exact cost accounting: MACs, FLOPs and bytes moved for every aten op of a forward pass.

Why not just torch's ``FlopCounterMode`` or fvcore: both count only the matrix
products (conv, mm, bmm, attention) and report the element-wise ops that do the
*fusing* (add, mul, sigmoid, softmax, interpolation, normalisation) as zero, so an
``add`` fusion shows 0 FLOPs. This counter is a ``TorchDispatchMode`` like
``FlopCounterMode``: for the matrix products it calls torch's own formulas
(``torch.utils.flop_counter.flop_registry``, which count 2 FLOPs per MAC, bias
excluded) and halves them into MACs; for everything else it applies the table
below. Ops that no formula covers are never silently zero: they are collected in
``uncounted`` with their call counts.

Every formula, built-in or added with :func:`fusioncli.register_formula` or through the
``fusioncli.formulas`` entry points, lives in one table: :mod:`fusioncli.analysis.formulas`.

Convention ``fusion-v1`` (per output element unless stated):

==========================================  =========================================
op                                           FLOPs
==========================================  =========================================
conv, linear, mm, bmm, attention             2 per MAC (MACs: bias excluded)
bias add of conv / addmm / baddbmm           1
add, sub, mul, div, neg, activations, ...    1  (sigmoid, gelu, silu: 1 as well)
addcmul, addcdiv                             2
lerp                                         3
nn.Bilinear (aten _trilinear)               2 per MAC, +1 (MACs: both contractions)
softmax, log_softmax                         5  (max, sub, exp, sum, div)
batch norm, inference (running stats)        2, +2 with affine weight and bias
batch/layer/group/instance norm, statistics  5, +2 with affine weight and bias
sum, amax, amin, max/min over a dim          1 per *input* element
mean                                         1 per input element + 1 per output
var, std                                     3 per input element
avg/max pooling (2-D and 3-D)                kernel area (volume)
adaptive avg pooling (2-D and 3-D)           1 per input element + 1 per output
adaptive max pooling (2-D and 3-D)           1 per *input* element
bilinear / bicubic interpolation             7 / 31 (weights precomputed)
trilinear interpolation (volumes)            15 (8 taps: 8 products, 7 sums)
grid sampling, bilinear / nearest / bicubic  7 / 0 / 35, + per grid point (see below)
unfold (im2col) / fold (col2im)              0 / 1 per column element (overlaps add)
nearest interpolation, cat, copy, pad        0 (data movement: bytes only)
views (view, permute, expand, slice, ...)    0 and no bytes
==========================================  =========================================

Grid sampling, per grid point (shared by the channels): unnormalise 4 (mul, add per axis); padding
per clipped coordinate (2 for bilinear and nearest, 8 for bicubic's taps): zeros 0, border 2,
reflection 8; the weights: bilinear 10 (floor 2, fractions 2, complements 2, corner products 4),
nearest 2 (round), bicubic 54 (floor 2, fractions 2, 4 cubic coefficients per axis 2 x 25).
Pixel shuffle and einsum need nothing of their own: one is data movement, the other runs as
``bmm`` under the dispatcher.

Bytes: every op that is not a view reads its tensor arguments and writes its
outputs; ``bytes_read`` and ``bytes_written`` add those sizes up. This is the
traffic of an unfused eager execution, an upper bound on DRAM traffic.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry as _TORCH_FLOP_FORMULAS  # noqa: F401 (crosscheck reads it)
from torch.utils.module_tracker import ModuleTracker

from . import formulas
from .formulas import BATCH_NORM_OPS, VIEW_OPS, evaluate, lookup
from .metashapes import meta_shortcut

CONVENTION = (
    "fusion-v1: MACs = multiply-accumulates of conv/linear/matmul/attention, bias excluded; "
    "FLOPs = 2 x MACs + 1 per output element of each add/sub/mul/div, bias add and activation "
    "+ stated per-element counts for softmax, normalisation, pooling and interpolation"
)


def _overloads(names: str) -> set:
    """The ``ns.op.overload`` names that exist in this torch (older releases lack some)."""
    out = set()
    for name in names.split():
        ns, packet, overload = name.split(".")
        o = getattr(getattr(getattr(torch.ops, ns), packet, None), overload, None)
        if o is not None:
            out.add(o)
    return out


_IGNORED = _overloads(  # metadata queries that carry no work (the same list FlopCounterMode skips)
    "aten.sym_size.default aten.sym_stride.default aten.sym_numel.default aten.is_contiguous.default "
    "aten.stride.default aten.size.default aten.dim.default aten.numel.default aten.is_same_size.default "
    "aten.sym_storage_offset.default aten.storage_offset.default prim.device.default "
    "aten.is_contiguous.memory_format aten.is_strides_like_format.default "
    "aten.is_non_overlapping_and_dense.default aten.sym_is_contiguous.default prim.layout.default")

_PLANS: dict = {}


def _plan(func) -> tuple[str, bool, bool]:
    """(name in by_op and uncounted, is a view, writes its first output only), cached per OpOverload."""
    plan = _PLANS.get(func)
    if plan is None:
        packet = func._overloadpacket
        name = packet._qualified_op_name
        plan = _PLANS[func] = (str(packet), name in VIEW_OPS, name in BATCH_NORM_OPS)
    return plan


_ADD = torch.ops.aten.add.Tensor


def _tensors(obj) -> list[torch.Tensor]:
    """The tensors of an op's arguments or outputs: tensors, lists and tuples of them read directly (most
    ops), anything else flattened with pytree."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        out = []
        for x in obj:
            if isinstance(x, torch.Tensor):
                out.append(x)
            elif isinstance(x, (list, tuple, dict)):
                out.extend(_tensors(x))
        return out
    if isinstance(obj, dict):
        return _tensors(list(obj.values()))
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


@dataclass
class Tally:
    calls: int = 0
    macs: int = 0
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def copy(self) -> Tally:
        return Tally(self.calls, self.macs, self.flops, self.bytes_read, self.bytes_written)

    def add(self, macs: int, flops: int, read: int, written: int) -> None:
        self.calls += 1
        self.macs += macs
        self.flops += flops
        self.bytes_read += read
        self.bytes_written += written

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CostResult:
    total: Tally
    by_op: dict[str, Tally]
    by_module: dict[str, Tally]
    uncounted: dict[str, int]
    peak_activation_bytes: int
    touched: set = field(default_factory=set, repr=False)  # ids of tensors that took part in an op
    largest_op_bytes: int = 0  # the most bytes one op call read and wrote (its kernel's working set)


class CostCounter(TorchDispatchMode):
    """Count MACs, FLOPs and bytes of everything run inside the context.

    Per-module figures are inclusive (a module's count contains its children's), as in
    ``FlopCounterMode``; module names are the dotted paths of ``ModuleTracker`` with the
    root's class name dropped.
    """

    def __init__(self, root_name: str | None = None, *, track_modules: bool = True) -> None:
        super().__init__()
        formulas.ensure_entry_point_formulas()
        self.total = Tally()
        self.by_op: dict[str, Tally] = defaultdict(Tally)
        self.by_module: dict[str, Tally] = defaultdict(Tally)
        self.uncounted: Counter[str] = Counter()
        self.touched: set[int] = set()
        # the tracker's backward hooks hold gradients (autograd then copies them instead of keeping them):
        # a pass that measures memory runs without it
        self.tracker = ModuleTracker() if track_modules else None
        self.root_name = root_name
        self.live = 0
        self._held: dict[int, int] = {}  # live storages: id -> bytes
        self.peak = 0
        self.largest = 0
        self._depth = 0
        self._paused = False
        self.accumulating: set[int] | None = None  # storages made in a backward (see backward_memory)

    def __enter__(self):
        # the mode is re-entered to count decompositions: register the module hooks once only,
        # or the outer registration's handles are lost and its global hooks leak
        if self._depth == 0 and self.tracker is not None:
            self.tracker.__enter__()
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        self._depth -= 1
        if self._depth == 0 and self.tracker is not None:
            self.tracker.__exit__()
        return result

    @contextlib.contextmanager
    def paused(self):
        """Run ops inside uncounted and untracked (tensors the caller makes, e.g. an incoming gradient)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def current_module(self) -> str:
        """The innermost module running now ("" for the root or outside any module)."""
        return max(self._module_names(), key=lambda n: n.count(".") + bool(n), default="")

    def _hold(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage as live until the storage itself is freed (a tensor autograd saved
        outlives its Python object; an in-place op's output is a storage already held)."""
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._held:
            return
        nbytes = storage.nbytes()
        self._held[key] = nbytes
        if self.accumulating is not None:
            self.accumulating.add(key)
        self.live += nbytes
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.live -= self._held.pop(key, 0)
        if self.accumulating is not None:
            self.accumulating.discard(key)

    def _accumulates(self, args) -> bool:
        """Whether ``add(a, b)`` in a backward is the engine summing two gradients of one tensor into a
        buffer it alone holds (``InputBuffer::accumulate``), which a real run does in place. Under a
        dispatch mode the engine sees the mode's reference and adds out of place, so the counter holds the
        sum in the buffer's stead: a gradient made in this backward, dense, not a view, of the sum's shape."""
        a, b = args[0], args[1] if len(args) > 1 else None
        return (isinstance(b, torch.Tensor) and a._base is None and a.shape == b.shape and a.dtype == b.dtype
                and a.is_contiguous() and a.untyped_storage()._cdata in self.accumulating)

    @contextlib.contextmanager
    def backward_memory(self):
        """Inside, gradients the autograd engine accumulates count once, as a real run allocates them."""
        self.accumulating = set()
        try:
            yield
        finally:
            self.accumulating = None

    def _module_names(self) -> list[str]:
        names = []
        for p in (self.tracker.parents if self.tracker is not None else ()):
            if p == "Global":
                continue
            if self.root_name and (p == self.root_name or p.startswith(self.root_name + ".")):
                p = p[len(self.root_name) + 1:]
            names.append(p)
        return names

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _IGNORED or self._paused:
            return func(*args, **kwargs)
        formula = lookup(func)
        if formula is None:
            # Try the op's own decomposition (as FlopCounterMode does) before giving up.
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = meta_shortcut(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        name, view, first_output_only = _plan(func)
        if formula is None:
            self.uncounted[name] += 1
            macs = flops = 0
        else:
            macs, flops = evaluate(formula, args, kwargs, out)
        ins = _tensors((args, kwargs))
        for t in ins:
            self.touched.add(id(t))
        outs = _tensors(out)
        if first_output_only:
            # the saved mean/invstd outputs are empty on CPU in eval mode but not on meta:
            # count the normalised map only, so meta and real devices agree
            outs = outs[:1]
        if view:  # shares its base's storage, which is followed already
            read = written = 0
        else:
            read = sum(t.numel() * t.element_size() for t in {id(t): t for t in ins}.values())
            written = sum(t.numel() * t.element_size() for t in outs)
            if self.accumulating is not None and func is _ADD and self._accumulates(args):
                self._release(args[0].untyped_storage()._cdata)  # autograd adds into the buffer it holds
            for o in outs:
                self._hold(o)
            self.peak = max(self.peak, self.live)
            self.largest = max(self.largest, read + written)
        self.total.add(macs, flops, read, written)
        self.by_op[name].add(macs, flops, read, written)
        for module in self._module_names():
            self.by_module[module].add(macs, flops, read, written)
        return out

    def result(self) -> CostResult:
        return CostResult(self.total, dict(self.by_op), dict(self.by_module), dict(self.uncounted), self.peak,
                          self.touched, self.largest)

