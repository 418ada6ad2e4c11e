"""``fusion sweep`` and ``fusion merge``: a grid of shapes and options, scaling exponents, shards.

The grid, shards, point overrides and the exponent fit live in :mod:`fusioncli.sweep`;
each point is one ``run_spec`` call, exactly as ``inspect`` would run it.

Start-up: ``fusion --help`` and a did-you-mean import this module too (the lazy group in
:mod:`fusioncli.cli`), so the sweep machinery, reports, specs and output files are imported
inside the functions that use them (issue 8: ``--help`` under 0.3 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import __version__
from ..errors import FusionError, SpecError
from ..registry import block_options
from . import app
from .analyze import _setup, run_spec
from .errors import error_line, fail, report_error
from .feedback import progress, warn
from .options import (
    JsonOpt,
    OutputOpt,
    PlotOpt,
    RunOptions,
    ShardOpt,
    SweepFormat,
    VaryOpt,
    complete_spec,
    run_options,
)
from .state import state

if TYPE_CHECKING:
    from .. import sweep as S
    from ..report import Envelope


SweepFormatOpt = Annotated[SweepFormat, typer.Option(
    "--format", "-f", help="Output format; jsonl streams one self-contained JSON object per grid point.")]
SpecsArg = Annotated[list[str], typer.Argument(metavar="SPEC...", help="Block kinds, preset names, preset files or "
                                                                     "quoted globs of them.", autocompletion=complete_spec)]
FilesArg = Annotated[list[Path], typer.Argument(metavar="FILES...", help="Outputs of `fusion sweep --format json` "
                                                                       "or `--format jsonl` (shards of one sweep).")]

TOOL = {"name": "fusioncli", "version": __version__}


def _check_options(vary: dict, bases: dict) -> None:
    """An option varied must be an option of at least one spec's block (typos fail before anything runs)."""
    from .. import sweep as S
    from ..userblock import load, options_of

    names = [v for v in vary if v not in S.RESERVED]
    specs = [b for b in bases.values() if not isinstance(b, FusionError)]
    if not names or not specs:
        return
    blocks = {b.block if b.builtin else b.name for b in specs}
    known = {k for b in specs for k in (block_options(b.block) if b.builtin else options_of(load(b)))}
    for b in specs:  # a neck's node options, node.NAME, by its node kind
        if b.neck:
            from ..registry import node_options

            node = b.options.get("node", block_options(b.block)["node"].default)
            known |= {f"node.{k}" for k in node_options(node)}
    for name in names:
        if name not in known:
            raise SpecError.bad("--vary", name, "allowed: size, channels, batch, out or an option of "
                                + ", ".join(sorted(blocks)) + ": " + ", ".join(sorted(known)),
                                choices=[*S.RESERVED, *known])


def _render(env: Envelope, fmt: SweepFormat, output: str | None) -> None:
    from ..render import render
    from .output import atomic_output

    try:
        with atomic_output(output) as stream:
            render(env, fmt.value, stream)
    except FusionError as e:
        fail(e, "table")


def _plot(env: Envelope, path: Path | None, exit_code: int = 0) -> int:
    """Draw the sweep; on failure say why (the report is already out) and return the exit code to use."""
    if path is not None:
        from ..render.plot import plot_sweep

        try:
            plot_sweep(env, path)
        except FusionError as e:
            report_error(e)
            return exit_code or e.exit_code
    return exit_code


class _Runner:
    """Runs grid points one by one (a generator of entries), keeping them and the first failure's exit code."""

    def __init__(self, analysis, run: RunOptions, bases: dict) -> None:
        self.analysis, self.run, self.bases = analysis, run, bases
        self.entries: list = []
        self.exit_code = 0

    def point(self, point: S.Point):
        from dataclasses import replace

        from .. import sweep as S
        from ..report import ErrorEntry

        base = self.bases[point.spec]
        if isinstance(base, FusionError):
            self.exit_code = self.exit_code or base.exit_code
            return ErrorEntry(point.spec, base.to_dict(), point.to_dict())
        from ..spec import override

        try:
            over = S.apply_point(base, point.values)
            spec = override(replace(base, options=dict(base.options)), inputs=over.get("inputs"),
                            out=over.get("out"), options=over.get("options"), batch=over.get("batch"),
                            check_options=False)
            return replace(run_spec(self.analysis, spec, self.run), sweep=point.to_dict())
        except FusionError as e:
            at = ", ".join(f"{k}={v}" for k, v in point.values.items())
            error_line(e, f"{point.spec} at {at}")
            self.exit_code = self.exit_code or e.exit_code
            return ErrorEntry(point.spec, e.to_dict(), point.to_dict())

    def __call__(self, points):
        for point in progress(len(points), "sweep")(points):
            entry = self.point(point)
            self.entries.append(entry)
            yield entry


