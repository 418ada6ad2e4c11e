"""Counting time on the meta device against one plain CPU forward, small and large inputs.

Usage: python benchmarks/counting.py [--repeat 5] [--kinds concat,add,...]
Prints a Markdown table of medians (ms). Goal: counting on meta under 10 ms per block,
whatever the resolution.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from fusioncli import create_fusion, list_fusions
from fusioncli.analysis import analyze
from fusioncli.analysis.cost import CostCounter
from fusioncli.registry import get_info

from fusioncli.spec import channels_of, parse_shape


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def scaled(shapes, factor):
    """Maps and volumes: every dimension after C times ``factor``; tokens (NxC): N times ``factor``; a vector
    as it is."""
    return [(s[0] * factor, s[1]) if len(s) == 2 else (s[0], *(d * factor for d in s[1:])) for s in shapes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kinds", default=",".join(list_fusions()))
    ap.add_argument("--large-factor", type=int, default=8, help="spatial scale of the large configuration")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads\n")
    print("| block | inputs | count on meta (ms) | analyze --no-time (ms) | CPU forward (ms) |")
    print("|---|---|---:|---:|---:|")
    for kind in args.kinds.split(","):
        info = get_info(kind)
        base = [parse_shape(s) for s in info.inputs]
        for factor in (1, args.large_factor):
            shapes = scaled(base, factor)
            with torch.device("meta"):
                meta_block = create_fusion(kind, [channels_of(s) for s in shapes], info.out).eval()
            meta_xs = [torch.empty((1, *s), device="meta") for s in shapes]

            def count():
                with torch.no_grad(), CostCounter():
                    meta_block(*meta_xs)

            ins = ["x".join(map(str, s)) for s in shapes]
            full = median_ms(lambda: analyze(kind, inputs=ins, out=info.out, time=False), args.repeat)
            cpu_block = create_fusion(kind, [channels_of(s) for s in shapes], info.out).eval()
            cpu_xs = [torch.randn((1, *s)) for s in shapes]

            def forward():
                with torch.inference_mode():
                    cpu_block(*cpu_xs)

            print(f"| {kind} | {' '.join(ins)} | {median_ms(count, args.repeat):.2f} | {full:.2f} | "
                  f"{median_ms(forward, args.repeat):.2f} |")


if __name__ == "__main__":
    main()
