"""``fusion inspect`` and ``fusion compare``: gather options, call the analysis, render.

Start-up: ``fusion --help`` and a did-you-mean import this module too (the lazy group in
:mod:`fusioncli.cli`), so reports, specs, comparisons and output files are imported inside the
functions that use them, and torch only in :func:`_setup` (issue 8: start-up under 0.3 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import __version__
from ..errors import FusionError, SpecError
from . import app
from .errors import error_line, fail, in_cli_words, report_error
from .feedback import activity, progress, warn
from ..pareto import DEFAULT_PARETO
from .options import (
    BaselineOpt,
    ByModuleOpt,
    ByOpOpt,
    Format,
    FormatOpt,
    JsonOpt,
    ParetoOpt,
    PlotOpt,
    RunOptions,
    SortOpt,
    complete_spec,
    run_options,
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


def _setup(run: RunOptions):
    from ..limits import check_threads

    check_threads(run.threads)
    run.check_deploy()  # the extra, before torch: one line naming it
    analysis = state.import_module("fusioncli.analysis")  # torch: here, not at start-up
    analysis.check_device(run.device.value, run.dtype.value)
    if run.threads:
        import torch

        torch.set_num_threads(run.threads)
    if not run.no_time and run.device.value == "cpu":
        import torch

        from ..limits import oversubscription

        state.busy = oversubscription(run.threads or torch.get_num_threads())
    return analysis


def _say_busy() -> None:
    """The busy-machine warning, once, when the first block is about to be timed: after it was built and
    counted, so bad input stays one line."""
    if state.busy:
        warn(state.busy)
        state.busy = None


def run_spec(analysis, spec, run: RunOptions):
    """Analyse one resolved spec with the run's settings, warning of noisy timing and uncounted ops.
    A built-in block's errors come in the API's words; they are put in the command line's here."""
    try:
        report = analysis.analyze(spec, **run.analyze_keywords(), before_timing=_say_busy)
        if state.signalled:  # a Ctrl-C or SIGTERM that code under the analysis caught (torch.compile can)
            raise KeyboardInterrupt
    except FusionError as e:
        if not spec.builtin:  # fusion's own words about a user block already name the flags
            raise
        from ..registry import block_options

        raise in_cli_words(e, block_options(spec.block)) from None
    if report.timing and report.timing.capped:
        warn(f"{report.name}: timing capped by --max-time after {report.timing.runs} runs (7 are the norm); the "
             "median is less certain")
    if report.timing and report.timing.noisy:
        warn(f"{report.name}: timing is noisy (CV {report.timing.cv:.0%} > 10%); "
              "close other programs, use fewer --threads or raise --min-time")
    if report.cost.uncounted_ops:
        warn(f"{report.name}: ops without a FLOP formula (counted as 0): {', '.join(report.cost.uncounted_ops)}")
    return report


def _emit(env: Envelope, fmt: Format, by_op: bool = False, by_module: bool = False, output: str | None = None) -> None:
    from ..render import render
    from .output import atomic_output

    with atomic_output(output) as stream:
        render(env, fmt.value, stream, by_op=by_op, by_module=by_module)


@app.command("inspect")
@run_options()
def inspect_cmd(spec: SpecArg, *, by_op: ByOpOpt = False, by_module: ByModuleOpt = False,
                fmt: FormatOpt = Format.table, as_json: JsonOpt = False, run: RunOptions) -> None:
    """Build one block and report shapes, layers, parameters, MACs/FLOPs, memory and latency."""
    from ..report import Envelope
    from .output import check_output, spec_files

    fmt = Format.json if as_json else fmt
    try:
        check_output(run.output, inputs=spec_files([spec], run.node or ()))
    except FusionError as e:
        fail(e, fmt.value)
    try:
        resolved = run.precheck(spec, run.one_node("inspect"))
        state.quiet = run.quiet
        with activity(f"{'timing' if not run.no_time else 'counting'} {resolved.name}"):
            analysis = _setup(run)
            report = run_spec(analysis, resolved, run)
    except FusionError as e:
        fail(e, fmt.value, run.output)
    env = Envelope(__version__, analysis.environment(run.device.value, run.dtype.value, run.threads), [report])
    try:
        _emit(env, fmt, by_op, by_module, output=run.output)
    except FusionError as e:
        fail(e, fmt.value)


@app.command("compare")
@run_options()
def compare_cmd(specs: SpecsArg, *, baseline: BaselineOpt = None, sort: SortOpt = None,
                pareto: ParetoOpt = ",".join(DEFAULT_PARETO), plot: PlotOpt = None, fmt: FormatOpt = Format.table,
                as_json: JsonOpt = False, run: RunOptions) -> None:
    """Several blocks side by side, with ratios to a baseline, the best values and the Pareto front.

    SPECs may be quoted glob patterns of preset files ('presets/*.toml'). A spec that
    fails becomes an error row; the others are still reported and the exit code is
    that of the first failure.
    """
    from ..report import Envelope, ErrorEntry
    from ..comparing import CompareChoice, expand_specs
    from .output import check_output, spec_files

    fmt = Format.json if as_json else fmt
    try:
        specs = expand_specs(specs)
        files = spec_files(specs, run.node or ())
        check_output(run.output, inputs=files, others={"--plot": plot})
        check_output(plot, inputs=files, field="--plot")
    except FusionError as e:
        fail(e, fmt.value)
    try:
        choice = CompareChoice.parse(baseline=baseline, sort=sort, pareto=pareto, plot=plot, timed=not run.no_time)
        nodes = run.node or [None]
        pairs = [(text, node) for text in specs for node in nodes]  # several --node: each SPEC with each node
        if len(nodes) > 1:
            specs = [f"{text}[{node}]" for text, node in pairs]
        resolved: list = []  # each spec resolved and size-checked once, before torch is imported
        for label, (text, node) in zip(specs, pairs):
            try:
                spec = run.precheck(text, node)
                if len(nodes) > 1:
                    spec.name = label
                resolved.append(spec)
            except FusionError as e:
                resolved.append(e)
        choice.check_baseline(specs, resolved)
        analysis = _setup(run)
    except FusionError as e:
        fail(e, fmt.value, run.output)
    state.quiet = run.quiet
    reports: list = []
    seen: dict[str, int] = {}
    exit_code = 0
    for text, spec in progress(len(specs), "timing" if not run.no_time else "counting", name_items=True)(
            list(zip(specs, resolved))):
        try:
            if isinstance(spec, FusionError):
                raise spec
            report = run_spec(analysis, spec, run)
        except FusionError as e:
            error_line(e, text)
            reports.append(ErrorEntry(text, e.to_dict()))
            exit_code = exit_code or e.exit_code
            continue
        seen[report.name] = seen.get(report.name, 0) + 1
        if seen[report.name] > 1:  # the same kind twice (e.g. with other --set): keep names unique
            object.__setattr__(report, "name", f"{report.name}#{seen[report.name]}")
        reports.append(report)
    env = choice.apply(Envelope(__version__, analysis.environment(run.device.value, run.dtype.value, run.threads),
                                reports), specs)
    try:
        _emit(env, fmt, output=run.output)
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