@app.command("sweep")
@run_options(omit=("crosscheck", "deploy"), defaults={"depth": 1})
def sweep_cmd(specs: SpecsArg, vary: VaryOpt = None, shard: ShardOpt = None, *, plot: PlotOpt = None,
              fmt: SweepFormatOpt = SweepFormat.table, as_json: JsonOpt = False, run: RunOptions) -> None:
    """Run SPECs over a grid of sizes, widths, batch sizes or options, and fit how each cost scales.

    Each metric's scaling exponent is the least-squares slope of log(metric) on
    log(variable): "MACs ∝ size^2.00". With --no-time every point is counted on the
    meta device (fast at any size). A point that fails becomes an error row; the others
    are still reported and the exit code is that of the first failure.
    """
    from .. import sweep as S
    from ..report import SCHEMA_VERSION, Envelope
    from ..spec import typed_options
    from ..comparing import expand_specs, output_sizes_note
    from ..render.json import dumps  # standard JSON only: no NaN or Infinity
    from .output import atomic_output, check_output, spec_files

    fmt = SweepFormat.json if as_json else fmt
    err_fmt = "json" if fmt in (SweepFormat.json, SweepFormat.jsonl) else "table"
    state.quiet = run.quiet
    try:
        specs = list(dict.fromkeys(expand_specs(specs)))
        files = spec_files(specs, run.node or ())
        check_output(run.output, inputs=files, others={"--plot": plot})
        check_output(plot, inputs=files, field="--plot")
    except FusionError as e:
        fail(e, err_fmt)
    try:
        grid_vars = S.parse_vary(vary)
        if not grid_vars:
            raise SpecError("--vary: at least one is needed, e.g. --vary size=16,32,64", field="--vary")
        which = S.parse_shard(shard)
        points_n = S.grid_size(specs, grid_vars)
        if points_n > S.MAX_POINTS:
            raise SpecError.bad("--vary", f"{points_n:,} grid points", f"allowed: at most {S.MAX_POINTS:,} (the SPECs "
                                "times each --vary's values); split the sweep")
        from ..render.plot import check_plot, plot_variable

        plot_path = check_plot(plot)
        if plot_path is not None:
            plot_variable(grid_vars)
        bases: dict = {}
        shaping = {k: v[0] for k, v in grid_vars.items() if k in ("size", "channels", "image")}
        for text in specs:  # resolved and size-checked once, before torch is imported
            try:
                bases[text] = run.precheck(text, run.one_node("sweep"))
                S.apply_point(bases[text], shaping)  # a shape the grid cannot vary fails once, here
            except FusionError as e:
                if len(specs) == 1:
                    raise
                bases[text] = e
                error_line(e, text)
        analysis = _setup(run)
        for text, base in bases.items():  # option names and values, once per spec (imports the block)
            if isinstance(base, FusionError):
                continue
            try:
                base.options = typed_options(base, base.options)
            except FusionError as e:
                if len(specs) == 1:
                    raise
                bases[text] = e
                error_line(e, text)
        _check_options(grid_vars, bases)
    except FusionError as e:
        fail(e, err_fmt, run.output)

    points = S.shard(S.grid(specs, grid_vars), which)
    definition = S.definition(specs, grid_vars, which)
    environment = analysis.environment(run.device.value, run.dtype.value, run.threads)
    runner = _Runner(analysis, run, bases)
    if fmt == SweepFormat.jsonl:  # streamed: each line is written as its point completes
        try:
            with atomic_output(run.output) as stream:
                for entry in runner(points):
                    stream.write(dumps(S.line(environment, TOOL, definition, entry, SCHEMA_VERSION)) + "\n")
                    stream.flush()
        except FusionError as e:
            fail(e, "table")
    else:
        for _ in runner(points):
            pass
    entries = runner.entries
    note = output_sizes_note(entries)
    env = Envelope(__version__, environment, entries, sweep={**definition, "exponents": S.exponents(entries, grid_vars)},
                   notes=[note] if note else [])
    if fmt != SweepFormat.jsonl:
        _render(env, fmt, run.output)
    exit_code = _plot(env, plot_path, runner.exit_code)
    if exit_code:
        raise typer.Exit(exit_code)


