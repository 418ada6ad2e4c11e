"""Block errors speak the Python API's words (option names, in_channels, out_channels,
project=True); the command line puts them in its own (--set r, --in, --out, --set project=true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fusioncli import create_fusion
from fusioncli.errors import SpecError

from cli_helpers import run_main

BLOCKS = Path(__file__).resolve().parents[1] / "fusioncli" / "blocks"


def test_block_sources_name_no_command_line_flags():
    for path in sorted(BLOCKS.glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip().startswith("#"):
                assert not re.search(r"--(set|in|out)\b", line), f"{path.name}:{n}: {line.strip()}"


@pytest.mark.parametrize("kind,widths,out,options,api,cli", [
    ("aff", [32, 64], 64, {},
     "in_channels: 'aff' needs every input width equal to out_channels 64, got 32, 64; set project=True to add 1x1 projections",
     "--in: 'aff' needs every input width equal to --out 64, got 32, 64; set --set project=true to add 1x1 projections"),
    ("aff", [64, 64], 64, {"r": 0}, "r: invalid value 0; allowed: 1 to 64", "--set r: invalid value 0; allowed: 1 to 64"),
    ("crossattn", [64, 64], 64, {"num_heads": 5},
     "out_channels: 'crossattn' needs out channels divisible by num_heads, got 64 and 5",
     "--out: 'crossattn' needs out channels divisible by num_heads, got 64 and 5"),
    ("ffm", [64, 64], 64, {"variant": "reference", "reduction": 4},
     "reduction: variant='reference' (mmseg) has a single 64 -> 64 attention conv, got reduction=4; "
     "reduction applies to variant='paper'",
     "--set reduction: --set variant=reference (mmseg) has a single 64 -> 64 attention conv, got reduction=4; "
     "reduction applies to --set variant=paper"),
])
def test_api_words_and_cli_words(kind, widths, out, options, api, cli):
    with pytest.raises(SpecError) as e:
        create_fusion(kind, in_channels=widths, out_channels=out, **options)
    assert api in e.value.message and "--" not in e.value.message
    args = [a for w in widths for a in ("--in", f"{w}x8x8")]
    args += [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
    code, out_text, err = run_main("inspect", kind, *args, "--out", str(out), "--no-time")
    assert code == 2 and out_text == ""
    assert err.startswith("fusion: error: ") and cli in err and len(err.strip().splitlines()) == 1, err
