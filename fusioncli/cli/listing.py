"""``fusion blocks`` and ``fusion presets``: listings that never import torch."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .. import registry
from ..errors import FusionError
from ..spec import bundled_presets, format_shape, load_preset
from . import app
from .errors import fail
from .options import Format, FormatOpt, JsonOpt


@app.command("blocks")
def blocks_cmd(
    pattern: Annotated[str, typer.Argument(help="fnmatch filter, e.g. 's*'.")] = "*",
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """List the block kinds with a one-line description and their source."""
    fmt = Format.json if as_json else fmt
    rows = [registry.get_info(k) for k in registry.list_fusions(pattern)]
    if fmt == Format.json:
        json.dump([{"kind": b.kind, "summary": b.summary, "source": b.source, "default_inputs": list(b.inputs),
                    "default_out": b.out} for b in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table(title="Fusion blocks", header_style="bold")
    for col in ("kind", "what it computes", "source", "default inputs -> out"):
        table.add_column(col)
    for b in rows:
        table.add_row(b.kind, b.summary, b.source, " ".join(b.inputs) + f" -> {b.out}")
    Console(highlight=False).print(table)


@app.command("presets")
def presets_cmd(fmt: FormatOpt = Format.table, as_json: JsonOpt = False) -> None:
    """List the bundled presets with block, inputs and output width."""
    fmt = Format.json if as_json else fmt
    specs = []
    try:
        for name, path in bundled_presets().items():
            specs.append(load_preset(path, check_options=False))
    except FusionError as e:
        fail(e, fmt.value)
    if fmt == Format.json:
        json.dump([{"name": s.name, "block": s.block, "inputs": [list(i) for i in s.inputs], "out": s.out,
                    "options": s.options, "source": s.source, "path": s.path} for s in specs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table(title="Bundled presets", header_style="bold")
    for col in ("name", "block", "inputs (CxHxW)", "out", "from"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, s.block, " ".join(format_shape(i) for i in s.inputs), str(s.out), s.source)
    Console(highlight=False).print(table)
