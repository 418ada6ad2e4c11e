"""The memory guard's estimate against the peak memory a timed run really takes (issue 18).

For every built-in block at two shapes (its default inputs, and their height and width x4: 16x
the activations), a fresh child process imports fusioncli and torch, runs the block once at 4x4
(torch's and oneDNN's one-time set-up), records its peak resident set size (``ru_maxrss``), runs ``fusioncli.analyze(kind, time=True)`` (the meta pass, the memory
guard, then the timed runs on CPU), and records the peak again. The run's measured peak is the
difference; the guard's estimate is ``fusioncli.analysis.guard.required_bytes`` of the report
(what the guard compared with the memory available before admitting the run). The estimate must
never be below the measurement: the script prints both, their ratio, and exits 1 if any is.

Usage: python benchmarks/guard_rss.py [--min-time 0.2] [--kinds concat,aff]
Prints a markdown table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys
import torch
import fusioncli
from fusioncli import registry
from fusioncli.analysis import guard
from fusioncli.analysis.timing import TimingMode
from fusioncli.spec import parse_shape
kind, scale, min_time = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
info = registry.get_info(kind)
shapes = [parse_shape(s) for s in info.inputs]
inputs = ["x".join(map(str, (s[0], *(d * scale for d in s[1:])))) for s in shapes]
# warm-up: torch's and oneDNN's one-time set-up (sizes / 8 keep the inputs' size relations, e.g. hrnet's halvings)
small = ["x".join(map(str, (s[0], *(max(1, d // 8) for d in s[1:])))) for s in shapes]
fusioncli.analyze(kind, inputs=small, out=info.out, time=True, min_time=0.01, threads=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
r = fusioncli.analyze(kind, inputs=inputs, out=info.out, time=True, min_time=min_time, threads=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
parts = guard.required_bytes(r.memory, r.cost.bytes.written, device="cpu", dtype="float32", mode=TimingMode())
print(json.dumps({"inputs": inputs, "before": before, "after": after, "parts": parts}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--min-time", type=float, default=0.2)
    p.add_argument("--kinds", default="")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from fusioncli import registry

    kinds = args.kinds.split(",") if args.kinds else registry.list_fusions()
    rows, low = [], 0
    for kind in kinds:
        for scale in (1, 4):
            out = subprocess.run([args.python, "-c", CHILD, kind, str(scale), str(args.min_time)], capture_output=True,
                                 text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if out.returncode != 0:
                rows.append(f"| {kind} | x{scale} | failed: {out.stderr.strip().splitlines()[-1][:80]} | | | |")
                continue
            d = json.loads(out.stdout.strip().splitlines()[-1])
            measured = d["after"] - d["before"]
            estimate = sum(d["parts"].values())
            ratio = estimate / measured if measured > 0 else float("inf")
            low += estimate < measured
            rows.append(f"| {kind} | {' '.join(d['inputs'])} | {measured / 2**20:.1f} | {estimate / 2**20:.1f} | "
                        f"{ratio:.2f} | {'BELOW' if estimate < measured else 'ok'} |")
            print(rows[-1], file=sys.stderr, flush=True)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"--min-time {args.min_time}, 1 thread\n")
    print("| kind | inputs | measured peak (MiB) | guard's estimate (MiB) | estimate / measured | |")
    print("|---|---|---:|---:|---:|---|")
    print("\n".join(rows))
    print(f"\n{low} of {len(rows)} estimates below the measurement")
    sys.exit(1 if low else 0)


if __name__ == "__main__":
    main()
