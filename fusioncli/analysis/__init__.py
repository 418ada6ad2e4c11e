"""Analysis: build a block, measure it, return a :class:`fusioncli.report.Report`.

Passes per report:

1. One forward on the ``meta`` device (no activation memory, time independent of
   resolution) under :class:`CostCounter` *and* torchinfo's hooks at once: output
   shapes, the per-layer table, MACs/FLOPs/bytes and peak activation memory all
   come from this single pass.
2. Only when timing: the block is built again on the real device with the same
   seed and timed (warm-up plus measured calls, see :mod:`.timing`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torchinfo import summary

from .. import registry
from ..errors import FusionError, RunError, SpecError
from ..report import Layer, Report, Timing
from ..spec import Spec, resolve_spec
from . import guard
from .cost import CONVENTION, CostCounter
from .nodynamo import without_dynamo_import
from .timing import TimingMode, time_forward

SEED = 0
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def environment(device: str, dtype: str, threads: int | None) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "device": device,
        "dtype": dtype,
        "threads": threads or torch.get_num_threads(),
    }


def check_device(device: str, dtype: str) -> None:
    if dtype not in DTYPES:
        raise SpecError.bad("--dtype", dtype, "allowed: " + ", ".join(DTYPES), choices=DTYPES)
    if device not in ("cpu", "cuda"):
        raise SpecError.bad("--device", device, "allowed: cpu, cuda", choices=("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("--device: 'cuda' is not available here (torch.cuda.is_available() is False); allowed: cpu",
                       field="--device")


def build(spec: Spec, device: str | torch.device, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(SEED)
    with torch.device(device):
        model = registry.create_fusion(spec.block, spec.inputs and [s[0] for s in spec.inputs], spec.out,
                                       **spec.options)
    return model.to(dtype=dtype).eval()


def make_inputs(spec: Spec, device: str | torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED)
    if str(device) == "meta":
        return [torch.empty((spec.batch, *s), device="meta", dtype=dtype) for s in spec.inputs]
    return [torch.randn((spec.batch, *s), generator=gen).to(device=device, dtype=dtype) for s in spec.inputs]


def _fusion_cause(e: BaseException) -> FusionError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, FusionError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _layers(stats, root: torch.nn.Module, depth: int) -> list[Layer]:
    names = {id(m): n for n, m in root.named_modules()}
    rows = []
    for info in stats.summary_list:
        if info.depth == 0 or info.depth > depth or not info.executed:
            continue
        name = names.get(info.layer_id, info.var_name)
        rows.append(Layer(name=name, type=info.class_name, depth=info.depth,
                          output_shape=list(info.output_size), params=int(info.num_params)))
    return rows


def _time(spec: Spec, device: str, tdtype: torch.dtype, threads: int, min_time: float, mode: TimingMode,
          cost: dict) -> Timing:
    """Build the block on the real device and time it; add the derived throughput figures."""
    build_dtype = torch.float32 if mode.autocast else tdtype  # autocast keeps float32 weights and inputs
    real = build(spec, device, build_dtype)
    real_xs = make_inputs(spec, device, build_dtype)
    t = time_forward(real, real_xs, threads=threads, min_time=min_time, mode=mode, dtype=tdtype)
    seconds = t.median_ms / 1e3
    forward = not mode.backward
    return replace(
        t,
        dtype_mode="autocast" if mode.autocast else "cast",
        gflops_per_s=cost["flops"] / seconds / 1e9 if forward and seconds > 0 else None,
        gbytes_per_s=cost["bytes"]["total"] / seconds / 1e9 if forward and seconds > 0 else None,
        samples_per_s=spec.batch / seconds if seconds > 0 else None,
    )


def analyze(
    spec: Spec | str,
    *,
    inputs: list[str] | None = None,
    out: int | None = None,
    options: dict[str, Any] | None = None,
    batch: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    time: bool = True,
    depth: int = 3,
    min_time: float = 0.4,
    crosscheck: bool = False,
    timing_mode: TimingMode | None = None,
    force: bool = False,
) -> Report:
    """Analyse one block. ``spec`` is a :class:`Spec` or a spec string (kind, preset, file).

    Before any real tensor exists, :mod:`.guard` refuses a run that would not fit in memory;
    ``force=True`` lifts that guard.
    """
    if isinstance(spec, str):
        spec = resolve_spec(spec, inputs=inputs, out=out, options=options, batch=batch)
    check_device(device, dtype)
    tdtype = DTYPES[dtype]
    if timing_mode is not None and timing_mode.autocast and tdtype == torch.float32:
        raise SpecError("--autocast: needs --dtype bfloat16 or float16 (autocast to float32 changes nothing)",
                        field="--autocast")

    guard.check_spec(spec, dtype, device=device, real_run=time or crosscheck, threads=threads, force=force)
    with guard.meta_errors(spec.name):
        model = build(spec, "meta", tdtype)
        xs = make_inputs(spec, "meta", tdtype)
    captured: list[Any] = []
    hook = model.register_forward_hook(lambda m, i, o: captured.append(o))
    counter = CostCounter(root_name=type(model).__name__)
    try:
        with without_dynamo_import(), torch.no_grad(), counter:
            stats = summary(model, input_data=xs, depth=max(depth, 1), verbose=0, device="meta", mode="eval")
    except SpecError:
        raise
    except Exception as e:  # a block that raises at these shapes
        cause = _fusion_cause(e)
        if cause is not None:  # torchinfo wraps errors a block raises: surface the block's own message
            raise cause from None
        root = e.__cause__ or e  # torchinfo's "Failed to run torchinfo" wraps what the block raised
        raise RunError(f"{spec.name}: forward failed at inputs "
                       f"{[list(x.shape) for x in xs]}: {type(root).__name__}: {root}".splitlines()[0]) from e
    finally:
        hook.remove()
    cost = counter.result()
    outs = captured[-1]
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]

    params = list(model.parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    unused = [names[id(p)] for p in params if id(p) not in cost.touched]
    esize = torch.empty((), dtype=tdtype).element_size()
    memory = {
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "buffer_bytes": sum(b.numel() * b.element_size() for b in model.buffers()),
        "input_bytes": sum(x.numel() for x in xs) * esize,
        "output_bytes": sum(o.numel() for o in outs) * esize,
        "peak_activation_bytes": cost.peak_activation_bytes,
    }
    bytes_moved = cost.total.bytes_read + cost.total.bytes_written
    cost_dict = {
        "macs": cost.total.macs,
        "flops": cost.total.flops,
        "convention": CONVENTION,
        "bytes": {"read": cost.total.bytes_read, "written": cost.total.bytes_written, "total": bytes_moved},
        "arithmetic_intensity": cost.total.flops / bytes_moved if bytes_moved else None,
        # ops with neither FLOPs nor bytes are views (and torchinfo's own detach calls): left out
        "by_op": {k: v.to_dict() for k, v in sorted(cost.by_op.items(), key=lambda kv: -kv[1].flops)
                  if v.flops or v.bytes_read or v.bytes_written},
        "by_module": {k: v.to_dict() for k, v in cost.by_module.items()},
        "uncounted_ops": cost.uncounted,
    }

    for real_device in dict.fromkeys(([device] if time else []) + (["cpu"] if crosscheck else [])):
        guard.check_memory(spec.name, memory, cost_dict, device=real_device, dtype=dtype, mode=timing_mode,
                           force=force)

    checks = None
    if crosscheck:
        from .crosscheck import crosscheck as run_crosscheck

        # the meta block and inputs of the pass above serve FlopCounterMode too (no second build)
        checks = run_crosscheck(lambda dev: model if dev == "meta" else build(spec, dev, tdtype),
                                lambda dev: xs if dev == "meta" else make_inputs(spec, dev, tdtype),
                                macs=cost.total.macs, flops=cost.total.flops, by_op=cost_dict["by_op"],
                                torchinfo_mult_adds=stats.total_mult_adds)

    timing = None
    if time:
        nthreads = threads or torch.get_num_threads()
        try:
            timing = _time(spec, device, tdtype, nthreads, min_time, timing_mode or TimingMode(), cost_dict)
        except torch.OutOfMemoryError as e:
            raise RunError(f"{spec.name}: out of memory on {device}: {str(e).splitlines()[0]}") from e
        except RuntimeError as e:
            raise RunError(f"{spec.name}: forward failed on {device} ({dtype}): {str(e).splitlines()[0]}") from e

    return Report(
        name=spec.name,
        block=spec.block,
        options=registry.resolved_options(spec.block, spec.options),
        inputs=[list(x.shape) for x in xs],
        outputs=[list(o.shape) for o in outs],
        params={"total": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad)},
        cost=cost_dict,
        memory=memory,
        timing=timing,
        layers=_layers(stats, model, depth),
        unused_params=unused,
        crosscheck=checks,
        source=spec.source,
        description=spec.description,
    )


__all__ = ["analyze", "environment", "check_device", "build", "make_inputs"]
