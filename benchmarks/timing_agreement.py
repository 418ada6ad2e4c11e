"""fusion's latency against a direct torch.utils.benchmark measurement, and its run-to-run spread.

For each block, in one process: (a) fusion's median (analyze with --min-time), (b) a direct
``Timer.blocked_autorange`` median of the same block on the same inputs, same threads, after the
same warm-up; the ratio a/b should be within 1 +- 0.10. Then fusion is invoked ``--repeat`` times
and the coefficient of variation of its medians is reported.

Usage: python benchmarks/timing_agreement.py [--kinds concat,gated,dpt] [--repeat 5] [--min-time 0.4]
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from torch.utils.benchmark import Timer

from fusioncli.analysis import analyze, build, make_inputs
from fusioncli.spec import resolve_spec


def direct_median_ms(kind: str, threads: int, min_run_time: float) -> float:
    spec = resolve_spec(kind)
    model = build(spec, "cpu", torch.float32)
    xs = make_inputs(spec, "cpu", torch.float32)

    def step():
        with torch.inference_mode():
            model(*xs)

    timer = Timer("step()", globals={"step": step}, num_threads=threads)
    timer.timeit(3)  # the same warm-up as fusion
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="concat,gated,aff,dpt")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.4)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {platform.machine()}, {threads} threads, fusion --min-time {args.min_time}\n")
    print("| block | fusion median (ms) | direct Timer median (ms) | ratio | fusion CV over "
          f"{args.repeat} invocations |")
    print("|---|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        ours = analyze(kind, min_time=args.min_time, threads=threads).timing.median_ms
        theirs = direct_median_ms(kind, threads, max(args.min_time, 0.2))
        medians = [analyze(kind, min_time=args.min_time, threads=threads).timing.median_ms
                   for _ in range(args.repeat)]
        cv = statistics.stdev(medians) / statistics.fmean(medians)
        print(f"| {kind} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.3f} | {cv:.1%} |")


if __name__ == "__main__":
    main()
