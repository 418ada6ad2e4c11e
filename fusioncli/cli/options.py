"""Options shared by ``inspect`` and ``compare`` (Annotated aliases, as in fastapi-cli)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Pack(str, Enum):
    args = "args"
    list = "list"
    dict = "dict"
    kwargs = "kwargs"


InputsOpt = Annotated[Optional[list[str]], typer.Option(
    "--in", metavar="[NAME=]SHAPE", help="One input's shape without the batch, repeat once per input: CxHxW maps "
    "(--in 64x56x56 --in 128x28x28); user blocks also take C, NxC tokens (196x768) and CxDxHxW volumes; "
    "named for --pack dict/kwargs (--in query=100x64).")]
PackOpt = Annotated[Optional[Pack], typer.Option(
    "--pack", help="How inputs are passed to forward: separate tensors (args, default), one list, one dict of "
    "named inputs, or keyword arguments (kwargs).")]
OutOpt = Annotated[Optional[int], typer.Option("--out", metavar="C", help="Output channels.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Block option or constructor argument, repeatable (e.g. --set r=4). See `fusion explain KIND`.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", metavar="N", help="Batch size [default: 1 or the preset's].")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Device for timing.")]
DTypeOpt = Annotated[DType, typer.Option("--dtype", help="Data type of weights and inputs.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", metavar="N", min=1, help="CPU threads for torch and the timer [default: torch's default].")]
NoTimeOpt = Annotated[bool, typer.Option("--no-time", help="Skip timing (counting alone runs on the meta device).")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", metavar="SECONDS", min=0.0,
                                           help="Time budget per block for measured runs.")]
DepthOpt = Annotated[int, typer.Option("--depth", metavar="N", min=1, help="Depth of the per-layer table.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Short for --format json.")]
# choosing a design (compare, sweep, merge): see fusioncli.pareto and fusioncli.sweep
BaselineOpt = Annotated[Optional[str], typer.Option(
    "--baseline", metavar="NAME", help="Spec (as given) or report name the ratios divide by (default: the first).")]
SortOpt = Annotated[Optional[str], typer.Option(
    "--sort", metavar="COLUMN", help="Row order: name, params, macs, flops, bytes, memory or latency (ascending; "
    "failed specs last; default: the order given).")]
ParetoOpt = Annotated[str, typer.Option(
    "--pareto", metavar="METRICS", help="Comma-separated metrics of the Pareto front (lower is better): params, "
    "macs, flops, bytes, memory, latency. Latency is left out, with a note, when not timed.")]
PlotOpt = Annotated[Optional[str], typer.Option(
    "--plot", metavar="FILE", help="Also draw a picture to FILE.png, .svg or .pdf (needs the extra "
    "fusioncli\\[plot], i.e. matplotlib).")]
VaryOpt = Annotated[Optional[list[str]], typer.Option(
    "--vary", metavar="NAME=V1,V2,...", help="A swept variable, repeatable for a grid: size (first input's H, "
    "others scaled alike), channels (first input's C; all widths and --out scaled alike), batch, out, or a block "
    "option (separate values by ';' when they contain commas).")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N", help="Run only shard I of N (1-based): grid points k with k mod N = I-1.")]
ByOpOpt = Annotated[bool, typer.Option("--by-op", help="Add the cost breakdown by aten op (table format).")]
ByModuleOpt = Annotated[bool, typer.Option("--by-module", help="Add the cost breakdown by module (table format).")]
CrosscheckOpt = Annotated[bool, typer.Option(
    "--crosscheck", help="Also count with fvcore, torch's FlopCounterMode and torchinfo, and show why they differ.")]
BackwardOpt = Annotated[bool, typer.Option(
    "--backward", help="Time forward + backward (a training step's cost) instead of the forward alone.")]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="Time with channels_last memory format.")]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="Time torch.compile(block); the compiling first call is reported as compile_ms.")]
CompileBackendOpt = Annotated[str, typer.Option("--compile-backend", metavar="NAME",
                                                help="torch.compile backend (inductor, aot_eager, eager).")]
AutocastOpt = Annotated[bool, typer.Option(
    "--autocast", help="Reach --dtype by torch.autocast (float32 weights) instead of casting weights and inputs.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no warnings on stderr.")]
OutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="FILE", help="Write the output to FILE atomically (temporary file, then rename); "
    "nothing on stdout.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Run even when the memory guard estimates the run will not fit (or an input exceeds 2**40 "
    "elements).")]


def complete_spec(incomplete: str) -> list[str]:
    """Shell completion of a SPEC: block kinds, plugin kinds (metadata only) and bundled preset names
    (no torch, no user file executed)."""
    from ..registry import list_fusions
    from ..spec import bundled_presets
    from ..userblock import plugin_kinds

    return [n for n in (*list_fusions(), *plugin_kinds(), *bundled_presets()) if n.startswith(incomplete)]
