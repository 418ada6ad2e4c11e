"""Blocks survive module swaps: ``forward`` runs the modules of the live tree.

A block dropped into a real model (``create_fusion``) gets its layers swapped: by
``nn.SyncBatchNorm.convert_sync_batchnorm``, by assigning a new layer, by fusing for
quantization. For every block kind:

* every leaf layer that ran is replaced by a copy of itself: the copies run, the replaced
  layers never do, and the output is unchanged;
* every ``nn.Identity`` (an option that is off) replaced by a real module runs;
* after ``convert_sync_batchnorm`` no ``BatchNorm2d`` runs and the output is unchanged (eval);
* ``.to(torch.float64)`` moves what runs (a stale copy would stay float32 and fail), and a
  ``state_dict`` round trip into a fresh block gives the swapped block's output.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fusioncli import create_fusion, list_fusions
from fusioncli.registry import block_options, get_info
from fusioncli.spec import channels_of, parse_shape


# where the default inputs run no layer at all (add of equal widths is one sum), widths that do
INPUTS = {"add": ["32x8x8", "64x8x8"]}


def shrink(shape):
    """Size-independent checks: a map's or a volume's sizes to a quarter (at least 4), a token set's N likewise;
    a vector as it is."""
    if len(shape) == 2:
        return (max(4, shape[0] // 4), shape[1])
    return (shape[0], *(max(4, d // 4) for d in shape[1:]))


def build(kind: str, inputs: list[str] | None = None, **options):
    info = get_info(kind)
    shapes = [parse_shape(s) for s in inputs or info.inputs]
    shapes = [shrink(s) for s in shapes]
    torch.manual_seed(0)
    block = create_fusion(kind, in_channels=[channels_of(s) for s in shapes], out_channels=info.out, **options).eval()
    torch.manual_seed(1)
    return block, [torch.randn(2, *s) for s in shapes]


def executed(block: nn.Module, xs) -> tuple[torch.Tensor, list[nn.Module]]:
    ran: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: ran.append(m)) for m in block.modules()]
    try:
        with torch.no_grad():
            y = block(*xs)
            if isinstance(y, list):  # several outputs (hrnet): compared as one tensor
                y = torch.cat([t.flatten(1) for t in y], 1)
    finally:
        for h in hooks:
            h.remove()
    return y, ran


def replace(block: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, attr, new)


class Marker(nn.Module):
    """Stands for a real layer put where an identity was: passes its input through, counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def stale(module, inputs, output):
    raise AssertionError(f"a replaced {type(module).__name__} ran: forward used a copy of the old tree")


KINDS = list_fusions()


@pytest.mark.parametrize("kind", KINDS)
def test_replaced_layers_are_the_ones_that_run(kind):
    block, xs = build(kind, INPUTS.get(kind))
    y0, ran = executed(block, xs)
    names = {id(m): n for n, m in block.named_modules()}
    leaves = sorted({names[id(m)] for m in ran if m is not block and not list(m.children())})
    if not leaves:  # a block of no layers at all (cat): nothing to swap
        assert not list(block.parameters()) and torch.equal(y0, executed(block, xs)[0]), kind
        return
    old = []
    for name in leaves:
        m = block.get_submodule(name)
        m.register_forward_hook(stale)
        old.append(m)
        replace(block, name, copy.deepcopy(m))  # the copy has no hooks (deepcopy keeps them: drop)
        block.get_submodule(name)._forward_hooks.clear()
    y1, ran1 = executed(block, xs)
    assert torch.equal(y0, y1)
    ran_ids = {id(m) for m in ran1}
    assert all(id(block.get_submodule(n)) in ran_ids for n in leaves)
    assert not any(id(m) in ran_ids for m in old)

    fresh, _ = build(kind, INPUTS.get(kind))
    fresh.load_state_dict(block.state_dict())
    assert torch.equal(executed(fresh, xs)[0], y1)

    block.to(torch.float64)
    y64, _ = executed(block, [x.double() for x in xs])
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_an_identity_replaced_by_a_layer_runs(kind):
    block, xs = build(kind)
    y0, _ = executed(block, xs)
    idents = [n for n, m in block.named_modules() if type(m) is nn.Identity]
    if not idents:
        pytest.skip(f"{kind} has no identity layers")
    markers = {}
    for name in idents:
        markers[name] = Marker()
        replace(block, name, markers[name])
    y1, _ = executed(block, xs)
    assert torch.equal(y0, y1)
    assert {n: m.calls > 0 for n, m in markers.items()} == {n: True for n in idents}


def with_batchnorm(kind: str) -> dict:
    """The options that give ``kind`` batch norms where it has such an option."""
    opts = block_options(kind)
    if "bn" in (getattr(opts.get("norm"), "choices", None) or ()):
        return {"norm": "bn"}
    return {"bn": True} if "bn" in opts else {}


@pytest.mark.parametrize("kind", KINDS)
def test_sync_batchnorm_conversion(kind):
    block, xs = build(kind, **with_batchnorm(kind))
    y0, ran = executed(block, xs)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in ran)
    assert n_bn > 0 or kind in {"add", "cat", "gated", "skff", "crossattn", "segformer", "film", "carafe", "dysample",
                                "fapn", "msdeform", "gatedxattn", "qformer"}, f"{kind}: no batch norm ran"
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(block).eval()
    y1, ran1 = executed(converted, xs)
    assert not any(type(m) is nn.BatchNorm2d for m in ran1)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in ran1) == n_bn
    torch.testing.assert_close(y1, y0)
