"""ONNX Runtime against eager for every built-in block, in one run, and what each exporter costs.

For each block at its documented default inputs (``fusion blocks``), batch 1, float32, on the CPU:
``analyze(kind, deploy=True)`` times eager and then ONNX Runtime with the same loop and statistics
(3 warm-up calls, at least 7 runs within ``--min-time``), ``--threads`` for both (torch's threads and
ONNX Runtime's intra-op threads; 1 by default, so neither oversubscribes the machine). Printed: the
eager and ORT medians (IQR), their ratio, the ONNX node count and the max relative output difference;
then, per exporter, whether it exports and the wall-clock time of the whole deployment check without
timing (count on meta, build, export, check, one ONNX Runtime run), which is mostly the export.

Usage: python benchmarks/deploy.py [--kinds concat,aff] [--threads 1] [--min-time 0.4] [--exporters torchscript,dynamo]
Output: a Markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from fusioncli import registry
from fusioncli.analysis import analyze
from fusioncli.deploy import ExportSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default=",".join(registry.list_fusions()))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.4)
    ap.add_argument("--exporters", default="torchscript,dynamo")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    exporters = a.exporters.split(",")
    import onnxruntime

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()},"
          f" {os.cpu_count()} CPUs, threads {a.threads}, min-time {a.min_time} s, load {os.getloadavg()[0]:.2f}\n")
    print("| kind | eager ms (IQR) | ORT ms (IQR) | ORT / eager | ONNX nodes | max rel. diff | "
          + " | ".join(f"{e} check s" for e in exporters) + " |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(exporters))
    ratios = []
    for kind in kinds:
        r = analyze(kind, threads=a.threads, min_time=a.min_time, deploy=True)
        d, t = r.deploy, r.timing
        cells = []
        for exporter in exporters:
            t0 = time.perf_counter()
            e = analyze(kind, time=False, deploy=True, export=ExportSettings(exporter)).deploy
            took = time.perf_counter() - t0
            cells.append(f"{took:.2f}" if e.stage == "ok" else f"fails at {e.stage}: {e.error}")
        if d.stage != "ok":
            print(f"| {kind} | {t.median_ms:.3f} ({t.iqr_ms:.3f}) | fails at {d.stage}: {d.error} | | | | "
                  + " | ".join(cells) + " |", flush=True)
            continue
        o = d.timing
        ratios.append(d.latency_ratio)
        print(f"| {kind} | {t.median_ms:.3f} ({t.iqr_ms:.3f}) | {o.median_ms:.3f} ({o.iqr_ms:.3f}) | "
              f"{d.latency_ratio:.2f}x | {sum(d.ops.values())} | {d.max_rel_diff:.1e} | " + " | ".join(cells) + " |",
              flush=True)
    if ratios:
        print(f"\nORT / eager: median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}x to "
              f"{max(ratios):.2f}x over {len(ratios)} blocks; load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
