"""Latency of a block, with statistics that hold on a noisy machine.

Built on ``torch.utils.benchmark.Timer``, which synchronises CUDA around the timed
statement and sets the thread count for it (its default is *one* thread, so the
count is always passed explicitly). We go past ``blocked_autorange`` and
``adaptive_autorange`` because on a slow forward the first falls to a single
measurement (IQR 0) and the second stops after a handful of calls, while the first
calls of a block are 1.2-30x slower than the rest. Here: explicit warm-up calls,
then at least ``min_runs`` measurements, each of ``number`` calls sized so that one
measurement lasts about ``min_time / (2 * min_runs)``, until ``min_time`` has passed.

Modes (:class:`TimingMode`): forward under ``torch.inference_mode()`` (default), or
forward + backward (a gradient of ones for each output, as the next layer would send it,
the inputs needing gradients unless ``input_grad=False``) with the block still in ``eval()``
(batch-norm uses its running statistics, so batch 1 works) and gradients reset each step:
what :mod:`.training` counts;
``channels_last`` memory format for the block and its inputs; ``torch.compile`` (the
first call, which compiles, is timed separately as ``compile_ms``); lower precision
either by casting weights and inputs (``cast``) or under ``torch.autocast``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..report import Timing

NOISY_CV = 0.10  # a coefficient of variation above this is flagged


@dataclass(frozen=True)
class TimingMode:
    backward: bool = False
    channels_last: bool = False
    backend: str = "eager"  # one of fusioncli.deploy.BACKENDS
    compile_backend: str = "inductor"
    autocast: bool = False  # low precision by autocast (weights stay float32) instead of casting
    input_grad: bool = True  # backward: the inputs need gradients (False: a first layer)

    @property
    def compile(self) -> bool:
        return self.backend == "compile"

    @property
    def name(self) -> str:
        return "forward+backward" if self.backward else "forward"


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of sorted values."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no values")
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(per_call_s: Sequence[float], *, calls: int, threads: int, warmup: int, **extra) -> Timing:
    """Statistics of per-call times (seconds) -> :class:`Timing` in milliseconds."""
    xs = sorted(per_call_s)
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean > 0 else 0.0
    return Timing(
        median_ms=quantile(xs, 0.5) * 1e3,
        iqr_ms=(quantile(xs, 0.75) - quantile(xs, 0.25)) * 1e3,
        min_ms=xs[0] * 1e3,
        mean_ms=mean * 1e3,
        cv=cv,
        runs=len(xs),
        calls=calls,
        threads=threads,
        warmup=warmup,
        noisy=cv > NOISY_CV,
        **extra,
    )


def _map_tensors(x, fn):
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: _map_tensors(v, fn) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_map_tensors(v, fn) for v in x)
    return x


def _leaves(x) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    _map_tensors(x, lambda t: out.append(t) or t)
    return out


def make_step(model: torch.nn.Module, inputs: Sequence, mode: TimingMode, device_type: str,
              dtype: torch.dtype, kwargs: dict | None = None):
    """The callable that is timed: one forward, or one forward + backward (of the sum of every output)."""
    kwargs = kwargs or {}
    if mode.autocast:
        def ctx():
            return torch.autocast(device_type, dtype=dtype)
    else:
        import contextlib

        ctx = contextlib.nullcontext

    if not mode.backward:
        if kwargs:
            def step():
                with torch.inference_mode(), ctx():
                    model(*inputs, **kwargs)
        else:
            def step():
                with torch.inference_mode(), ctx():
                    model(*inputs)
        return step

    params = [p for p in model.parameters() if p.requires_grad]
    grad = lambda x: x.detach().requires_grad_(mode.input_grad and x.is_floating_point())  # noqa: E731
    xs, kws = _map_tensors(tuple(inputs), grad), _map_tensors(kwargs, grad)
    ones: list[torch.Tensor] = []  # the gradient of each output, as the next layer would send it: made once

    def step():
        for p in params:
            p.grad = None
        with ctx():
            out = model(*xs, **kws)
        leaves = [t for t in _leaves(out) if t.requires_grad]
        if not ones:
            ones.extend(torch.ones_like(t) for t in leaves)
        if leaves:  # (analyze refuses --backward when nothing needs a gradient)
            torch.autograd.backward(leaves, ones)
    return step


def time_forward(
    model: torch.nn.Module,
    inputs: Sequence,
    kwargs: dict | None = None,
    *,
    threads: int,
    min_time: float = 0.4,
    max_time: float | None = None,
    min_runs: int = 7,
    max_runs: int = 200,
    warmup: int = 3,
    mode: TimingMode = TimingMode(),
    dtype: torch.dtype = torch.float32,
) -> Timing:
    """Time ``model(*inputs, **kwargs)`` in ``mode``; the model and inputs are already on their device.

    ``max_time`` caps the timed runs (after the warm-up): a block too slow for ``min_runs`` runs within
    it stops early, with at least 2 runs, and the timing says ``capped``."""
    kwargs = kwargs or {}
    tensors = _leaves((tuple(inputs), kwargs))
    device_type = tensors[0].device.type if tensors else "cpu"
    if mode.channels_last:
        model = model.to(memory_format=torch.channels_last)
        last = lambda x: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x  # noqa: E731
        inputs, kwargs = _map_tensors(tuple(inputs), last), _map_tensors(kwargs, last)
    compile_ms = None
    if mode.compile:
        model = torch.compile(model, backend=mode.compile_backend)
    step = make_step(model, inputs, mode, device_type, dtype, kwargs)
    cuda = device_type == "cuda"
    if mode.compile:  # the first call compiles: timed on its own
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        compile_ms = (time.perf_counter() - t0) * 1e3

    times, number, capped = run_loop(step, threads=threads, min_time=min_time, max_time=max_time, min_runs=min_runs,
                                     max_runs=max_runs, warmup=warmup,
                                     before_runs=torch.cuda.reset_peak_memory_stats if cuda else None)
    t = summarize(
        times, calls=number * len(times), threads=threads, warmup=warmup, mode=mode.name,
        channels_last=mode.channels_last, compiled=mode.compile, compile_ms=compile_ms,
        cuda_peak_bytes=torch.cuda.max_memory_allocated() if cuda else None, backend=mode.backend,
    )
    return replace(t, capped=True) if capped else t


def run_loop(step, *, threads: int, min_time: float, max_time: float | None = None, min_runs: int = 7,
             max_runs: int = 200, warmup: int = 3, before_runs=None) -> tuple[list[float], int, bool]:
    """Time ``step()``: ``warmup`` calls, then at least ``min_runs`` runs of ``number`` calls each until
    ``min_time`` has passed (``max_time`` caps them, at least 2 runs). Returns the per-call seconds of
    each run, ``number`` and whether ``max_time`` stopped the runs before ``min_runs``. Every backend
    (eager, compiled, ONNX Runtime) is timed by this loop; ``before_runs`` is called after the warm-up."""
    from torch.utils.benchmark import Timer  # imports setuptools (~0.5 s): only when timing

    timer = Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    start = time.perf_counter()
    for _ in range(warmup):
        timer.timeit(1)
    per_call = max((time.perf_counter() - start) / max(warmup, 1), 1e-7)
    # the warm-up includes the slow first calls: re-estimate from one more call
    per_call = min(per_call, timer.timeit(1).mean)
    number = max(1, int(min_time / (2 * min_runs) / per_call))
    if before_runs is not None:
        before_runs()
    times: list[float] = []
    start = time.perf_counter()
    capped = False
    while len(times) < min_runs or (time.perf_counter() - start < min_time and len(times) < max_runs):
        if max_time is not None and len(times) >= 2 and time.perf_counter() - start >= max_time:
            capped = len(times) < min_runs
            break
        times.append(timer.timeit(number).mean)
    return times, number, capped
