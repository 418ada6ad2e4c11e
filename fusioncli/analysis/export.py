"""The deployment check: export a block to ONNX with torch's exporter, validate it with ``onnx.checker``,
count its ONNX ops, find those without a kernel in the ONNX Runtime execution provider, run it there,
compare its outputs with eager and time it with the same loop and statistics as eager
(:func:`fusioncli.analysis.timing.run_loop`).

Every block is exported behind :class:`Flat`: separate tensors in (packed as ``--pack`` says), the
block's outputs flattened as the report flattens them (``out``, ``out[0]``, ``out['p3']``) out. A failure
at any stage is the report's :class:`fusioncli.report.Deploy` (``stage`` and a one-line ``error``), not an
exception: one design that does not export leaves the others of a ``compare`` as they were.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import re
import sys
import warnings
from dataclasses import replace
from typing import Any

import torch

from ..deploy import ExportSettings, require_extra
from ..errors import RunError, SpecError
from ..report import Deploy, Timing
from .timing import run_loop, summarize

WARMUP = 3
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class Flat(torch.nn.Module):
    """``model`` behind the exporters' contract: tensors in, a tuple of tensors out."""

    def __init__(self, model: torch.nn.Module, names: list[str] | None, pack: str) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.pack = pack

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from . import flatten_outputs, pack_inputs

        args, kwargs = pack_inputs(list(xs), self.names, self.pack)
        return tuple(t for _, t in flatten_outputs(self.model(*args, **kwargs)))


def has_dynamo_exporter() -> bool:
    """``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)``, the torch.export-based exporter: torch 2.5 and
    later (2.4 has a ``dynamo`` flag, onto its older exporter, without ``dynamic_shapes``)."""
    params = inspect.signature(torch.onnx.export).parameters
    return "dynamo" in params and "dynamic_shapes" in params


def check(settings: ExportSettings, dtype: torch.dtype, device: str, field: str) -> str:
    """Up front: the extra is installed, this torch has the exporter, ONNX Runtime has the device's provider
    and the dtype has a NumPy type. Returns the provider."""
    require_extra(field, exporter=settings.exporter)
    if settings.exporter == "dynamo" and not has_dynamo_exporter():
        raise SpecError(f"--exporter: 'dynamo' needs torch 2.5 or later (this is {torch.__version__}); allowed here: "
                        "torchscript", field="--exporter")
    from torch.onnx import _constants

    top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or getattr(_constants, "ONNX_MAX_OPSET", None)
    if settings.exporter == "torchscript" and top and settings.opset > top:
        raise SpecError.bad("--opset", settings.opset, f"the torchscript exporter of torch {torch.__version__} goes up "
                            f"to {top}; allowed: 9 to {top}, or --exporter dynamo")
    if dtype == torch.bfloat16:
        raise SpecError(f"{field}: --dtype bfloat16 has no NumPy type for ONNX Runtime's inputs; allowed: float32, "
                        "float16", field="--dtype")
    import onnxruntime

    provider = PROVIDERS[device]
    if provider not in onnxruntime.get_available_providers():
        raise RunError(f"{field}: ONNX Runtime has no {provider} here (available: "
                       f"{', '.join(onnxruntime.get_available_providers())}); for CUDA install onnxruntime-gpu",
                       field="--device")
    return provider


@contextlib.contextmanager
def _fds_to_devnull():
    """File descriptors 1 and 2 to /dev/null: torch's C++ ONNX log (the TorchScript exporter's "Torch IR graph at
    exception", on whatever its logging switch says) writes there, below Python's streams."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and graphs to stdout and stderr and warn through logging and warnings: fusion's
    streams carry its own output only (the error reaches the report as one line)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            _fds_to_devnull():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _dynamic_axes(tensors: list[torch.Tensor], names: list[str], out_names: list[str], outputs: list[torch.Tensor],
                  axes: tuple[str, ...]) -> dict[str, dict[int, str]] | None:
    if not axes:
        return None
    spec: dict[str, dict[int, str]] = {}
    for prefix, group, tensor_names in (("in", tensors, names), ("out", outputs, out_names)):
        for i, (name, t) in enumerate(zip(tensor_names, group)):
            dims = {0: "batch"} if "batch" in axes else {}
            if "spatial" in axes and t.dim() >= 3:
                dims.update({d: f"{prefix}{i}_dim{d}" for d in range(2, t.dim())})
            if dims:
                spec[name] = dims
    return spec


def to_onnx(model: torch.nn.Module, tensors: list[torch.Tensor], names: list[str], out_names: list[str],
            outputs: list[torch.Tensor], settings: ExportSettings) -> bytes:
    """The serialised ONNX model of ``model(*tensors)`` (raises what the exporter raises)."""
    dynamic = _dynamic_axes(tensors, names, out_names, outputs, settings.dynamic)
    common = dict(opset_version=settings.opset, input_names=names, output_names=out_names)
    with _quiet():
        if settings.exporter == "dynamo":
            # torch.export's own form: the one *xs argument, each tensor's axes left to export (Dim.AUTO)
            shapes = None if not dynamic else (tuple({axis: torch.export.Dim.AUTO for axis in dynamic.get(name, {})}
                                                     for name in names),)
            program = torch.onnx.export(model, tuple(tensors), dynamo=True, verbose=False, dynamic_shapes=shapes,
                                        **common)
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        old = {"dynamo": False} if has_dynamo_exporter() else {}
        torch.onnx.export(model, tuple(tensors), buffer, do_constant_folding=True, dynamic_axes=dynamic, **common,
                          **old)
        return buffer.getvalue()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OP = re.compile(r"aten(?:::|\.)([A-Za-z0-9_]+)")


def reason(e: BaseException) -> tuple[str, str | None]:
    """One line for an exporter's or runtime's error, and the aten op it names (``aten::linalg_svd``)."""
    text = _ANSI.sub("", str(e))
    summary = re.findall(r"<class '[^']+'>: (.+)", text)  # the dynamo exporter's "Exception summary"
    line = summary[0] if summary else next((s.strip() for s in text.splitlines() if s.strip()), "")
    line = re.sub(r"\s+", " ", line).strip()
    line = re.sub(r"\.? Please feel free to request support.*$", "", line)  # older torch's appeal: not the reason
    if len(line) > 240:
        line = line[:237] + "..."
    op = _OP.search(text)
    return f"{type(e).__name__}: {line}" if line else type(e).__name__, f"aten::{op.group(1)}" if op else None


def histogram(proto) -> dict[str, int]:
    """ONNX op -> nodes of the main graph (``domain::Op`` outside the default domain), most frequent first."""
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def unsupported(proto, provider: str) -> list[str]:
    """The model's ops that ``provider`` has no kernel for at the model's opset (ONNX Runtime's kernel registry)."""
    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import get_all_opkernel_def
    except ImportError:  # an ONNX Runtime without the registry: the session tells instead
        return []
    ranges: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in get_all_opkernel_def():
        if k.provider == provider:
            ranges.setdefault((k.domain, k.op_name), []).append(tuple(k.version_range))
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in proto.opset_import}
    missing = []
    for node in proto.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        if (domain, node.op_type) == ("", "Constant"):  # folded into initializers when the session loads
            continue
        version = opsets.get(domain, 1)
        if not any(lo <= version <= hi for lo, hi in ranges.get((domain, node.op_type), ())) and \
                not _expands(node.op_type, domain, version):
            missing.append(node.op_type if not domain else f"{domain}::{node.op_type}")
    return sorted(set(missing))


