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


def _listing(key: str, entries: list) -> dict:
    """A listing's JSON: the same envelope head as every other JSON output (schema ``listing``)."""
    from .. import __version__
    from ..report import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "tool": {"name": "fusioncli", "version": __version__}, key: entries}


def _plain(fmt: Format, header: list[str], rows: list[list[str]]) -> bool:
    """A listing as CSV or a Markdown table on stdout; False for the other formats."""
    from ..render.formats import printable

    if fmt == Format.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[printable(c) for c in row] for row in rows])
        return True
    if fmt == Format.markdown:
        cell = lambda c: printable(c).replace("|", "\\|")  # noqa: E731
        sys.stdout.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
        for row in rows:
            sys.stdout.write("| " + " | ".join(cell(c) for c in row) + " |\n")
        return True
    return False


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
    necks = [registry.get_info(k) for k in registry.list_necks(pattern)]
    plugins = {k: ep for k, ep in plugin_kinds().items()
               if fnmatch.fnmatchcase(k, pattern) and k not in registry.kinds()}
    if not rows and not necks and not plugins:  # as a glob that matches no preset file in compare: say so, exit 2
        kinds = [*registry.list_fusions(), *plugin_kinds()]
        fail(SpecError.bad("PATTERN", pattern, "matches no block kind; kinds: " + ", ".join(kinds), choices=kinds),
             fmt.value)
    if fmt == Format.json:
        entries = ([{"kind": b.kind, "summary": b.summary, "source": b.source, "default_inputs": list(b.inputs),
                     "default_out": b.out} for b in rows]
                   + [{"kind": b.kind, "summary": b.summary, "source": b.source, "default_inputs": list(b.inputs),
                       "default_out": b.out, "neck": True} for b in necks]
                   + [{"kind": k, "summary": None, "source": f"plugin: {ep.value}", "default_inputs": None,
                       "default_out": None, "plugin": plugin_distribution(ep)} for k, ep in plugins.items()])
        json.dump(_listing("blocks", entries), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    header = ["kind", "what it computes", "source", "default inputs -> out"]
    plain = ([[b.kind, b.summary, b.source, " ".join(b.inputs) + f" -> {b.out}"] for b in (*rows, *necks)]
             + [[k, f"plugin from {plugin_distribution(ep)}", ep.value, "--in needed"] for k, ep in plugins.items()])
    if _plain(fmt, header, plain):
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Fusion blocks", header_style="bold")
    for col in ("kind", "what it computes", "source", "default inputs -> out"):
        table.add_column(col, **WHOLE(col == "kind"))
    for b in rows:
        table.add_row(b.kind, b.summary, b.source, " ".join(b.inputs) + f" -> {b.out}")
    for k, ep in plugins.items():
        table.add_row(k, f"plugin from {plugin_distribution(ep)} (fusion explain {k})", ep.value, "--in needed")
    console = Console(highlight=False, markup=False, emoji=False)  # plain cells: half the render time
    if rows or plugins:
        console.print(table)
    if necks:
        table = Table(title="Necks (the fusion node swaps with --node KIND; inputs from --backbone NAME --image HxW)",
                      header_style="bold")
        for col in ("kind", "what it computes", "source", "default inputs -> out"):
            table.add_column(col, **WHOLE(col == "kind"))
        for b in necks:
            table.add_row(b.kind, b.summary, b.source, " ".join(b.inputs) + f" -> {b.out}")
        console.print(table)


def WHOLE(name_column: bool) -> dict:  # noqa: N802 (a column style)
    """A listing's column at any width: the name column never wraps; the others wrap, and a word longer
    than the column folds onto the next line rather than being cut with an ellipsis."""
    return {"no_wrap": True} if name_column else {"overflow": "fold"}


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
        json.dump(_listing("presets", [{"name": s.name, "block": s.block, "inputs": [list(i) for i in s.inputs],
                                        "out": s.out, "options": s.options, "source": s.source, "path": s.path}
                                       for s in specs]), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if _plain(fmt, ["name", "block", "inputs", "out", "from"],
              [[s.name, s.block, " ".join(format_shape(i) for i in s.inputs), str(s.out), s.source] for s in specs]):
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Bundled presets", header_style="bold")
    for col in ("name / block", "inputs -> out", "from"):
        table.add_column(col, **WHOLE(col != "from"))
    for s in specs:  # the block under the name, one input a line: the source text gets the width left
        table.add_row(f"{s.name}\n  {s.block}", "\n".join(format_shape(i) for i in s.inputs) + f"\n-> {s.out}",
                      s.source)
    Console(highlight=False, markup=False, emoji=False).print(table)  # plain cells: half the render time


@app.command("explain")
def explain_cmd(
    topic: Annotated[str, typer.Argument(metavar="KIND|costs|backbones", help="A block or neck kind, 'costs' for "
                                         "the counting convention, or 'backbones' for the --backbone table.")],
) -> None:
    """Show a block's or a neck's paper, formula, shape contract, options with defaults, and where the
    paper and its reference code differ; 'costs': the FLOP counting conventions (forward, training step) and the roofline; 'backbones': the
    feature pyramids of --backbone. Built-in kinds are read from their source: torch is not imported."""
    import inspect

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if topic == "costs":
        from ..analysis import cost, roofline, training  # imports torch

        for module in (cost, training, roofline):
            console.print(inspect.getdoc(module) + "\n", markup=False)
        return
    if topic == "backbones":
        _explain_backbones(console)
        return
    if topic not in registry.kinds():
        _explain_user(console, topic)
        return
    from .. import sourcedoc  # the source, parsed: no torch (explain is static text)
    from ..render.formats import option_text

    info = registry.get_info(topic)
    module_doc, class_doc, options = sourcedoc.describe("necks" if registry.is_neck(topic) else "blocks",
                                                        info.target)
    console.print(f"[bold]{info.kind}[/bold]: {info.summary}\nsource: {info.source}\n")
    console.print(sourcedoc.reflow(sourcedoc.rst_to_text(module_doc)), markup=False)
    if class_doc:
        console.print("\n" + sourcedoc.reflow(sourcedoc.rst_to_text(class_doc)), markup=False)
    table = Table(title=f"Options of '{topic}' (--set key=value)", header_style="bold")
    for col in ("option", "allowed", "default"):
        table.add_column(col, **WHOLE(col == "option"))
    for opt in options.values():
        table.add_row(opt.name, opt.describe(), option_text(opt.default))
    console.print(table)
    if registry.is_neck(topic):
        console.print(f"The node's options: --set node.NAME=VALUE (`fusion explain {options['node'].default}` for the "
                      "default node's). Each merge resizes (and, where the topology does, projects) its inputs to "
                      "what the node needs, as layers of the node: proj.i and resize.i in the per-layer table.")
    console.print(f"default inputs: {' '.join(info.inputs)} -> out {info.out}")


def _explain_backbones(console) -> None:
    """The table behind ``--backbone``: widths, strides, rounding and where each comes from."""
    from rich.table import Table

    from .. import backbones

    console.print(backbones.__doc__.split("\n\n", 1)[1].strip(), markup=False)
    table = Table(title="Backbones (--backbone NAME --image HxW)", header_style="bold")
    for col in ("name", "levels", "widths", "strides", "sizes", "at 512x512", "source"):
        table.add_column(col, **WHOLE(col in ("name", "levels")))
    for b in backbones.BACKBONES.values():
        levels = f"C{b.first_level}-C{b.first_level + len(b.widths) - 1}"
        strides = ", ".join(f"{s:g}" for s in b.strides)
        at = " ".join(f"{h}x{w}" for h, w in b.sizes(512, 512))
        table.add_row(b.name, levels, ", ".join(map(str, b.widths)), strides,
                      b.rounding + (f" (patch {b.patch})" if b.patch else ""), at, b.source)
    console.print(table, markup=False)


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
            kinds = [*registry.list_fusions(), *registry.list_necks(), *userblock.plugin_kinds()]
            raise SpecError.bad("KIND", topic, "allowed: a block or neck kind, a plugin kind, FILE.py:NAME, "
                                "package.module:NAME, 'costs' or 'backbones'", choices=[*kinds, "costs", "backbones"])
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
        table.add_column(col, **WHOLE(col == "option"))
    for opt in options.values():
        table.add_row(opt.name, opt.describe(), "(required)" if opt.required else str(opt.shown_default()))
    console.print(table)