MAX_MERGE_BYTES = 1 << 30  # 1 GiB of JSON: far more than any sweep writes


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _loads(text: str, label: str):
    """Standard JSON only (no NaN, Infinity), nesting within Python's limits."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise SpecError(f"merge: {label}: nested too deeply to be a sweep output", field="FILES") from None
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError):
            raise
        raise SpecError(f"merge: {label}: {e} (fusion never writes it)", field="FILES") from None


def _read(path: Path) -> list[tuple[str, dict]]:
    """A JSON envelope or JSON lines -> (label, object) pairs. Only regular files of a sane size are
    read: a FIFO, a device or /dev/zero is refused before it is opened."""
    import stat

    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise SpecError.bad("FILES", str(path), "is a directory; expected a file made by `fusion sweep`")
        if not stat.S_ISREG(st.st_mode):
            raise SpecError.bad("FILES", str(path), "is not a regular file (a FIFO, device or socket is never read)")
        if st.st_size > MAX_MERGE_BYTES:
            raise SpecError.bad("FILES", str(path), f"is {st.st_size:,} bytes; allowed: at most {MAX_MERGE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError.bad("FILES", str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError.bad("FILES", str(path), f"cannot be read ({e})") from None
    try:
        return [(str(path), _loads(text, str(path)))]
    except json.JSONDecodeError:
        pass
    docs = []
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            try:
                docs.append((f"{path}:{n}", _loads(raw, f"{path}:{n}")))
            except json.JSONDecodeError as e:
                raise SpecError(f"merge: {path}:{n}: not JSON ({e.msg}); expected the output of "
                                "`fusion sweep --format json` or `--format jsonl`", field="FILES") from None
    return docs


@app.command("merge")
def merge_cmd(
    files: FilesArg,
    plot: PlotOpt = None,
    output: OutputOpt = None,
    fmt: SweepFormatOpt = SweepFormat.table,
    as_json: JsonOpt = False,
) -> None:
    """Merge sweep outputs (shards, in any order) into one sweep and fit the scaling exponents again.

    Every file must come from the same sweep (same SPECs and --vary); missing grid
    points are named in a note, a point given twice is kept once.
    """
    from .. import sweep as S
    from ..render.json import dumps
    from ..report import SCHEMA_VERSION, Envelope
    from .output import atomic_output, check_output

    fmt = SweepFormat.json if as_json else fmt
    err_fmt = "json" if fmt in (SweepFormat.json, SweepFormat.jsonl) else "table"
    try:
        check_output(output, inputs=files, others={"--plot": plot})
        check_output(plot, inputs=files, field="--plot")
        from ..render.plot import check_plot, plot_variable

        plot_path = check_plot(plot)
        docs = [d for f in files for d in _read(f)]
        merged = S.merge(docs)
        if plot_path is not None:
            plot_variable(merged.sweep["vary"])
    except FusionError as e:
        fail(e, err_fmt)
    for note in merged.notes:
        warn(note)
    from ..comparing import output_sizes_note

    note = output_sizes_note(merged.entries)
    env = Envelope(__version__, merged.environment, merged.entries, sweep=merged.sweep,
                   notes=merged.notes + ([note] if note else []))
    if fmt == SweepFormat.jsonl:
        definition = {k: v for k, v in merged.sweep.items() if k != "exponents"}
        try:
            with atomic_output(output) as stream:
                for entry in merged.entries:
                    stream.write(dumps(S.line(merged.environment, TOOL, definition, entry, SCHEMA_VERSION))
                                 + "\n")
        except FusionError as e:
            fail(e, "table")
    else:
        _render(env, fmt, output)
    exit_code = _plot(env, plot_path)
    if exit_code:
        raise typer.Exit(exit_code)
