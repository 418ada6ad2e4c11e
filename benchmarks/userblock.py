"""Wall time of user-block commands, measured with hyperfine (Debian: `apt-get install hyperfine`).

Issue 12's targets, each measured as whole processes, medians over ``--runs`` runs:

* ``fusion inspect FILE.py:NAME --no-time`` takes at most 1.10x of ``python FILE.py``, which is
  ``import torch`` plus importing that file (each example imports torch first), measured in one
  hyperfine run so that the machine's drift is shared; also shown, the ratio to running the
  file without the interpreter's teardown (``os._exit(0)``), as fusion skips that teardown;
* ``fusion blocks`` with a plugin distribution installed (a temporary site directory with a
  ``fusioncli.blocks`` entry point whose module imports torch) stays under 0.3 s, and a
  separate run of the same listing in one process confirms that neither torch nor the plugin's
  module was imported (the listing reads entry-point metadata only).

Bytecode is compiled first (``compileall``), as a pip install does.

Usage: python benchmarks/userblock.py [--runs 15] [--fusion .venv/bin/fusion]
Prints a markdown table and the machine it ran on.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from startup import ROOT, bench_setup, hyperfine, row  # beside this script: the same set-up and timing

EXAMPLES = (  # (SPEC, the flags it needs)
    ("examples/my_fusion.py:MyFusion", "--in 64x32x32 --in 64x32x32 --out 64"),
    ("examples/token_fusion.py:TokenCrossAttention", "--in 196x256 --in 49x256 --set heads=8"),
    ("examples/volume_fusion.py:volume_fusion", "--in 32x8x32x32 --in 32x8x32x32 --out 32"),
)

PLUGIN = '''"""A plugin's module: importing it imports torch and leaves a marker."""
import os
from torch import nn

open(os.environ["PLUGIN_MARKER"], "w").write("imported")


class PlugFuse(nn.Module):
    """Sum of 1x1 projections."""

    def __init__(self, in_channels: list, out_channels: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)

    def forward(self, *xs):
        return sum(p(x) for p, x in zip(self.proj, xs))
'''


def plugin_site(root: Path) -> Path:
    """A site directory holding one installed distribution with a ``fusioncli.blocks`` entry point."""
    site = root / "site"
    info = site / "benchplug-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "benchplug.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: benchplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fusioncli.blocks]\nbenchfuse = benchplug:PlugFuse\n")
    return site


def main() -> None:
    args, fusion, py = bench_setup(__doc__, [ROOT / "fusioncli", ROOT / "examples"])
    os.chdir(ROOT)
    for spec, flags in EXAMPLES:
        file = spec.split(":")[0]
        folder = str(Path(file).parent)
        ref, cmd = f"{py} {file}", f"{fusion} inspect {spec} {flags} --no-time"
        bare = (f'{py} -c "import os, runpy, sys; sys.path.insert(0, {folder!r}); '
                f'runpy.run_path({file!r}); os._exit(0)"')
        times = hyperfine([ref, bare, cmd], args.runs)
        t_ref, t_bare, t_cmd = (statistics.median(times[c]) for c in (ref, bare, cmd))
        row(f"python {file}", times[ref], "the reference (import torch + the file)")
        row(f"python {file}, then os._exit(0)", times[bare], "(no interpreter teardown)")
        row(cmd.replace(args.fusion, "fusion"), times[cmd],
            f"<= 1.10x: {t_cmd / t_ref:.2f}x ({t_cmd / t_bare:.2f}x without teardown)")

    with tempfile.TemporaryDirectory() as tmp:
        site, marker = plugin_site(Path(tmp)), Path(tmp) / "plugin-imported"
        env = {**os.environ, "PYTHONPATH": str(site), "PLUGIN_MARKER": str(marker)}
        cmd = f"{fusion} blocks"
        times = hyperfine([cmd], args.runs, env=env)[cmd]
        code = ("import sys\nfrom fusioncli.cli.entry import run\nfrom fusioncli.cli import app\n"
                "rc = run(app, ['blocks', 'bench*'])\nprint('TORCH', 'torch' in sys.modules, rc)\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        listed = "benchfuse" in p.stdout and "benchplug 1.0" in p.stdout
        no_torch = "TORCH False 0" in p.stdout and not marker.exists()
        row("fusion blocks (plugin installed)", times,
            f"< 0.3 s; plugin listed: {'yes' if listed else 'NO'}; torch and plugin imported: "
            f"{'no' if no_torch else 'YES'}")
        if not (listed and no_torch):
            sys.exit(f"listing check failed:\n{p.stdout}\n{p.stderr}")


if __name__ == "__main__":
    main()
