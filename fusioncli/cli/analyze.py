"""``fusion inspect`` and ``fusion compare``: gather options, call the analysis, render.

Start-up: every ``fusion`` command imports this module (Typer declares all commands before
it runs one), so reports, specs, comparisons and output files are imported inside the
functions that use them, and torch only in :func:`_setup` (issue 8: listings under 0.3 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from .. import __version__
from ..errors import FusionError, SpecError
from . import app
from .errors import error_line, fail, report_error
from .feedback import progress, warn
from .options import (
    AutocastOpt,
    BackwardOpt,
    BaselineOpt,
    BatchOpt,
    ByModuleOpt,
    ByOpOpt,
    ChannelsLastOpt,
    CompileBackendOpt,
    CompileOpt,
    CrosscheckOpt,
    DepthOpt,
    Device,
    DeviceOpt,
    DType,
    DTypeOpt,
    ForceOpt,
    Format,
    FormatOpt,
    InputsOpt,
    JsonOpt,
    MinTimeOpt,
    NoTimeOpt,
    OutOpt,
    OutputOpt,
    PackOpt,
    ParetoOpt,
    PlotOpt,
    QuietOpt,
    SetOpt,
    SortOpt,
    ThreadsOpt,
    complete_spec,
)
from .state import state

if TYPE_CHECKING:
    from ..report import Envelope

SPEC_HELP = ("A block kind, a plugin kind, a bundled preset name, a preset file, FILE.py:NAME or package.module:NAME "
             "(an nn.Module class or a factory). A FILE.py SPEC runs that file's code, as `python FILE.py` would.")
SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help=SPEC_HELP, autocompletion=complete_spec)]
SpecsArg = Annotated[list[str], typer.Argument(metavar="SPEC...", help=SPEC_HELP + " Quoted globs of preset files "
                                               "work too; the first SPEC is the baseline unless --baseline.",
                                               autocompletion=complete_spec)]


def _setup(device: Device, dtype: DType, threads: int | None):
    from ..limits import check_threads

    check_threads(threads)
    import gc

    # torch is imported here, not at start-up. Its import leaves ~170,000 tracked objects; the
    # collector runs ~370 times meanwhile (0.25 s here) to free ~7,000 of them, and each later
    # full collection walks them all again (0.13 s). So: no collections during the import, then
    # everything moves to the permanent generation (gc.freeze; those ~7,000 then stay).
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .. import analysis
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

    analysis.check_device(device.value, dtype.value)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return analysis


def timing_settings(*, device, dtype, threads, no_time, min_time, depth, crosscheck=False, backward=False,
                    channels_last=False, compile=False, compile_backend="inductor", autocast=False,
                    force=False) -> dict[str, Any]:
    """The :func:`fusioncli.analysis.analyze` keywords of a run, from the CLI options."""
    from ..analysis.timing import TimingMode

    mode = TimingMode(backward=backward, channels_last=channels_last, compile=compile,
                      compile_backend=compile_backend, autocast=autocast)
    return dict(device=device.value, dtype=dtype.value, threads=threads, time=not no_time, depth=depth,
                min_time=min_time, crosscheck=crosscheck, timing_mode=mode, force=force)


class SpecFlags(NamedTuple):
    """The flags that override a spec's shapes and options (shared by every spec of a run)."""

    inputs: list[str] | None = None
    out: int | None = None
    sets: list[str] | None = None
    batch: int | None = None
    pack: Any = None  # a Pack, or None for the spec's own

    def resolve(self, spec_text: str):
        """The spec with these flags, resolved once and without importing torch or user code."""
        from ..spec import parse_set, resolve_spec

        return resolve_spec(spec_text, inputs=self.inputs, out=self.out, options=parse_set(self.sets),
                            batch=self.batch, pack=self.pack.value if self.pack is not None else None,
                            check_options=False)


def run_spec(analysis, spec, flags: SpecFlags, settings: dict[str, Any]):
    """Analyse one spec (a resolved Spec, or a spec string resolved with the flags); ``settings`` are
    :func:`analyze` keywords."""
    if isinstance(spec, str):
        spec = flags.resolve(spec)
    report = analysis.analyze(spec, **settings)
    if report.timing and report.timing.noisy:
        warn(f"{report.name}: timing is noisy (CV {report.timing.cv:.0%} > 10%); "
              "close other programs or raise --min-time")
    if report.cost["uncounted_ops"]:
        warn(f"{report.name}: ops without a FLOP formula (counted as 0): {', '.join(report.cost['uncounted_ops'])}")
    return report


def _emit(env: Envelope, fmt: Format, by_op: bool = False, by_module: bool = False, output: str | None = None) -> None:
    from ..render import render
    from .output import atomic_output

    with atomic_output(output) as stream:
        render(env, fmt.value, stream, by_op=by_op, by_module=by_module)


def precheck(spec_text: str, flags: SpecFlags, *, dtype: DType, no_time: bool, crosscheck: bool = False,
             device: Device = Device.cpu, force: bool = False):
    """Resolve the spec and check size limits and inputs against free RAM, before torch is imported: an absurd
    shape fails in well under a second (the full memory guard follows the meta pass, in
    :func:`fusioncli.analysis.analyze`). Returns the resolved spec."""
    from ..limits import check_inputs_fit, check_shapes

    spec = flags.resolve(spec_text)
    check_shapes(spec, dtype.value, force=force)
    if not no_time or crosscheck:
        check_inputs_fit(spec, dtype.value, device=device.value, force=force)
    return spec


