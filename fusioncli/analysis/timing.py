"""Latency of a forward pass, with statistics that hold on a noisy machine.

Built on ``torch.utils.benchmark.Timer``, which synchronises CUDA and sets the thread
count for the timed statement. We go past ``blocked_autorange`` because on a slow
forward it falls to a single measurement (IQR 0), and the first calls of a block
are much slower than the rest: here we warm up explicitly, then take at least
``min_runs`` measurements, each of ``number`` calls sized so that one measurement
lasts about ``min_time / (2 * min_runs)``, until ``min_time`` has passed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch.utils.benchmark import Timer

from ..report import Timing

NOISY_CV = 0.10  # a coefficient of variation above this is flagged


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of sorted values."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no values")
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(per_call_s: Sequence[float], *, calls: int, threads: int, warmup: int) -> Timing:
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
    )


def time_forward(
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    threads: int,
    min_time: float = 0.4,
    min_runs: int = 7,
    max_runs: int = 200,
    warmup: int = 3,
) -> Timing:
    """Time ``model(*inputs)`` under ``torch.inference_mode()``."""

    def step():
        with torch.inference_mode():
            model(*inputs)

    timer = Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    start = time.perf_counter()
    for _ in range(warmup):
        timer.timeit(1)
    per_call = max((time.perf_counter() - start) / max(warmup, 1), 1e-7)
    # the warm-up includes the slow first calls: re-estimate from one more call
    per_call = min(per_call, timer.timeit(1).mean)
    target = min_time / (2 * min_runs)
    number = max(1, int(target / per_call))
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_time and len(times) < max_runs):
        times.append(timer.timeit(number).mean)
    return summarize(times, calls=number * len(times), threads=threads, warmup=warmup)
