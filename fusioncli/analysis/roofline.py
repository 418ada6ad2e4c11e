"""This machine's roofline: its peak compute and memory bandwidth, measured once and cached, and
where a timed design sits under it.

**Measuring** (``fusion machine``; about a second on a CPU): peak compute is the best of repeated
square matmuls (``torch.mm``, 2 n^3 FLOPs) at the run's dtype and thread count, n grown until one
call lasts ~20 ms; memory bandwidth is the best of repeated STREAM triads (``a = b + s * c`` over
three float32 arrays of 64 MiB each, far above any cache: 3 x 64 MiB moved per call), the same
traffic fusion counts for an unfused element-wise op. The figures are cached in the user's cache
folder (``$XDG_CACHE_HOME/fusioncli/machine.json``, else ``~/.cache/...``), keyed by host, device
(CPU model or GPU name), torch version, dtype and threads; ``fusion machine --refresh`` measures
again.

**Placing a design** (every timed report): its arithmetic intensity I is FLOPs per byte moved
(unfused, as counted; forward + backward with ``--backward``); the attainable rate is
``min(peak, I x bandwidth)``; the bound is ``memory`` when ``I x bandwidth < peak``, else
``compute``; the achieved rate is FLOPs / the median latency; ``fraction`` = achieved / attainable
(``% of roof``). A fraction above 1 means the design moved fewer bytes than counted (fused or
cached operands), which the unfused count cannot see.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from pathlib import Path

import torch

from ..report import Roofline

CACHE_FILE = "machine.json"
TARGET_S = 0.02  # one matmul call at least this long
TRIAD_BYTES = 64 * 2**20  # each of the triad's three arrays


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusioncli" / CACHE_FILE


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(device: str, dtype: str, threads: int) -> str:
    return "|".join((socket.gethostname(), device, device_name(device), torch.__version__, dtype, f"threads={threads}"))


def _timed(fn, sync, repeats: int) -> float:
    """The best of ``repeats`` timed calls (seconds), after one warm-up."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(device: str, dtype: str, threads: int) -> dict:
    """Peak GFLOP/s (matmul) and GB/s (triad) on ``device`` at ``dtype`` with ``threads`` CPU threads."""
    tdtype = getattr(torch, dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        n = 256
        while True:
            a = torch.randn(n, n, device=device).to(tdtype)
            b = torch.randn(n, n, device=device).to(tdtype)
            t = _timed(lambda: torch.mm(a, b), sync, 1)
            if t >= TARGET_S or n >= 8192:
                break
            n *= 2
        t = _timed(lambda: torch.mm(a, b), sync, 5)
        peak = 2 * n**3 / t / 1e9
        elems = TRIAD_BYTES // 4
        x = torch.empty(elems, device=device)
        y = torch.rand(elems, device=device)
        z = torch.rand(elems, device=device)
        t = _timed(lambda: torch.add(y, z, alpha=3.0, out=x), sync, 7)
        bandwidth = 3 * TRIAD_BYTES / t / 1e9
    finally:
        torch.set_num_threads(before)
    return {"peak_gflops": round(peak, 3), "bandwidth_gbs": round(bandwidth, 3), "matmul_n": n,
            "triad_bytes": 3 * TRIAD_BYTES, "measured_s": round(time.perf_counter() - start, 3),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def machine(device: str, dtype: str, threads: int, *, refresh: bool = False) -> dict:
    """This machine's figures for the key, from the cache or measured now (and cached)."""
    key = machine_key(device, dtype, threads)
    path = cache_path()
    cache: dict = {}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if refresh or not _valid(entry):
        entry = measure(device, dtype, threads)
        cache[key] = entry
        try:  # a read-only cache only costs a measurement next time
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass
    return {"key": key, **entry}


def _valid(entry) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) and entry[k] > 0
                                           for k in ("peak_gflops", "bandwidth_gbs"))


def place(flops: int, nbytes: int, seconds: float, figures: dict) -> Roofline | None:
    """Where a design that does ``flops`` over ``nbytes`` in ``seconds`` sits under ``figures``' roof."""
    if seconds <= 0 or nbytes <= 0:
        return None
    peak, bandwidth = figures["peak_gflops"], figures["bandwidth_gbs"]
    intensity = flops / nbytes
    memory_roof = intensity * bandwidth
    attainable = min(peak, memory_roof)
    achieved = flops / seconds / 1e9
    return Roofline(peak_gflops=peak, bandwidth_gbs=bandwidth, intensity=intensity, attainable_gflops=attainable,
                    achieved_gflops=achieved, fraction=achieved / attainable if attainable > 0 else None,
                    bound="memory" if memory_roof < peak else "compute")
