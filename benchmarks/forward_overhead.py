"""Every block's forward against hand-written PyTorch modules computing the same thing.

For each registered block kind, at its default inputs (batch 1) and options: the fusion
block (eval mode) and its hand-written twins from ``benchmarks/handwritten.py``, which use
the block's own weights with no checks, no alignment logic and no option branches:

* hand-written: the block's ``torch.nn`` layers called as modules, ``torch.nn.functional``
  for the rest, as a straightforward hand-written module is built. The target of issue 8,
  ratio <= 1.05, is against this one: it isolates what alignment and option handling cost.
* functional: every layer a plain ``F.conv2d`` / ``F.batch_norm`` / ... call with its tensors
  bound once, no ``nn.Module`` call per layer: the least Python any eager implementation
  spends. Its ratio shows what calling layers as modules costs on top (the per-layer table
  and hooks need modules, so fusion keeps them).

First each twin's output is checked equal to the block's (``torch.testing.assert_close``; a
mismatch aborts). Then, under ``torch.inference_mode()`` with ``torch.get_num_threads()``
threads, after a warm-up, ``--rounds`` interleaved rounds (the order rotated every round),
each one ``Timer.timeit(n)`` of every model, ``n`` calls lasting about ``--min-run-time``
seconds. Reported: each model's median over the rounds of its per-call time, and the ratios
of those medians. Short measurements, finely interleaved, keep a shared machine's load swings
(seconds long, tens of percent here) from landing on one side.

Usage: python benchmarks/forward_overhead.py [--kinds concat,dpt] [--rounds 40] [--min-run-time 0.02]
       [--device cpu|cuda] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handwritten import HANDWRITTEN, setup

from fusioncli import list_fusions
from fusioncli.registry import get_info


def measure(kind: str, rounds: int, min_run_time: float, threads: int, device: str = "cpu",
            batch: int = 1) -> list[float]:
    """Median (ms) over rounds of: the block, the hand-written module, the functional one."""
    block, hand, xs = setup(kind, batch=batch, device=device)
    functional = HANDWRITTEN[kind](block, functional=True).eval()
    models = (block, hand, functional)
    with torch.inference_mode():
        expected = block(*xs)
        for name, m in (("hand-written", hand), ("functional", functional)):
            torch.testing.assert_close(m(*xs), expected,
                                       msg=lambda msg, name=name: f"{kind}: {name} output differs: {msg}")
        # Timer synchronises CUDA before and after each measurement
        timers = [Timer("m(*xs)", globals={"m": m, "xs": xs}, num_threads=threads, label=kind) for m in models]
        per_call = min(t.timeit(3).median for t in timers)  # warm-up, and the size of one measurement
        number = max(1, round(min_run_time / per_call))
        times: list[list[float]] = [[] for _ in models]
        for r in range(rounds):
            for k in range(len(models)):
                i = (r + k) % len(models)
                times[i].append(timers[i].timeit(number).median * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="*", help="comma-separated kinds or fnmatch patterns (default: all)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--min-run-time", type=float, default=0.02,
                    help="seconds per measurement (default 0.02)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    kinds = [k for pattern in args.kinds.split(",") for k in list_fusions(pattern.strip())]
    if not kinds:
        ap.error(f"--kinds {args.kinds!r} matches no block; allowed: {', '.join(list_fusions())}")
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    print(f"torch {torch.__version__}, {args.device} ({where}), {threads} threads, batch {args.batch}, "
          f"{args.rounds} interleaved rounds of Timer.timeit, about {args.min_run_time} s each\n")
    print("| block | inputs | fusion median (ms) | hand-written median (ms) | ratio | functional median (ms) "
          "| ratio to functional |")
    print("|---|---|---:|---:|---:|---:|---:|")
    worst = (0.0, "")
    for kind in kinds:
        ours, hand, func = measure(kind, args.rounds, args.min_run_time, threads, args.device, args.batch)
        worst = max(worst, (ours / hand, kind))
        print(f"| {kind} | {', '.join(get_info(kind).inputs)} | {ours:.4f} | {hand:.4f} | {ours / hand:.3f} "
              f"| {func:.4f} | {ours / func:.3f} |", flush=True)
    print(f"\nworst ratio to hand-written: {worst[0]:.3f} ({worst[1]}); target <= 1.05")


if __name__ == "__main__":
    main()
