"""``fusion blocks``, ``fusion presets`` and ``fusion explain``: listings that never import torch.

rich and the preset loader are imported inside the commands: ``fusion --help`` and a
did-you-mean import this module too (the lazy group in :mod:`fusioncli.cli`).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .. import registry
from ..errors import FusionError, SpecError
from . import app
from .errors import fail
from .options import Format, FormatOpt, JsonOpt


@app.command("blocks")
def blocks_cmd(
    pattern: Annotated[str, typer.Argument(help="fnmatch filter, e.g. 's*'.")] = "*",
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """List the block kinds with a one-line description and their source, then the kinds of installed
    plugins (entry-point group fusioncli.blocks) with the distribution that provides them. No plugin is
    imported and torch is not loaded: a plugin's description is `fusion explain KIND`."""
    import fnmatch

    from ..userblock import plugin_distribution, plugin_kinds

    fmt = Format.json if as_json else fmt
    rows = [registry.get_info(k) for k in registry.list_fusions(pattern)]
    plugins = {k: ep for k, ep in plugin_kinds().items()
               if fnmatch.fnmatchcase(k, pattern) and k not in registry.kinds()}
    if not rows and not plugins:  # as a glob that matches no preset file in compare: say so, exit 2
        kinds = [*registry.list_fusions(), *plugin_kinds()]
        fail(SpecError.bad("PATTERN", pattern, "matches no block kind; kinds: " + ", ".join(kinds), choices=kinds),
             fmt.value)
    if fmt == Format.json:
        json.dump([{"kind": b.kind, "summary": b.summary, "source": b.source, "default_inputs": list(b.inputs),
                    "default_out": b.out} for b in rows]
                  + [{"kind": k, "summary": None, "source": f"plugin: {ep.value}", "default_inputs": None,
                      "default_out": None, "plugin": plugin_distribution(ep)} for k, ep in plugins.items()],
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Fusion blocks", header_style="bold")
    for col in ("kind", "what it computes", "source", "default inputs -> out"):
        table.add_column(col)
    for b in rows:
        table.add_row(b.kind, b.summary, b.source, " ".join(b.inputs) + f" -> {b.out}")
    for k, ep in plugins.items():
        table.add_row(k, f"plugin from {plugin_distribution(ep)} (fusion explain {k})", ep.value, "--in needed")
    Console(highlight=False, markup=False, emoji=False).print(table)  # plain cells: half the render time


@app.command("presets")
def presets_cmd(fmt: FormatOpt = Format.table, as_json: JsonOpt = False) -> None:
    """List the bundled presets with block, inputs and output width."""
    from ..spec import bundled_presets, format_shape, load_preset

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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Bundled presets", header_style="bold")
    for col in ("name", "block", "inputs (CxHxW)", "out", "from"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, s.block, " ".join(format_shape(i) for i in s.inputs), str(s.out), s.source)
    Console(highlight=False, markup=False, emoji=False).print(table)  # plain cells: half the render time


@app.command("explain")
def explain_cmd(
    topic: Annotated[str, typer.Argument(metavar="KIND|costs", help="A block kind, or 'costs' for the counting "
                                                                    "convention.")],
) -> None:
    """Show a block's paper, formula, shape contract, options with defaults, and where the
    paper and its reference code differ; or, with 'costs', the FLOP counting convention."""
    import inspect

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if topic == "costs":
        from ..analysis import cost  # imports torch

        console.print(inspect.getdoc(cost), markup=False)
        return
    if topic not in registry.kinds():
        _explain_user(console, topic)
        return
    try:
        info = registry.get_info(topic)
        options = registry.block_options(topic)
    except FusionError as e:
        fail(e)
    cls = registry.get_class(topic)
    module = sys.modules[cls.__module__]
    console.print(f"[bold]{info.kind}[/bold]: {info.summary}\nsource: {info.source}\n")
    console.print(inspect.getdoc(module) or "", markup=False)
    if cls.__doc__:
        console.print("\n" + inspect.getdoc(cls), markup=False)
    table = Table(title=f"Options of '{topic}' (--set key=value)", header_style="bold")
    for col in ("option", "allowed", "default"):
        table.add_column(col)
    for opt in options.values():
        default = ",".join(map(str, opt.default)) if isinstance(opt.default, tuple) else opt.default
        table.add_row(opt.name, opt.describe(), "auto" if default is None else str(default))
    console.print(table)
    console.print(f"default inputs: {' '.join(info.inputs)} -> out {info.out}")


def _explain_user(console, topic: str) -> None:
    """A plugin kind, FILE.py:NAME or package.module:NAME: its docstring, constructor signature and options
    (imports the plugin or the file, as inspecting it would)."""
    import inspect

    from rich.table import Table

    from .. import userblock
    from ..spec import Spec

    try:
        ref = userblock.parse_reference(topic, field="KIND")
        if ref is None:
            kinds = [*registry.list_fusions(), *userblock.plugin_kinds()]
            raise SpecError.bad("KIND", topic, "allowed: a block kind, a plugin kind, FILE.py:NAME, "
                                "package.module:NAME or 'costs'", choices=[*kinds, "costs"])
        obj = userblock.load(Spec(name=topic, block=ref, inputs=[], out=None))
        options = userblock.options_of(obj)
    except FusionError as e:
        fail(e)
    ep = userblock.plugin_kinds().get(topic)
    origin = f"plugin from {userblock.plugin_distribution(ep)}: {ep.value}" if ep is not None and ref == topic \
        else userblock.shown_reference(ref)
    console.print(f"[bold]{topic}[/bold]" + (f": {origin}" if origin != topic else "") + "\n", markup=True)
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = "(...)"
    console.print(f"{getattr(obj, '__qualname__', topic)}{sig}\n", markup=False)
    console.print(inspect.getdoc(obj) or "(no docstring)", markup=False)
    conv = sorted(userblock.takes(obj))
    if conv:
        console.print("\nfrom the command line: " + ", ".join(
            f"{n} <- {'--in widths' if n == 'in_channels' else '--out'}" for n in conv), markup=False)
    table = Table(title=f"Options of '{topic}' (--set key=value)", header_style="bold")
    for col in ("option", "allowed", "default"):
        table.add_column(col)
    for opt in options.values():
        table.add_row(opt.name, opt.describe(), "(required)" if opt.required else str(opt.shown_default()))
    console.print(table)
