"""``fusion inspect`` and ``fusion compare``: gather options, call the analysis, render."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import __version__
from ..errors import FusionError, SpecError
from ..report import Envelope, ErrorEntry
from ..spec import parse_set, resolve_spec
from . import app
from .errors import fail
from .options import (
    BatchOpt,
    ByModuleOpt,
    ByOpOpt,
    CrosscheckOpt,
    DepthOpt,
    Device,
    DeviceOpt,
    DType,
    DTypeOpt,
    Format,
    FormatOpt,
    InputsOpt,
    JsonOpt,
    MinTimeOpt,
    NoTimeOpt,
    OutOpt,
    SetOpt,
    ThreadsOpt,
)

SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="A block kind, a bundled preset name or a preset file.")]
SpecsArg = Annotated[list[str], typer.Argument(metavar="SPEC...", help="Block kinds, preset names or preset files; "
                                                                     "the first is the baseline.")]


def _warn(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[yellow]fusion: warning:[/yellow] {message}")


def _setup(device: Device, dtype: DType, threads: int | None):
    from .. import analysis  # torch is imported here, not at start-up

    analysis.check_device(device.value, dtype.value)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return analysis


@dataclass(frozen=True)
class SpecFlags:
    """The flags that override a spec's shapes and options (shared by every spec of a run)."""

    inputs: list[str] | None = None
    out: int | None = None
    sets: list[str] | None = None
    batch: int | None = None


def run_spec(analysis, spec_text: str, flags: SpecFlags, settings: dict[str, Any]):
    """Resolve one spec with the flags and analyse it; ``settings`` are :func:`analyze` keywords."""
    spec = resolve_spec(spec_text, inputs=flags.inputs, out=flags.out, options=parse_set(flags.sets),
                        batch=flags.batch)
    report = analysis.analyze(spec, **settings)
    if report.timing and report.timing.noisy:
        _warn(f"{report.name}: timing is noisy (CV {report.timing.cv:.0%} > 10%); "
              "close other programs or raise --min-time")
    if report.cost["uncounted_ops"]:
        _warn(f"{report.name}: ops without a FLOP formula (counted as 0): {', '.join(report.cost['uncounted_ops'])}")
    return report


def _emit(env: Envelope, fmt: Format, by_op: bool = False, by_module: bool = False) -> None:
    from ..render import render

    render(env, fmt.value, sys.stdout, by_op=by_op, by_module=by_module)


@app.command("inspect")
def inspect_cmd(
    spec: SpecArg,
    inputs: InputsOpt = None,
    out: OutOpt = None,
    sets: SetOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = DType.float32,
    threads: ThreadsOpt = None,
    no_time: NoTimeOpt = False,
    min_time: MinTimeOpt = 0.4,
    depth: DepthOpt = 3,
    by_op: ByOpOpt = False,
    by_module: ByModuleOpt = False,
    crosscheck: CrosscheckOpt = False,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """Build one block and report shapes, layers, parameters, MACs/FLOPs, memory and latency."""
    fmt = Format.json if as_json else fmt
    try:
        analysis = _setup(device, dtype, threads)
        settings = dict(device=device.value, dtype=dtype.value, threads=threads, time=not no_time, depth=depth,
                        min_time=min_time, crosscheck=crosscheck)
        report = run_spec(analysis, spec, SpecFlags(inputs, out, sets, batch), settings)
    except FusionError as e:
        fail(e, fmt.value)
    env = Envelope(__version__, analysis.environment(device.value, dtype.value, threads), [report])
    _emit(env, fmt, by_op, by_module)


@app.command("compare")
def compare_cmd(
    specs: SpecsArg,
    inputs: InputsOpt = None,
    out: OutOpt = None,
    sets: SetOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = Device.cpu,
    dtype: DTypeOpt = DType.float32,
    threads: ThreadsOpt = None,
    no_time: NoTimeOpt = False,
    min_time: MinTimeOpt = 0.4,
    depth: DepthOpt = 3,
    crosscheck: CrosscheckOpt = False,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """Several blocks side by side, with ratios to the first (the baseline).

    A spec that fails becomes an error row; the others are still reported and the
    exit code is that of the first failure.
    """
    fmt = Format.json if as_json else fmt
    try:
        analysis = _setup(device, dtype, threads)
    except FusionError as e:
        fail(e, fmt.value)
    flags = SpecFlags(inputs, out, sets, batch)
    settings = dict(device=device.value, dtype=dtype.value, threads=threads, time=not no_time, depth=depth,
                    min_time=min_time, crosscheck=crosscheck)
    reports: list = []
    seen: dict[str, int] = {}
    exit_code = 0
    for text in specs:
        try:
            report = run_spec(analysis, text, flags, settings)
        except FusionError as e:
            Console(stderr=True, highlight=False).print(f"fusion: error: {text}: {e.message}", markup=False)
            reports.append(ErrorEntry(text, e.to_dict()))
            exit_code = exit_code or e.exit_code
            continue
        seen[report.name] = seen.get(report.name, 0) + 1
        if seen[report.name] > 1:  # the same kind twice (e.g. with other --set): keep names unique
            object.__setattr__(report, "name", f"{report.name}#{seen[report.name]}")
        reports.append(report)
    baseline = next((r.name for r in reports if not isinstance(r, ErrorEntry)), None)
    env = Envelope(__version__, analysis.environment(device.value, dtype.value, threads), reports,
                   baseline=baseline or "")
    _emit(env, fmt)
    if exit_code:
        raise typer.Exit(exit_code)


__all__ = ["inspect_cmd", "compare_cmd", "SpecError"]
