"""Wall time of counting whole necks (issue 13's targets), beyond the start-up of the same command.

* ``fusion inspect resnet50-fpn --no-time`` (Faster R-CNN's ResNet-50 FPN at 800x1333, counted
  on the meta device) costs at most 100 ms more than ``fusion inspect add`` at tiny shapes (the
  same process start, torch import and report, with a trivial count);
* ``fusion sweep resnet50-fpn --vary node=add,concat,aff,gated --vary image=512,640,1024
  --no-time`` (12 necks) at most 5 s more than that start-up.

Whole processes, run in alternation (one of each per round, so the machine's drift is shared),
medians over ``--runs`` rounds; "beyond start-up" is the median over rounds of the command's time
minus the base command's time in the same round; also the in-process figure, ``fusioncli.analyze("resnet50-fpn",
time=False)`` after one warm-up call, median of ``--runs``. Bytecode is compiled first, as a
pip install does. No hyperfine needed: ``time.perf_counter`` around ``subprocess.run``.

Usage: python benchmarks/necks.py [--runs 11] [--fusion .venv/bin/fusion]
Prints a markdown table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASE = "inspect add --in 8x4x4 --in 8x4x4 --out 8 --no-time -q -f json"
FPN = "inspect resnet50-fpn --no-time -q -f json"
SWEEP = "sweep resnet50-fpn --vary node=add,concat,aff,gated --vary image=512,640,1024 --no-time -q -f json"


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=11)
    p.add_argument("--fusion", default=str(ROOT / ".venv" / "bin" / "fusion"))
    args = p.parse_args()
    compileall.compile_dir(str(ROOT / "fusioncli"), quiet=1)
    cmds = {name: [args.fusion, *text.split()] for name, text in (("base", BASE), ("fpn", FPN), ("sweep", SWEEP))}
    for cmd in cmds.values():  # warm-up: file caches, bytecode
        wall(cmd)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            times[name].append(wall(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}

    code = ("import statistics, time, fusioncli\n"
            "fusioncli.analyze('resnet50-fpn', time=False)\n"
            "ts = []\n"
            f"for _ in range({args.runs}):\n"
            "    t = time.perf_counter(); fusioncli.analyze('resnet50-fpn', time=False); ts.append(time.perf_counter() - t)\n"
            "print(statistics.median(ts), min(ts), max(ts))")
    py = str(Path(args.fusion).with_name("python"))
    inproc = [float(x) for x in subprocess.run([py, "-c", code], capture_output=True, text=True, check=True,
                                               cwd=ROOT).stdout.split()]

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, torch {torch.__version__}; {args.runs} rounds\n")
    print("| command | median s | min s | max s | beyond start-up: median of the rounds' differences | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, text, target in (("base", BASE, "(the start-up)"), ("fpn", FPN, "<= 0.100 s"),
                               ("sweep", SWEEP, "<= 5 s")):
        ts = times[name]
        diffs = [a - b for a, b in zip(ts, times["base"])]  # paired within each round
        extra = "" if name == "base" else f"{statistics.median(diffs):.3f}"
        print(f"| `fusion {text}` | {med[name]:.3f} | {min(ts):.3f} | {max(ts):.3f} | {extra} | {target} |")
    print(f"| `fusioncli.analyze('resnet50-fpn', time=False)` in process | {inproc[0]:.4f} | {inproc[1]:.4f} | "
          f"{inproc[2]:.4f} | {inproc[0]:.4f} | <= 0.100 s |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
