"""Checks run over every registered block: a new block is tested without editing this file."""

from __future__ import annotations

import sys

import pytest
import torch

from fusioncli import create_fusion, list_fusions, registry
from fusioncli.analysis.cost import CostCounter
from fusioncli.registry import block_options, get_info
from fusioncli.spec import channels_of, parse_shape

CASES = [
    (kind, cfg, [parse_shape(s) for s in inputs])
    for kind in list_fusions()
    for cfg, inputs in (("default", get_info(kind).inputs), ("alt", get_info(kind).alt_inputs))
    if inputs
]
IDS = [f"{k}-{c}" for k, c, _ in CASES]


def build(kind, shapes, out=None):
    torch.manual_seed(0)
    return create_fusion(kind, [channels_of(s) for s in shapes], out or get_info(kind).out, **registry.shape_options(kind, shapes))


def as_list(y):
    """A block's outputs as a list (one tensor, or the list of a block with several outputs)."""
    return list(y) if isinstance(y, (list, tuple)) else [y]


def inputs(shapes, batch=2, device="cpu"):
    gen = torch.Generator().manual_seed(1)
    return [torch.randn((batch, *s), generator=gen).to(device) for s in shapes]


@pytest.mark.parametrize("kind", list_fusions())
def test_registry_entry_is_complete(kind):
    info = get_info(kind)
    assert info.summary and info.source and info.inputs and info.out > 0
    assert info.alt_inputs, "give a second test configuration (mismatched widths/sizes where the design allows)"
    cls = type(build(kind, [parse_shape(s) for s in info.inputs]))
    assert cls.__module__.startswith("fusioncli.blocks.")
    # the block's own module (sys.modules; __import__ would return the top package, always documented)
    module_doc = sys.modules[cls.__module__].__doc__ or ""
    assert "Parameters" in module_doc or "Shape contract" in module_doc or len(module_doc.split()) > 30, kind
    assert (cls.__doc__ or "").strip() or module_doc.strip()
    opts = block_options(kind)
    assert {"align", "resize_mode", "align_corners"} <= set(opts)


@pytest.mark.parametrize("kind,cfg,shapes", CASES, ids=IDS)
def test_forward_shape_matches_contract(kind, cfg, shapes):
    block = build(kind, shapes).eval()
    with torch.no_grad():
        ys = as_list(block(*inputs(shapes)))
    contract = block.output_shape(shapes)  # a list of shapes for a block with several outputs (hrnet)
    assert [tuple(y.shape) for y in ys] == [(2, *s) for s in (contract if isinstance(contract, list) else [contract])]
    assert all(torch.isfinite(y).all() for y in ys)


@pytest.mark.parametrize("kind,cfg,shapes", CASES, ids=IDS)
def test_backward_reaches_every_parameter(kind, cfg, shapes):
    block = build(kind, shapes).train()
    xs = [x.requires_grad_() for x in inputs(shapes)]
    sum(y.square().mean() for y in as_list(block(*xs))).backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a gradient: {missing}"
    assert all(x.grad is not None for x in xs)


@pytest.mark.parametrize("kind,cfg,shapes", CASES, ids=IDS)
def test_meta_counting_equals_real_counting(kind, cfg, shapes):
    counts = {}
    for device in ("meta", "cpu"):
        torch.manual_seed(0)
        with torch.device(device):
            block = create_fusion(kind, [channels_of(s) for s in shapes], get_info(kind).out,
                                  **registry.shape_options(kind, shapes)).eval()
        xs = [torch.empty((1, *s), device=device).normal_() if device == "cpu" else torch.empty((1, *s), device="meta")
              for s in shapes]
        with torch.no_grad(), CostCounter() as c:
            block(*xs)
        r = c.result()
        counts[device] = (r.total.macs, r.total.flops, r.total.bytes_read, r.total.bytes_written, r.uncounted)
    assert counts["meta"] == counts["cpu"]
    assert counts["meta"][4] == {}, "ops without a FLOP formula"


@pytest.mark.parametrize("kind,cfg,shapes", CASES, ids=IDS)
def test_forward_calls_no_identity_and_registers_each_module_once(kind, cfg, shapes):
    """Issue 8: options that are off cost no module call (an nn.Identity call is ~1-3 us of
    Python, as much as a small GPU kernel), and the plain tuples forward uses to skip them or
    to avoid ModuleList indexing register nothing twice (state_dict keys stay unique)."""
    block = build(kind, shapes).eval()
    called = []
    for name, m in block.named_modules():
        if type(m) is torch.nn.Identity:
            m.register_forward_hook(lambda mod, args, out, name=name: called.append(name))
    with torch.no_grad():
        block(*inputs(shapes))
    assert called == []
    every = [n for n, _ in block.named_modules(remove_duplicate=False)]
    assert len(every) == len({id(m) for _, m in block.named_modules(remove_duplicate=False)})


@pytest.mark.parametrize("kind", [*list_fusions(), *registry.list_necks()])
def test_explain_reads_the_options_from_source_as_the_class_has_them(kind):
    """fusion explain parses the source (no torch): its options table must be the class's own."""
    from fusioncli import sourcedoc

    info = registry.get_info(kind)
    module_doc, class_doc, static = sourcedoc.describe("necks" if registry.is_neck(kind) else "blocks", info.target)
    real = registry.block_options(kind)
    assert [(o.name, o.describe(), o.default) for o in static.values()] == \
        [(o.name, o.describe(), o.default) for o in real.values()]
    assert module_doc and "``" not in sourcedoc.rst_to_text(module_doc)


def test_explain_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom fusioncli.cli.entry import run\nfrom fusioncli.cli import app\n"
            "rc = run(app, ['explain', 'aff'])\nrc2 = run(app, ['explain', 'neck:bifpn'])\n"
            "print('RESULT', rc, rc2, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RESULT 0 0 False" in out.stdout, out.stderr