@app.command("inspect")
def inspect_cmd(
    spec: SpecArg,
    inputs: InputsOpt = None,
    out: OutOpt = None,
    sets: SetOpt = None,
    batch: BatchOpt = None,
    pack: PackOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = DType.float32,
    threads: ThreadsOpt = None,
    no_time: NoTimeOpt = False,
    min_time: MinTimeOpt = 0.4,
    depth: DepthOpt = 3,
    by_op: ByOpOpt = False,
    by_module: ByModuleOpt = False,
    crosscheck: CrosscheckOpt = False,
    backward: BackwardOpt = False,
    channels_last: ChannelsLastOpt = False,
    compile: CompileOpt = False,
    compile_backend: CompileBackendOpt = "inductor",
    autocast: AutocastOpt = False,
    quiet: QuietOpt = False,
    force: ForceOpt = False,
    output: OutputOpt = None,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """Build one block and report shapes, layers, parameters, MACs/FLOPs, memory and latency."""
    from ..report import Envelope
    from .output import check_output

    fmt = Format.json if as_json else fmt
    try:
        check_output(output)
    except FusionError as e:
        fail(e, fmt.value)
    try:
        flags = SpecFlags(inputs, out, sets, batch, pack)
        resolved = precheck(spec, flags, dtype=dtype, no_time=no_time, crosscheck=crosscheck, device=device,
                            force=force)
        analysis = _setup(device, dtype, threads)
        state.quiet = quiet
        settings = timing_settings(device=device, dtype=dtype, threads=threads, no_time=no_time, min_time=min_time,
                                   depth=depth, crosscheck=crosscheck, backward=backward, channels_last=channels_last,
                                   compile=compile, compile_backend=compile_backend, autocast=autocast, force=force)
        report = run_spec(analysis, resolved, flags, settings)
    except FusionError as e:
        fail(e, fmt.value, output)
    env = Envelope(__version__, analysis.environment(device.value, dtype.value, threads), [report])
    try:
        _emit(env, fmt, by_op, by_module, output=output)
    except FusionError as e:
        fail(e, fmt.value)


@app.command("compare")
def compare_cmd(
    specs: SpecsArg,
    inputs: InputsOpt = None,
    out: OutOpt = None,
    sets: SetOpt = None,
    batch: BatchOpt = None,
    pack: PackOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = DType.float32,
    threads: ThreadsOpt = None,
    no_time: NoTimeOpt = False,
    min_time: MinTimeOpt = 0.4,
    depth: DepthOpt = 3,
    crosscheck: CrosscheckOpt = False,
    backward: BackwardOpt = False,
    channels_last: ChannelsLastOpt = False,
    compile: CompileOpt = False,
    compile_backend: CompileBackendOpt = "inductor",
    autocast: AutocastOpt = False,
    quiet: QuietOpt = False,
    baseline: BaselineOpt = None,
    sort: SortOpt = None,
    pareto: ParetoOpt = "params,flops,latency",
    plot: PlotOpt = None,
    force: ForceOpt = False,
    output: OutputOpt = None,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """Several blocks side by side, with ratios to a baseline, the best values and the Pareto front.

    SPECs may be quoted glob patterns of preset files ('presets/*.toml'). A spec that
    fails becomes an error row; the others are still reported and the exit code is
    that of the first failure.
    """
    from ..report import Envelope, ErrorEntry
    from ..comparing import CompareChoice, expand_specs
    from .output import check_output

    fmt = Format.json if as_json else fmt
    try:
        check_output(output)
    except FusionError as e:
        fail(e, fmt.value)
    try:
        specs = expand_specs(specs)
        choice = CompareChoice.parse(baseline=baseline, sort=sort, pareto=pareto, plot=plot, timed=not no_time)
        flags = SpecFlags(inputs, out, sets, batch, pack)
        resolved: list = []  # each spec resolved and size-checked once, before torch is imported
        for text in specs:
            try:
                resolved.append(precheck(text, flags, dtype=dtype, no_time=no_time, crosscheck=crosscheck,
                                         device=device, force=force))
            except FusionError as e:
                resolved.append(e)
        choice.check_baseline(specs, resolved)
        analysis = _setup(device, dtype, threads)
    except FusionError as e:
        fail(e, fmt.value, output)
    state.quiet = quiet
    settings = timing_settings(device=device, dtype=dtype, threads=threads, no_time=no_time, min_time=min_time,
                               depth=depth, crosscheck=crosscheck, backward=backward, channels_last=channels_last,
                               compile=compile, compile_backend=compile_backend, autocast=autocast, force=force)
    reports: list = []
    seen: dict[str, int] = {}
    exit_code = 0
    for text, spec in progress(len(specs), "timing" if not no_time else "counting", name_items=True)(
            list(zip(specs, resolved))):
        try:
            if isinstance(spec, FusionError):
                raise spec
            report = run_spec(analysis, spec, flags, settings)
        except FusionError as e:
            error_line(e, text)
            reports.append(ErrorEntry(text, e.to_dict()))
            exit_code = exit_code or e.exit_code
            continue
        seen[report.name] = seen.get(report.name, 0) + 1
        if seen[report.name] > 1:  # the same kind twice (e.g. with other --set): keep names unique
            object.__setattr__(report, "name", f"{report.name}#{seen[report.name]}")
        reports.append(report)
    env = choice.apply(Envelope(__version__, analysis.environment(device.value, dtype.value, threads), reports),
                       specs)
    try:
        _emit(env, fmt, output=output)
    except FusionError as e:
        fail(e, fmt.value)
    try:
        choice.write_plot(env)
    except FusionError as e:  # the report is out: say why the picture is not, keep the first failure's code
        report_error(e)
        exit_code = exit_code or e.exit_code
    if exit_code:
        raise typer.Exit(exit_code)


__all__ = ["inspect_cmd", "compare_cmd", "SpecError"]
