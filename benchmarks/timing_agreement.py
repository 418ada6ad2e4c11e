"""fusion's latency against a direct torch.utils.benchmark measurement, and its run-to-run spread.

For each block, in one process, ``--repeat`` interleaved rounds of (a) fusion's median
(``analyze`` with ``--min-time``) and (b) a direct ``Timer.blocked_autorange`` median of the same
block on the same inputs, same threads, after the same warm-up. Reported: the median over rounds
of each, their ratio (should be within 1 +- 0.10), and the coefficient of variation of fusion's
medians over the rounds (its run-to-run spread). Interleaving keeps slow drifts of a shared
machine from favouring one side.

Usage: python benchmarks/timing_agreement.py [--kinds concat,gated,dpt] [--repeat 5] [--min-time 0.4]
       [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from torch.utils.benchmark import Timer

from fusioncli.analysis import analyze, build, make_inputs
from fusioncli.spec import resolve_spec


def direct_median_ms(kind: str, threads: int, min_run_time: float, device: str) -> float:
    spec = resolve_spec(kind)
    model = build(spec, device, torch.float32)
    xs = make_inputs(spec, device, torch.float32)

    def step():
        with torch.inference_mode():
            model(*xs)

    timer = Timer("step()", globals={"step": step}, num_threads=threads)  # synchronises CUDA itself
    timer.timeit(3)  # the same warm-up as fusion
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="concat,gated,aff,dpt")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.4)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args()
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    print(f"torch {torch.__version__}, {args.device} ({where}), {threads} threads, "
          f"fusion --min-time {args.min_time}\n")
    print(f"| block | fusion median (ms), median of {args.repeat} | direct Timer median (ms), median of "
          f"{args.repeat} | ratio | CV of fusion's median over {args.repeat} invocations |")
    print("|---|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(analyze(kind, min_time=args.min_time, threads=threads, device=args.device).timing.median_ms)
            theirs.append(direct_median_ms(kind, threads, args.min_time, args.device))
        a, b = statistics.median(ours), statistics.median(theirs)
        cv = statistics.stdev(ours) / statistics.fmean(ours) if len(ours) > 1 else 0.0
        print(f"| {kind} | {a:.3f} | {b:.3f} | {a / b:.3f} | {cv:.1%} |")


if __name__ == "__main__":
    main()
