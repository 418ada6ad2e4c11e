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

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torchinfo import summary

from .. import limits, registry, userblock
from ..errors import FusionError, RunError, SpecError
from ..deploy import ExportSettings
from ..report import Bytes, Cost, Deploy, Layer, Memory, NodeRow, Report, Timing
from ..spec import Spec, channels_of, override, resolve_spec, typed_options
from . import guard
from .cost import CONVENTION, CostCounter
from .nodynamo import without_dynamo_import
from .timing import TimingMode, time_forward

SEED = 0
DTYPES = {name: getattr(torch, name) for name in limits.DTYPE_BYTES}  # the names: fusioncli.limits


def environment(device: str, dtype: str, threads: int | None) -> dict[str, Any]:
    load = limits.load_average()
    return {
        "torch": torch.__version__,
        "device": device,
        "dtype": dtype,
        "threads": threads or torch.get_num_threads(),
        "cpus": limits.cpus_available(),
        "load_average": None if load is None else round(load, 2),  # 1 minute, when the report was made
    }


def check_device(device: str, dtype: str) -> None:
    if dtype not in DTYPES:
        raise SpecError.bad("--dtype", dtype, "allowed: " + ", ".join(DTYPES), choices=DTYPES)
    if device not in ("cpu", "cuda"):
        raise SpecError.bad("--device", device, "allowed: cpu, cuda", choices=("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("--device: 'cuda' is not available here (torch.cuda.is_available() is False); allowed: cpu",
                       field="--device")


def check_compile_backend(name: str) -> None:
    """A torch.compile backend this torch has (``torch._dynamo.list_backends``, every tag)."""
    from torch._dynamo import list_backends

    known = list_backends(exclude_tags=())
    if name not in known:
        raise SpecError.bad("--compile-backend", name, "allowed: " + ", ".join(known), choices=known)


@dataclass(frozen=True)
class Recipe:
    """How to build a spec's block on any device: what to call, with which arguments, for the report."""

    spec: Spec
    target: Any  # built-in: None; user: the class, the factory or (Python API) the instance
    kwargs: dict[str, Any]  # constructor arguments (typed options, in/out channels)
    options: dict[str, Any]  # every option with its value, for the report

    @property
    def instance(self) -> bool:
        return isinstance(self.target, torch.nn.Module)


def recipe(spec: Spec) -> Recipe:
    """Type the options against the block's signature (importing user code) and fix the constructor call."""
    if spec.builtin:
        options = typed_options(spec, spec.options)
        return Recipe(spec, None, options, registry.resolved_options(spec.block, options))
    target = userblock.load(spec)
    if isinstance(target, torch.nn.Module):
        typed_options(spec, spec.options)  # an instance takes no options: says so
        return Recipe(spec, target, {}, {})
    kwargs = userblock.constructor_kwargs(target, spec)
    return Recipe(spec, target, kwargs, userblock.report_options(target, kwargs))


def build(spec: Spec | Recipe, device: str | torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The block on ``device`` in ``dtype`` and eval mode, its weights drawn with the fixed seed.

    A user's instance is never touched: on ``meta`` it is copied without its data
    (:func:`meta_copy`), elsewhere deep-copied and the copy moved.
    """
    r = spec if isinstance(spec, Recipe) else recipe(spec)
    torch.manual_seed(SEED)
    if r.instance:
        model = meta_copy(r.target) if str(device) == "meta" else copy.deepcopy(r.target).to(device)
    elif r.target is None:
        s = r.spec
        with torch.device(device):
            model = registry.create_fusion(s.block, [channels_of(shape) for shape in s.inputs], s.out, **r.kwargs)
    else:
        with torch.device(device):
            model = userblock.construct(r.target, r.kwargs, userblock.roots_of(r.spec))
    return model.to(dtype=dtype).eval()


def meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose parameters and buffers are meta tensors: nothing of the data is copied."""
    memo: dict[int, Any] = {}
    for t in (*module.parameters(), *module.buffers()):
        if id(t) not in memo:
            empty = torch.empty_like(t, device="meta")
            memo[id(t)] = torch.nn.Parameter(empty, requires_grad=t.requires_grad) \
                if isinstance(t, torch.nn.Parameter) else empty
    return copy.deepcopy(module, memo)


def make_tensors(spec: Spec, device: str | torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED)
    if str(device) == "meta":
        return [torch.empty((spec.batch, *s), device="meta", dtype=dtype) for s in spec.inputs]
    return [torch.randn((spec.batch, *s), generator=gen).to(device=device, dtype=dtype) for s in spec.inputs]


def pack_inputs(tensors: list[torch.Tensor], names: list[str] | None, pack: str) -> tuple[tuple, dict]:
    """(args, kwargs) of the forward call: separate tensors, one list, one dict, or keywords."""
    if pack == "list":
        return (list(tensors),), {}
    if pack == "dict":
        return (dict(zip(names or [], tensors)),), {}
    if pack == "kwargs":
        return (), dict(zip(names or [], tensors))
    return tuple(tensors), {}


def make_inputs(spec: Spec, device: str | torch.device, dtype: torch.dtype) -> tuple[tuple, dict]:
    """The forward call's (args, kwargs) for ``spec`` on ``device``: empty on meta, seeded normal otherwise."""
    return pack_inputs(make_tensors(spec, device, dtype), spec.input_names, spec.pack)


def flatten_outputs(out: Any, path: str = "out") -> list[tuple[str, torch.Tensor]]:
    """Every tensor of a (nested) output with its path: ``out``, ``out[0]``, ``out['p3']``, ``out[1][0]``."""
    if isinstance(out, torch.Tensor):
        return [(path, out)]
    if isinstance(out, dict):
        return [leaf for k, v in out.items() for leaf in flatten_outputs(v, f"{path}[{k!r}]")]
    if isinstance(out, (list, tuple)):
        return [leaf for i, v in enumerate(out) for leaf in flatten_outputs(v, f"{path}[{i}]")]
    return []


def _fusion_cause(e: BaseException) -> FusionError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, FusionError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _layers(stats, root: torch.nn.Module, depth: int) -> list[Layer]:
    """One row per module that ran, to ``depth``, in the order they first ran; a module called more than
    once (a shared LayerNorm) is one row with its ``calls`` and its first output. Every row's parents
    come before it: a container that never runs itself (a ModuleList, a ModuleDict) gets a row without
    an output shape before its first child, so the table is a tree."""
    names = {id(m): n for n, m in root.named_modules()}
    modules = dict(root.named_modules())
    rows: dict[str, Layer] = {}
    for info in stats.summary_list:
        if info.depth == 0 or info.depth > depth or not info.executed:
            continue
        name = names.get(info.layer_id, info.var_name)
        if name in rows:
            rows[name] = replace(rows[name], calls=rows[name].calls + 1)
            continue
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in rows and parent in modules:
                m = modules[parent]
                rows[parent] = Layer(name=parent, type=type(m).__name__, depth=i, output_shape=[],
                                     params=sum(p.numel() for p in m.parameters()), calls=0)
        rows[name] = Layer(name=name, type=info.class_name, depth=len(parts) if name in modules else info.depth,
                           output_shape=list(info.output_size), params=int(info.num_params))
    return list(rows.values())


def _time(r: Recipe, device: str, tdtype: torch.dtype, threads: int, min_time: float, mode: TimingMode,
          work: tuple[int, int], max_time: float | None = None, export: ExportSettings | None = None
          ) -> tuple[Timing, dict[str, float] | None, Deploy | None]:
    """Build the block on the real device and time it; add the throughput of ``work``, the (FLOPs, bytes)
    of what is timed (forward, or forward + backward). For a neck timed in plain forward mode, also each
    node's median time inside it. With the onnxruntime backend, the block is exported and timed in ONNX
    Runtime (and the deployment check is returned too)."""
    spec = r.spec
    nodes = deployed = None
    if mode.backend == "onnxruntime":
        from .export import deploy_check

        deployed = deploy_check(r, export or ExportSettings(), device=device, dtype=tdtype, threads=threads,
                                min_time=min_time, max_time=max_time)
        if deployed.timing is None:
            op = f" ({deployed.failing_op})" if deployed.failing_op else ""
            raise RunError(f"{spec.name}: --backend onnxruntime: ONNX {deployed.stage} failed{op}: {deployed.error}",
                           field="--backend")
        t = deployed.timing
    else:
        build_dtype = torch.float32 if mode.autocast else tdtype  # autocast keeps float32 weights and inputs
        real = build(r, device, build_dtype)
        args, kwargs = make_inputs(spec, device, build_dtype)
        t = time_forward(real, args, kwargs, threads=threads, min_time=min_time, max_time=max_time, mode=mode,
                         dtype=tdtype)
    if mode == TimingMode() and _neck_nodes(real):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            nodes = _node_latency(real, args, kwargs, device)
        finally:
            torch.set_num_threads(before)
    seconds = t.median_ms / 1e3
    flops, nbytes = work
    return replace(
        t,
        dtype_mode="autocast" if mode.autocast else "cast",
        gflops_per_s=flops / seconds / 1e9 if seconds > 0 else None,
        gbytes_per_s=nbytes / seconds / 1e9 if seconds > 0 else None,
        samples_per_s=spec.batch / seconds if seconds > 0 else None,
    ), nodes, deployed


class _ForwardFailed(Exception):
    """The forward raised something other than a :class:`FusionError`; ``cause`` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Counted:
    model: torch.nn.Module
    args: tuple
    kwargs: dict
    stats: Any  # torchinfo's ModelStatistics
    cost: Any  # CostResult
    outputs: list[tuple[str, torch.Tensor]]
    device: str
    node_shapes: dict[str, tuple[list[list[int]], list[int]]]  # a neck's nodes: (input shapes, output shape)


def _count(r: Recipe, device: str, tdtype: torch.dtype, depth: int, model: torch.nn.Module | None = None) -> _Counted:
    """One forward on ``device`` under the cost counter and torchinfo's hooks at once."""
    model = build(r, device, tdtype) if model is None else model
    args, kwargs = make_inputs(r.spec, device, tdtype)
    captured: list[Any] = []
    hook = model.register_forward_hook(lambda m, i, o: captured.append(o))
    node_shapes: dict[str, tuple[list[list[int]], list[int]]] = {}
    node_hooks = [node.register_forward_hook(
        lambda m, i, o, node_id=node_id: node_shapes.__setitem__(node_id, ([list(x.shape) for x in i], list(o.shape))))
        for node_id, node in _neck_nodes(model)]
    counter = CostCounter(root_name=type(model).__name__)
    data = kwargs if kwargs else list(args)
    try:
        with without_dynamo_import(), torch.no_grad(), counter:
            stats = summary(model, input_data=data, depth=max(depth, 1), verbose=0, device=device, mode="eval")
    except FusionError:
        raise
    except Exception as e:  # a block that raises at these shapes
        cause = _fusion_cause(e)
        if cause is not None:  # torchinfo wraps errors a block raises: surface the block's own message
            raise cause from None
        raise _ForwardFailed(e.__cause__ or e) from e  # torchinfo's "Failed to run torchinfo" wraps the cause
    finally:
        hook.remove()
        for h in node_hooks:
            h.remove()
    outputs = flatten_outputs(captured[-1]) if captured else []
    if not outputs:
        raise RunError(f"{r.spec.name}: forward returned no tensor "
                       f"({type(captured[-1]).__name__ if captured else 'nothing'}); expected a tensor or a tuple, "
                       "list or dict of tensors")
    return _Counted(model, args, kwargs, stats, counter.result(), outputs, device, node_shapes)


def _neck_nodes(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """A neck's nodes in execution order (none for a block)."""
    from ..necks.base import Neck

    if not isinstance(model, Neck):
        return []
    return [(node_id, model.nodes[node_id]) for node_id, _ in model.plan]


def _node_rows(counted: _Counted, latency: dict[str, float] | None) -> list[NodeRow] | None:
    """One row per node of a neck: its place, shapes and cost (the by-module tally of ``nodes.ID``)."""
    model = counted.model
    nodes = _neck_nodes(model)
    if not nodes:
        return None
    feeds = model.node_inputs()
    rows = []
    for node_id, node in nodes:
        tally = counted.cost.by_module.get(f"nodes.{node_id}")
        ins, out = counted.node_shapes.get(node_id, ([], []))
        rows.append(NodeRow(
            id=node_id, level=node.level, kind=_kind_shown(node.kind), merge=node.merge, inputs=list(feeds[node_id]),
            input_shapes=ins, output_shape=out, params=sum(p.numel() for p in node.parameters()),
            macs=tally.macs if tally else 0, flops=tally.flops if tally else 0,
            bytes=(tally.bytes_read + tally.bytes_written) if tally else 0,
            latency_ms=(latency or {}).get(node_id)))
    return rows


def _kind_shown(kind: str) -> str:
    return kind if ":" not in kind else userblock.shown_reference(kind)


def _node_latency(model: torch.nn.Module, args: tuple, kwargs: dict, device: str, runs: int = 7) -> dict[str, float]:
    """Each node's median time (ms) over ``runs`` forwards of the whole neck (after one warm-up), timed by
    hooks around the node (synchronising first on CUDA)."""
    import statistics
    import time as _t

    nodes = _neck_nodes(model)
    times: dict[str, list[float]] = {node_id: [] for node_id, _ in nodes}
    start: dict[str, float] = {}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def pre(node_id):
        def hook(m, i):
            sync()
            start[node_id] = _t.perf_counter()
        return hook

    def post(node_id):
        def hook(m, i, o):
            sync()
            times[node_id].append((_t.perf_counter() - start[node_id]) * 1e3)
        return hook

    handles = [h for node_id, node in nodes
               for h in (node.register_forward_pre_hook(pre(node_id)), node.register_forward_hook(post(node_id)))]
    try:
        with torch.no_grad():
            model(*args, **kwargs)
            for ts in times.values():
                ts.clear()
            for _ in range(runs):
                model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return {node_id: statistics.median(ts) for node_id, ts in times.items() if ts}


def as_spec(x: Any, *, inputs=None, out=None, options=None, batch=None, pack=None) -> Spec:
    """A :class:`Spec` from a spec string, a Spec, an ``nn.Module`` instance, a class or a factory."""
    if isinstance(x, Spec):
        if any(v is not None for v in (inputs, out, options, batch, pack)):
            x = override(replace(x, options=dict(x.options)), inputs=inputs, out=out, options=options, batch=batch,
                         pack=pack, check_options=False)
        return x
    if isinstance(x, str):
        return resolve_spec(x, inputs=inputs, out=out, options=options, batch=batch, pack=pack, check_options=False)
    if isinstance(x, torch.nn.Module) or callable(x):
        if not inputs:
            raise SpecError("inputs: needed for a user block: one shape per input, e.g. inputs=['64x32x32', "
                            "'64x32x32']", field="inputs")
        base = Spec(name=userblock.display_name(userblock.object_reference(x).split(" ")[0]),
                    block=userblock.object_reference(x), inputs=[], out=None, obj=x)
        return override(base, inputs=inputs, out=out, options=options, batch=batch, pack=pack, check_options=False)
    raise SpecError.bad("block", x, "expected a block kind, a spec string, an nn.Module instance, an nn.Module "
                        "class or a factory")


def analyze(
    spec: Any,
    *,
    inputs: list[str] | None = None,
    out: int | None = None,
    options: dict[str, Any] | None = None,
    batch: int | None = None,
    pack: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    time: bool = True,
    depth: int = 3,
    min_time: float = 0.4,
    max_time: float | None = None,
    crosscheck: bool = False,
    timing_mode: TimingMode | None = None,
    force: bool = False,
    train: bool = False,
    optimizer: str = "adam",
    input_grad: bool = True,
    before_timing: Callable[[], None] | None = None,
    deploy: bool = False,
    export: ExportSettings | None = None,
) -> Report:
    """Analyse one block.

    ``spec`` is a block kind or any SPEC string (preset, preset file, ``FILE.py:NAME``,
    ``package.module:NAME``, plugin kind), a :class:`Spec`, an ``nn.Module`` subclass or
    factory, or an ``nn.Module`` instance (analysed on a copy: the instance is left as it
    was). ``inputs`` are shapes without the batch (``"64x32x32"``, ``"196x768"``, named
    ``"query=100x64"`` for ``pack="dict"`` or ``"kwargs"``).

    Counting runs on the ``meta`` device; a user block that cannot run there is counted on
    CPU with real tensors, after the memory guard (``report.counted_on``). Before any real
    tensor exists, :mod:`.guard` refuses a run that would not fit in memory; ``force=True``
    lifts that guard.

    ``train=True`` (and timing with ``TimingMode(backward=True)``) also counts a training step
    (:mod:`.training`: backward MACs/FLOPs, gradients w.r.t. inputs and weights apart, memory with
    ``optimizer``, one of ``limits.OPTIMIZER_STATES``); ``input_grad=False`` is a first layer, whose
    inputs need no gradient. A timed report gets its place under this machine's roofline
    (:mod:`.roofline`). ``before_timing`` is called once everything but the timing has succeeded
    (the command line says there whether the machine is busy).

    ``deploy=True`` adds :class:`fusioncli.report.Deploy` (ONNX export, ops, ONNX Runtime outputs and latency;
    needs ``fusioncli[deploy]``); ``export`` sets the exporter, opset and dynamic axes, also those of
    ``timing_mode.backend == "onnxruntime"``.
    """
    spec = as_spec(spec, inputs=inputs, out=out, options=options, batch=batch, pack=pack)
    check_device(device, dtype)
    if optimizer not in limits.OPTIMIZER_STATES:
        raise SpecError.bad("--optimizer", optimizer, "allowed: " + ", ".join(limits.OPTIMIZER_STATES),
                            choices=limits.OPTIMIZER_STATES)
    mode = timing_mode or TimingMode()
    input_grad = input_grad and mode.input_grad  # either way of saying a first layer
    mode = replace(mode, input_grad=input_grad)
    train = train or (time and mode.backward)
    limits.check_min_time(min_time)
    limits.check_max_time(max_time, min_time)
    if mode.compile and time:
        check_compile_backend(mode.compile_backend)
    tdtype = DTYPES[dtype]
    if mode.autocast and tdtype == torch.float32:
        raise SpecError("--autocast: needs --dtype bfloat16 or float16 (autocast to float32 changes nothing)",
                        field="--autocast")
    ort_timed = time and mode.backend == "onnxruntime"
    if ort_timed:
        for flag, on in (("--backward", mode.backward), ("--channels-last", mode.channels_last),
                         ("--autocast", mode.autocast)):
            if on:
                raise SpecError(f"{flag}: not with --backend onnxruntime (it times the exported forward); allowed "
                                "with --backend eager or compile", field=flag)
    if deploy or ort_timed:
        from .export import check as check_export

        check_export(export or ExportSettings(), tdtype, device, "--deploy" if deploy else "--backend")

    guard.check_spec(spec, dtype, device=device, real_run=time or crosscheck or deploy, threads=threads, force=force)
    r = recipe(spec)
    if spec.builtin:
        with guard.meta_errors(spec.name):
            meta_model = build(r, "meta", tdtype)  # a block that cannot be built at these sizes: one line
        try:
            counted = _count(r, "meta", tdtype, depth, meta_model)
        except _ForwardFailed as e:
            xs = [list((spec.batch, *s)) for s in spec.inputs]
            raise RunError(f"{spec.name}: forward failed at inputs {xs}: "
                           f"{userblock.describe(e.cause)}") from e.cause
    else:
        counted = _count_user(r, tdtype, dtype, depth, force)
    counts = counted.cost
    model = counted.model
    outs = [t for _, t in counted.outputs]

    params = list(model.parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    unused = [names[id(p)] for p in params if id(p) not in counts.touched]
    tensors = [*counted.args, *counted.kwargs.values()]
    flat_inputs = [t for x in tensors for t in (x.values() if isinstance(x, dict) else x if isinstance(x, list)
                                                  else [x])]
    memory = Memory(
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in model.buffers()),
        input_bytes=sum(x.numel() * x.element_size() for x in flat_inputs),
        output_bytes=sum(o.numel() * o.element_size() for o in outs),
        peak_activation_bytes=counts.peak_activation_bytes,
        largest_op_bytes=counts.largest_op_bytes,
    )
    cost = Cost(
        macs=counts.total.macs,
        flops=counts.total.flops,
        convention=CONVENTION,
        bytes=Bytes(counts.total.bytes_read, counts.total.bytes_written),
        # ops with neither FLOPs nor bytes are views (and torchinfo's own detach calls): left out
        by_op={k: v.to_dict() for k, v in sorted(counts.by_op.items(), key=lambda kv: -kv[1].flops)
               if v.flops or v.bytes_read or v.bytes_written},
        by_module={k: v.to_dict() for k, v in counts.by_module.items()},
        uncounted_ops=counts.uncounted,
    )

    for real_device in dict.fromkeys(([device] if time else []) + (["cpu"] if crosscheck or deploy else [])):
        guard.check_memory(spec.name, memory, cost.bytes.written, device=real_device, dtype=dtype, mode=mode,
                           force=force)

    checks = None
    if crosscheck:
        from .crosscheck import crosscheck as run_crosscheck

        # the block and inputs of the counting pass serve FlopCounterMode too (no second build)
        here = counted.device
        checks = run_crosscheck(lambda dev: model if dev == here else build(r, dev, tdtype),
                                lambda dev: (counted.args, counted.kwargs) if dev == here else
                                make_inputs(spec, dev, tdtype),
                                macs=cost.macs, flops=cost.flops, by_op=cost.by_op,
                                torchinfo_mult_adds=counted.stats.total_mult_adds,
                                torchinfo_layers=counted.stats.summary_list)

    training = None
    if train:
        from .training import count_training

        args, kwargs = make_inputs(spec, counted.device, tdtype)
        try:
            with without_dynamo_import():
                training = count_training(model, args, kwargs, input_grad=input_grad, optimizer=optimizer,
                                          device_type=device)
        except FusionError:
            raise
        except Exception as e:
            raise RunError(f"{spec.name}: backward failed on {counted.device}: {userblock.describe(e)}") from e

    if time and mode.backward and not training.backward.bytes.total:
        raise SpecError(f"--backward: {spec.name} has nothing to differentiate here (no trainable parameter"
                        + (", and --no-input-grad)" if not input_grad else ")"), field="--backward")
    timing = node_latency = roof = deployed = None
    nthreads = threads or torch.get_num_threads()
    if time:
        if before_timing is not None:
            before_timing()
        work = (training.step_flops, cost.bytes.total + training.backward.bytes.total) if mode.backward \
            else (cost.flops, cost.bytes.total)
        try:
            timing, node_latency, deployed = _time(r, device, tdtype, nthreads, min_time, mode, work, max_time,
                                                   export)
        except FusionError:
            raise
        except torch.OutOfMemoryError as e:
            raise RunError(f"{spec.name}: out of memory on {device}: {str(e).splitlines()[0]}") from e
        except Exception as e:
            if spec.builtin and not isinstance(e, RuntimeError):
                raise
            if not spec.builtin:
                raise userblock.forward_error(e, spec, f"on {device} ({dtype})") from e
            raise RunError(f"{spec.name}: forward failed on {device} ({dtype}): {str(e).splitlines()[0]}") from e
        from . import roofline

        roof = roofline.place(*work, timing.median_ms / 1e3, roofline.machine(device, dtype, nthreads))
    if deploy and deployed is None:
        from .export import deploy_check

        try:
            deployed = deploy_check(r, export or ExportSettings(), device=device, dtype=tdtype, threads=nthreads,
                                    min_time=min_time if time else None, max_time=max_time)
        except FusionError:
            raise
        except Exception as e:  # the eager forward on cpu, before any export (export failures are the report's)
            if not spec.builtin:
                raise userblock.forward_error(e, spec, f"on cpu ({dtype}) for --deploy") from e
            raise RunError(f"{spec.name}: --deploy: forward failed on cpu ({dtype}): {str(e).splitlines()[0]}") from e
        if deployed.timing and timing and timing.backend == "eager":
            deployed = replace(deployed, latency_ratio=deployed.timing.median_ms / timing.median_ms)

    return Report(
        name=spec.name,
        block=spec.block if spec.builtin else userblock.shown_reference(spec.block),
        options=r.options,
        inputs=[list(x.shape) for x in flat_inputs],
        outputs=[list(o.shape) for o in outs],
        params={"total": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad)},
        cost=cost,
        memory=memory,
        timing=timing,
        layers=_layers(counted.stats, model, depth),
        unused_params=unused,
        crosscheck=checks,
        source=spec.source,
        description=spec.description,
        output_paths=[p for p, _ in counted.outputs],
        input_names=spec.input_names,
        pack=spec.pack,
        counted_on=counted.device,
        nodes=_node_rows(counted, node_latency),
        training=training,
        roofline=roof,
        deploy=deployed if deploy else None,
    )


def _count_user(r: Recipe, tdtype: torch.dtype, dtype: str, depth: int, force: bool) -> _Counted:
    """Count on meta; a block that cannot be built or run there is counted on CPU with real tensors,
    after the memory guard (parameters from the meta build when there was one, and the inputs)."""
    spec = r.spec
    meta_model = None
    try:
        meta_model = build(r, "meta", tdtype)
        return _count(r, "meta", tdtype, depth, meta_model)
    except (_ForwardFailed, userblock.UserCodeError, RuntimeError, NotImplementedError, TypeError, ValueError):
        pass
    input_bytes = sum(limits.input_elements(spec)) * torch.empty((), dtype=tdtype).element_size()
    weights = [] if meta_model is None else [*meta_model.parameters()]
    held = [] if meta_model is None else [*meta_model.buffers()]
    memory = Memory(param_bytes=sum(p.numel() * p.element_size() for p in weights),
                    buffer_bytes=sum(b.numel() * b.element_size() for b in held), input_bytes=input_bytes)
    guard.check_memory(spec.name, memory, 0, device="cpu", dtype=dtype, force=force)
    try:
        return _count(r, "cpu", tdtype, depth)
    except _ForwardFailed as e:
        raise userblock.forward_error(e.cause, spec, "on meta and on cpu") from e.cause


def compare(
    blocks: list[Any],
    *,
    inputs: list[str] | None = None,
    out: int | None = None,
    options: dict[str, Any] | None = None,
    batch: int | None = None,
    pack: str | None = None,
    baseline: str | None = None,
    sort: str | None = None,
    pareto: str = "params,flops,latency",
    **settings: Any,
):
    """Several blocks side by side, as ``fusion compare`` does: returns the :class:`fusioncli.report.Envelope`
    (ratios to the baseline, best values, Pareto front). ``blocks`` mixes anything :func:`analyze` takes;
    ``settings`` are :func:`analyze`'s keywords (``time=False``, ``device``, ...). A block that fails
    becomes an :class:`fusioncli.report.ErrorEntry` in its place; the others still run."""
    from .. import __version__
    from ..comparing import CompareChoice
    from ..report import Envelope, ErrorEntry

    timed = settings.get("time", True)
    choice = CompareChoice.parse(baseline=baseline, sort=sort, pareto=pareto, plot=None, timed=timed)
    labels = [x if isinstance(x, str) else x.name if isinstance(x, Spec) else userblock.object_reference(x)
              for x in blocks]
    resolved: list = []
    for x in blocks:
        try:
            resolved.append(as_spec(x, inputs=inputs, out=out, options=options, batch=batch, pack=pack))
        except FusionError as e:
            resolved.append(e)
    choice.check_baseline(labels, resolved)
    entries: list = []
    seen: dict[str, int] = {}
    for label, spec in zip(labels, resolved):
        try:
            if isinstance(spec, FusionError):
                raise spec
            report = analyze(spec, **settings)
        except FusionError as e:
            entries.append(ErrorEntry(label, e.to_dict()))
            continue
        seen[report.name] = seen.get(report.name, 0) + 1
        if seen[report.name] > 1:  # the same block twice: keep names unique
            report = replace(report, name=f"{report.name}#{seen[report.name]}")
        entries.append(report)
    env = Envelope(__version__, environment(settings.get("device", "cpu"), settings.get("dtype", "float32"),
                                            settings.get("threads")), entries)
    return choice.apply(env, labels)


__all__ = ["analyze", "as_spec", "compare", "environment", "check_device", "build", "make_inputs", "meta_copy", "recipe"]
