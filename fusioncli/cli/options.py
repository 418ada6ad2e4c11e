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


InputsOpt = Annotated[Optional[list[str]], typer.Option(
    "--in", metavar="CxHxW", help="Input feature map shape, repeat once per input (e.g. --in 64x56x56 --in 128x28x28).")]
OutOpt = Annotated[Optional[int], typer.Option("--out", metavar="C", help="Output channels.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Block option, repeatable (e.g. --set r=4). See `fusion blocks --verbose`.")]
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
ByOpOpt = Annotated[bool, typer.Option("--by-op", help="Add the cost breakdown by aten op (table format).")]
ByModuleOpt = Annotated[bool, typer.Option("--by-module", help="Add the cost breakdown by module (table format).")]
CrosscheckOpt = Annotated[bool, typer.Option(
    "--crosscheck", help="Also count with fvcore, torch's FlopCounterMode and torchinfo, and show why they differ.")]
