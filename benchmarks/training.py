"""Training cost and the roofline (issue 14's targets), on this machine.

1. **Machine measurement**: ``fusion machine --refresh`` in a fresh cache folder, ``--runs`` times:
   the measurement's own time (``measured_s``, target: at most 3 s) and the whole command, against
   ``fusion machine`` reading the cache (measured once per key).
2. **Meta training pass vs the forward counting pass**: in process, per built-in block at its default
   shapes, medians of ``--runs`` calls of ``analyze(time=False)`` (the forward counting pass: build on
   meta, one forward under the counter and torchinfo) and ``analyze(time=False, train=True)``, in
   alternation; the training pass is their difference (target: at most 3x the first).
3. **Training memory, meta vs a measured CPU step**: every built-in block at its default shapes and at
   2x height and width: ``peak_bytes`` of ``--train --optimizer adam`` against a real CPU step (forward,
   backward, Adam step; 1 thread) measured with torch's profiler memory events
   (``training.measure_step_peak``).

Usage: python benchmarks/training.py [--runs 7] [--fusion .venv/bin/fusion] [--skip-memory]
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine_rows(fusion: str, runs: int) -> None:
    measured, refresh, cached = [], [], []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run([fusion, "machine", "--refresh", "--json"], env=env, check=True, capture_output=True,
                                 text=True).stdout
            refresh.append(time.perf_counter() - t)
            measured.append(json.loads(out)["machine"]["measured_s"])
            t = time.perf_counter()
            subprocess.run([fusion, "machine", "--json"], env=env, check=True, capture_output=True)
            cached.append(time.perf_counter() - t)
    print(f"| what | median (s) | max (s) |\n|---|---:|---:|")
    print(f"| measuring (`measured_s`) | {statistics.median(measured):.3f} | {max(measured):.3f} |")
    print(f"| `fusion machine --refresh` (whole command) | {statistics.median(refresh):.3f} | {max(refresh):.3f} |")
    print(f"| `fusion machine` from the cache (whole command) | {statistics.median(cached):.3f} | {max(cached):.3f} |")


def pass_rows(runs: int) -> None:
    from fusioncli import analysis
    from fusioncli.registry import list_fusions
    from fusioncli.spec import resolve_spec

    print("\n| block | forward counting (ms) | with --train (ms) | training pass (ms) | ratio |\n"
          "|---|---:|---:|---:|---:|")
    ratios = []
    for kind in list_fusions():
        spec = resolve_spec(kind)
        analysis.analyze(spec, time=False, train=True)  # warm-up
        fwd, both = [], []
        for _ in range(runs):  # in alternation, so the machine's drift is shared
            t = time.perf_counter()
            analysis.analyze(spec, time=False)
            fwd.append(time.perf_counter() - t)
            t = time.perf_counter()
            analysis.analyze(spec, time=False, train=True)
            both.append(time.perf_counter() - t)
        f, b = statistics.median(fwd) * 1e3, statistics.median(both) * 1e3
        ratios.append((b - f) / f)
        print(f"| {kind} | {f:.1f} | {b:.1f} | {b - f:.1f} | {(b - f) / f:.2f}x |")
    print(f"\ntraining pass / forward counting pass: median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x")


def memory_rows() -> None:
    import torch

    from fusioncli import analysis
    from fusioncli.analysis.training import count_training, measure_step_peak
    from fusioncli.registry import list_fusions
    from fusioncli.spec import resolve_spec

    torch.set_num_threads(1)
    print("\n| block | inputs | meta peak (B) | measured peak (B) | meta / measured |\n|---|---|---:|---:|---:|")
    off = []
    for kind in list_fusions():
        for scale in (1, 2):
            spec = resolve_spec(kind)
            spec.inputs = [[s[0] * scale, s[1]] if len(s) == 2 else [s[0], *(d * scale for d in s[1:])]  # tokens: N
                           for s in spec.inputs]
            meta = analysis.build(spec, "meta", torch.float32)
            args, kwargs = analysis.make_inputs(spec, "meta", torch.float32)
            peak = count_training(meta, args, kwargs).memory.peak_bytes
            real = analysis.build(spec, "cpu", torch.float32)
            args, kwargs = analysis.make_inputs(spec, "cpu", torch.float32)
            measured = measure_step_peak(real, args, kwargs)["peak"]
            q = peak / measured
            if abs(q - 1) > 0.10:
                off.append(f"{kind} x{scale}")
            shapes = " ".join("x".join(map(str, s)) for s in spec.inputs)
            print(f"| {kind} | {shapes} | {peak:,} | {measured:,} | {q:.3f} |")
    print(f"\noutside 10%: {', '.join(off) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fusion", default=str(Path(sys.executable).parent / "fusion"))
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    machine_rows(args.fusion, args.runs)
    pass_rows(args.runs)
    if not args.skip_memory:
        memory_rows()


if __name__ == "__main__":
    main()
