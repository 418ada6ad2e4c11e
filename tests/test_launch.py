"""The cost of the tool itself (issue 8): the console script's start-up path
(fusioncli/_launch.py: one command module, no torch for listings, an exit that skips the
interpreter's teardown but not the exit handlers), torch's import under a frozen collector,
and one block construction per device per report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs the console script's main() on argv, with an exit handler that reports what was imported:
# it must run (atexit handlers are kept) and see the state at exit.
PROBE = """
import atexit, sys
def report():
    mods = sorted(m for m in ('torch', 'fusioncli.cli.analyze', 'fusioncli.cli.sweep', 'fusioncli.cli.listing',
                              'fusioncli.cli.schema', 'rich.markdown') if m in sys.modules)
    sys.stderr.write('PROBE ' + ' '.join(mods) + '\\n')
atexit.register(report)
from fusioncli._launch import main
main(sys.argv[1:])
"""


def launch(*args: str, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)


def probe(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.startswith("PROBE")]
    assert len(lines) == 1, err  # the exit handler ran exactly once
    return lines[0].split()[1:]


def test_listing_imports_only_its_module_and_no_torch():
    r = launch("blocks", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["blocks"][1]["kind"] == "add"
    assert probe(r.stderr) == ["fusioncli.cli.listing"]


def test_help_loads_every_command_without_rich_markdown():
    r = launch("--help")
    assert r.returncode == 0, r.stderr
    for command in ("inspect", "compare", "blocks", "presets", "explain", "sweep", "merge", "schema"):
        assert f"  {command} " in r.stdout, command
    assert probe(r.stderr) == ["fusioncli.cli.analyze", "fusioncli.cli.listing", "fusioncli.cli.schema",
                               "fusioncli.cli.sweep"]


def test_unknown_command_still_gets_did_you_mean():
    r = launch("inspec", "concat")
    assert r.returncode == 2
    assert "Did you mean 'inspect'?" in r.stderr


def test_inspect_exit_code_output_and_exit_handlers(tmp_path):
    out = tmp_path / "r.json"
    r = launch("inspect", "concat", "--in", "8x4x4", "--in", "8x4x4", "--out", "8", "--no-time", "--json",
               "-o", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())["reports"][0]
    assert report["params"]["total"] == 16 * 8 + 8  # 1x1 conv 16 -> 8 with bias
    assert "torch" in probe(r.stderr)
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it

    bad = launch("inspect", "concat", "--in", "64x8", "--no-time")
    assert bad.returncode == 2
    assert "--in: invalid value '64x8'" in bad.stderr
    probe(bad.stderr)


def test_output_into_a_closed_pipe_is_quiet():
    """`fusion blocks | head -1`: the reader leaves early; no traceback, no 'Exception ignored'."""
    script = f"{sys.executable} -c {PROBE!r} blocks | head -1"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_shell_completion_of_specs_without_torch():
    import os

    env = {**os.environ, "_FUSION_COMPLETE": "complete_bash", "COMP_WORDS": "fusion inspect dpt", "COMP_CWORD": "2"}
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["dpt", "dpt-vitb-decoder", "dpt-vitb-level"]  # the kind, then the presets
    assert "torch" not in probe(r.stderr)


def test_process_tricks_stay_on_the_console_path():
    """In-process callers (tests, the API, CliRunner) import the analysis with Python's import:
    the collector is left as it was and nothing is frozen. The console script's import_frozen
    returns the module with the collector on again."""
    import gc

    from fusioncli._launch import import_frozen
    from fusioncli.cli.analyze import _setup
    from fusioncli.cli.options import RunOptions

    frozen = gc.get_freeze_count()
    _setup(RunOptions())
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    try:
        module = import_frozen("fusioncli.analysis")
        assert module.__name__ == "fusioncli.analysis" and gc.isenabled()
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("settings,expected", [
    ({"time": False}, {"meta": 1}),
    ({"min_time": 0.01}, {"meta": 1, "cpu": 1}),
    ({"time": False, "crosscheck": True}, {"meta": 1, "cpu": 1}),  # fvcore's CPU trace; FlopCounterMode reuses meta
])
def test_each_report_builds_the_block_once_per_device(monkeypatch, settings, expected):
    """Issue 8: no repeated module construction. The meta block serves torchinfo, fusion's
    counter and FlopCounterMode; a real device gets one build for timing (or fvcore)."""
    import collections

    import torch

    from fusioncli.analysis import analyze
    from fusioncli.blocks import base

    built = collections.Counter()
    init = base.FusionBlock.__init__

    def counting_init(self, *args, **kwargs):
        built[torch.empty(0).device.type] += 1  # where new tensors go (torch.device context)
        init(self, *args, **kwargs)

    monkeypatch.setattr(base.FusionBlock, "__init__", counting_init)
    analyze("aff", inputs=["8x8x8", "8x8x8"], out=8, **settings)
    assert dict(built) == expected
