"""``--crosscheck``: the same block counted by fvcore, torch's ``FlopCounterMode`` and torchinfo.

Each tool's figure is shown in its own unit with its ratio to fusion's count in the same
unit, and with the ops it skipped, so a user can see *why* the tools disagree:

- fvcore ``FlopCountAnalysis`` counts one multiply-accumulate as one "flop" (so it is
  compared with fusion's MACs) and skips element-wise ops, listing them as unsupported.
  It traces with the JIT, which does not run on the meta device, so it runs on CPU tensors.
- torch ``FlopCounterMode`` counts 2 FLOPs per MAC of conv/mm/bmm/attention only (compared
  with fusion's FLOPs); the ops it does not count are those fusion counted and it did not.
- torchinfo's mult-adds (from the same meta pass as the layer table) count only modules that
  own weights, as parameters x output elements, bias included (compared with fusion's MACs).
  So it misses every product outside such a module (attention's q @ k^T and attn @ v, any
  functional matmul) and every element-wise op; and for a non-conv layer it multiplies the
  parameters by the output's *first* dimension only (``LayerInfo.calculate_macs``), so a
  Linear over B x N x C tokens counts 1/N of its MACs. Both are named in ``notes``.

fvcore is imported only here, only when asked for.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .cost import _TORCH_FLOP_FORMULAS


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def crosscheck(model_factory, input_factory, *, macs: int, flops: int, by_op: dict[str, Any],
               torchinfo_mult_adds: int, torchinfo_layers=()) -> dict[str, Any]:
    """``model_factory(device)`` builds the block, ``input_factory(device)`` its forward's (args, kwargs)."""
    out: dict[str, Any] = {}
    fusion_flop_ops = {name for name, v in by_op.items() if v["flops"]}

    # fvcore: JIT trace on CPU tensors (its trace fails on meta)
    try:
        from fvcore.nn import FlopCountAnalysis

        model, (xs, kws) = model_factory("cpu"), input_factory("cpu")
        if kws:
            raise TypeError("fvcore passes inputs positionally only (not with --pack kwargs)")
        analysis = FlopCountAnalysis(model, tuple(xs))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with warnings.catch_warnings():  # its JIT tracing warns about torch.jit deprecation
            warnings.simplefilter("ignore")
            total = int(analysis.total())
        out["fvcore"] = {
            "value": total,
            "unit": "MAC (fvcore calls one multiply-accumulate a flop)",
            "compared_with": "macs",
            "ratio": _ratio(total, macs),
            "skipped_ops": dict(analysis.unsupported_ops()),
        }
    except Exception as e:  # a tool that cannot handle the block is reported, not fatal
        out["fvcore"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}

    # torch FlopCounterMode: runs on meta like fusion's own pass
    try:
        model, (xs, kws) = model_factory("meta"), input_factory("meta")
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(*xs, **kws)
        total = counter.get_total_flops()
        counted = {str(k) for k in counter.get_flop_counts().get("Global", {})}
        out["torch_flop_counter"] = {
            "value": total,
            "unit": "FLOP (2 per multiply-accumulate)",
            "compared_with": "flops",
            "ratio": _ratio(total, flops),
            "skipped_ops": sorted(op for op in fusion_flop_ops if op not in counted and
                                  getattr(torch.ops.aten, op.split(".", 1)[-1], None) not in _TORCH_FLOP_FORMULAS),
        }
    except Exception as e:  # a block that cannot run on meta (counted on CPU) or other failure
        out["torch_flop_counter"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}

    out["torchinfo"] = {
        "value": int(torchinfo_mult_adds),
        "unit": "mult-adds of modules with weights, bias included",
        "compared_with": "macs",
        "ratio": _ratio(torchinfo_mult_adds, macs),
        "skipped_ops": sorted(op for op in fusion_flop_ops if op not in _WEIGHTED_MODULE_OPS),
        "notes": _torchinfo_notes(by_op, torchinfo_layers),
    }
    return out


# the ops a module with weights produces (conv, Linear's addmm/mm); the other products (bmm,
# baddbmm, attention kernels) come from functional code such as attention's q @ k^T
_WEIGHTED_MODULE_OPS = {"aten.convolution", "aten.addmm", "aten.mm", "aten.linear"}
_PRODUCTS = ("aten.bmm", "aten.baddbmm", "aten.matmul", "aten._scaled_dot_product", "aten.einsum")


def _torchinfo_notes(by_op: dict[str, Any], layers) -> list[str]:
    """Why torchinfo's figure differs, in the two ways its module-based count departs from the ops."""
    notes = []
    outside = {op: v["macs"] for op, v in by_op.items() if v["macs"] and op.startswith(_PRODUCTS)}
    if outside:
        notes.append(f"{sum(outside.values()):,} MACs of products outside modules with weights "
                     f"({', '.join(sorted(outside))}: e.g. attention's q @ k^T and attn @ v) are not counted")
    per_batch = []
    for layer in layers:
        size = list(getattr(layer, "output_size", []) or [])
        own = getattr(layer, "module", None)
        if (len(size) > 2 and "Conv" not in layer.class_name and own is not None
                and next(own.parameters(recurse=False), None) is not None and layer.macs):
            tokens = 1
            for d in size[1:-1]:
                tokens *= d
            per_batch.append(f"{layer.var_name or layer.class_name} 1/{tokens:,}")
    if per_batch:
        notes.append("non-conv layers with outputs of more than 2 dims count parameters x the first output "
                     "dimension, not x every token, so each counts a fraction of its MACs: " + ", ".join(per_batch))
    return notes
