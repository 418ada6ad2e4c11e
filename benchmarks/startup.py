"""Wall time of whole `fusion` commands, measured with hyperfine (Debian: `apt-get install hyperfine`).

Issue 8's targets, each measured as whole processes, medians over ``--runs`` runs:

* listings: ``fusion --help``, ``fusion blocks``, ``fusion presets`` and shell completion of a
  SPEC never import torch and finish under 0.3 s;
* ``fusion inspect SPEC --no-time`` takes at most 1.10x ``python -c "import torch"``: measured as
  a pair in one hyperfine run (its commands alternate within each round of warm-ups and runs
  only in order; the machine's drift is shared, not removed). Also shown: the ratio to
  ``import torch`` without the interpreter's teardown (``os._exit(0)``), since fusion skips that
  teardown after its work (fusioncli/_launch.py) and a strict reader may want the work alone;
* a sweep of 100 configurations without timing finishes within 5 s beyond start-up
  (``fusion inspect concat --no-time`` is the start-up).

Bytecode is compiled first (``compileall``), as a pip install does; an editable install under
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module on every run.

Usage: python benchmarks/startup.py [--runs 15] [--fusion .venv/bin/fusion]
Prints a markdown table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = "--vary size=8,12,16,24,32,48,64,96,128,192"
SWEEPS = (  # 10 x 10 = 100 configurations each
    f"sweep concat {SIZES} --vary channels=8,16,24,32,48,64,96,128,192,256 --no-time --format json -o /dev/null -q",
    f"sweep dpt {SIZES} --vary channels=16,32,48,64,96,128,192,256,384,512 --no-time --format json -o /dev/null -q",
)


def hyperfine(commands: list[str], runs: int, warmup: int = 2, env: dict | None = None) -> dict[str, list[float]]:
    """Each command's wall times (s) from one hyperfine run (no shell: -N)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(["hyperfine", "-N", "--style", "none", "-w", str(warmup), "-r", str(runs),
                        "--export-json", f.name, *commands], check=True, env=env, stdout=subprocess.DEVNULL)
        results = json.load(open(f.name))["results"]
    return {r["command"]: r["times"] for r in results}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    torch_version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    hf = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, torch {torch_version}, "
            f"{platform.system()} {platform.release()}, {hf}")


def bench_setup(doc: str, compile_dirs: list[Path]) -> tuple[argparse.Namespace, str, str]:
    """The benchmarks' shared command line (--runs, --fusion), hyperfine check and bytecode
    compilation; prints the machine and the table's header. Returns (args, fusion, python), quoted."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--fusion", default=str(Path(sys.executable).parent / "fusion"),
                    help="the console script to time (default: beside this Python)")
    args = ap.parse_args()
    if shutil.which("hyperfine") is None:
        sys.exit("hyperfine not found: apt-get install hyperfine (or see github.com/sharkdp/hyperfine)")
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, compile_dirs)], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"machine: {machine()}\n")
    print("| command | median (s) | min (s) | max (s) | target |")
    print("|---|---:|---:|---:|---|")
    return args, shlex.quote(args.fusion), shlex.quote(sys.executable)


def row(label: str, times: list[float], target: str = "") -> None:
    print(f"| `{label}` | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} | {target} |",
          flush=True)


def main() -> None:
    args, fusion, py = bench_setup(__doc__, [ROOT / "fusioncli"])

    listings = [f"{fusion} --help", f"{fusion} blocks", f"{fusion} presets"]
    for cmd, times in hyperfine(listings, args.runs).items():
        row(cmd.replace(args.fusion, "fusion"), times, "< 0.3 s")
    env = {**os.environ, "_FUSION_COMPLETE": "complete_bash", "COMP_WORDS": "fusion inspect dpt", "COMP_CWORD": "2"}
    row("fusion inspect dpt<TAB> (completion)", hyperfine([fusion], args.runs, env=env)[fusion], "< 0.3 s")

    torch_cmd = f'{py} -c "import torch"'
    torch_bare = f'{py} -c "import torch, os; os._exit(0)"'
    specs = ["concat", "crossattn", "dpt-vitb-level", "gffnet-wrn38-gff"]
    inspects = [f"{fusion} inspect {s} --no-time" for s in specs]
    times = hyperfine([torch_cmd, torch_bare, *inspects], max(5, args.runs // 2))
    t_torch, t_bare = statistics.median(times[torch_cmd]), statistics.median(times[torch_bare])
    row('python -c "import torch"', times[torch_cmd], "the reference")
    row('python -c "import torch, os; os._exit(0)"', times[torch_bare], "(no interpreter teardown)")
    for cmd in inspects:
        m = statistics.median(times[cmd])
        row(cmd.replace(args.fusion, "fusion"), times[cmd],
            f"<= 1.10x import torch: {m / t_torch:.2f}x ({m / t_bare:.2f}x without teardown)")

    start = f"{fusion} inspect concat --no-time"
    sweeps = [f"{fusion} {s}" for s in SWEEPS]
    times = hyperfine([start, *sweeps], 3, warmup=1)
    for cmd in sweeps:
        beyond = statistics.median(times[cmd]) - statistics.median(times[start])
        row(cmd.replace(args.fusion, "fusion") + " (100 points)", times[cmd],
            f"<= 5 s beyond start-up: {beyond:.2f} s")


if __name__ == "__main__":
    main()