def _expands(op_type: str, domain: str, version: int) -> bool:
    """Whether ONNX defines the op as a function of other ops (HardSwish = x * HardSigmoid(x), ...):
    ONNX Runtime inlines such an op when it has no kernel for it."""
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, max_inclusive_version=version, domain=domain)
    except Exception:  # an op ONNX does not define (a custom domain)
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)


def session(data: bytes, provider: str, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(data, options, providers=[provider])


def time_session(sess, feeds: dict[str, Any], *, threads: int, min_time: float, max_time: float | None) -> Timing:
    """ONNX Runtime's latency with eager's loop and statistics (outputs fetched to host memory each call)."""
    times, number, capped = run_loop(lambda: sess.run(None, feeds), threads=threads, min_time=min_time,
                                     max_time=max_time, warmup=WARMUP)
    t = summarize(times, calls=number * len(times), threads=threads, warmup=WARMUP, backend="onnxruntime")
    return replace(t, capped=True) if capped else t


def deploy_check(r, settings: ExportSettings, *, device: str, dtype: torch.dtype, threads: int,
                 min_time: float | None, max_time: float | None = None, data_out: list[bytes] | None = None) -> Deploy:
    """Export ``r`` (a :class:`fusioncli.analysis.Recipe`) on CPU, check, run and (``min_time`` not None) time it
    in ONNX Runtime on ``device``. ``data_out`` receives the ONNX bytes when the export succeeds."""
    from . import build, flatten_outputs, make_tensors, pack_inputs

    provider = PROVIDERS[device]
    spec = r.spec
    model = Flat(build(r, "cpu", dtype), spec.input_names, spec.pack).eval()
    tensors = make_tensors(spec, "cpu", dtype)
    names = list(spec.input_names or [f"input{i}" for i in range(len(tensors))])
    args, kwargs = pack_inputs(tensors, spec.input_names, spec.pack)
    with torch.no_grad():
        leaves = flatten_outputs(model.model(*args, **kwargs))
    eager = [t for _, t in leaves]
    out_names = [p for p, _ in leaves]
    base = Deploy(exporter=settings.exporter, opset=settings.opset, stage="export", provider=provider)
    try:
        data = to_onnx(model, tensors, names, out_names, eager, settings)
    except Exception as e:  # whatever the exporter raises is this design's export status
        text, op = reason(e)
        return replace(base, error=text, failing_op=op)
    if data_out is not None:
        data_out.append(data)
    import onnx

    proto = onnx.load_from_string(data)
    base = replace(base, ops=histogram(proto), file_bytes=len(data), stage="checker")
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        return replace(base, error=reason(e)[0])
    base = replace(base, unsupported_ops=unsupported(proto, provider), stage="session")
    try:
        sess = session(data, provider, threads)
    except Exception as e:
        text, _ = reason(e)
        return replace(base, error=text, failing_op=next(iter(base.unsupported_ops), None))
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), tensors)}
    base = replace(base, stage="run")
    try:
        got = sess.run(None, feeds)
    except Exception as e:
        return replace(base, error=reason(e)[0])
    shapes = [list(g.shape) for g in got], [list(e.shape) for e in eager]
    if shapes[0] != shapes[1]:
        return replace(base, error=f"output shapes differ: ONNX Runtime {shapes[0]}, eager {shapes[1]}")
    abs_diff = max((float(abs(torch.from_numpy(g).float() - e.float()).max()) if e.numel() else 0.0)
                   for g, e in zip(got, eager))
    scale = max((float(e.float().abs().max()) if e.numel() else 0.0) for e in eager)
    base = replace(base, stage="ok", max_abs_diff=abs_diff, max_rel_diff=abs_diff / scale if scale else abs_diff)
    if min_time is None:
        return base
    return replace(base, timing=time_session(sess, feeds, threads=threads, min_time=min_time, max_time=max_time))


__all__ = ["Flat", "check", "deploy_check", "histogram", "reason", "to_onnx", "unsupported"]
