"""``--crosscheck``: the same block counted by fvcore, torch's ``FlopCounterMode`` and torchinfo.

Each tool's figure is shown in its own unit with its ratio to fusion's count in the same
unit, and with the ops it skipped, so a user can see *why* the tools disagree:

- fvcore ``FlopCountAnalysis`` counts one multiply-accumulate as one "flop" (so it is
  compared with fusion's MACs) and skips element-wise ops, listing them as unsupported.
  It traces with the JIT, which does not run on the meta device, so it runs on CPU tensors.
- torch ``FlopCounterMode`` counts 2 FLOPs per MAC of conv/mm/bmm/attention only (compared
  with fusion's FLOPs); the ops it does not count are those fusion counted and it did not.
- torchinfo's mult-adds (from the same meta pass as the layer table) count only modules that
  own weights, and count the bias as MACs (compared with fusion's MACs).

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
               torchinfo_mult_adds: int) -> dict[str, Any]:
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
        "skipped_ops": sorted(op for op in fusion_flop_ops if op != "aten.convolution" and "mm" not in op),
    }
    return out
