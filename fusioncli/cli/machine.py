"""``fusion machine``: this machine's roofline (peak compute, memory bandwidth), measured once per key and cached."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .. import __version__
from ..errors import FusionError
from . import app
from .errors import fail
from .options import DeviceOpt, DType, DTypeOpt, Device, JsonOpt, OutputOpt, ThreadsOpt

RefreshOpt = Annotated[bool, typer.Option("--refresh", help="Measure again, replacing the cached figures of this key.")]


@app.command("machine")
def machine_cmd(device: DeviceOpt = Device.cpu, dtype: DTypeOpt = DType.float32, threads: ThreadsOpt = None,
                refresh: RefreshOpt = False, as_json: JsonOpt = False, output: OutputOpt = None) -> None:
    """Show this machine's roofline: peak GFLOP/s (a large matmul at --dtype and --threads) and memory GB/s
    (a STREAM triad), measured in about a second on first use and cached per host, device, torch, dtype and
    threads. Every timed report is placed under this roof (% of roof, memory or compute bound)."""
    from ..limits import check_threads
    from .output import atomic_output, check_output
    from .state import state

    fmt = "json" if as_json else "table"
    try:
        check_output(output)
        check_threads(threads)
        analysis = state.import_module("fusioncli.analysis")  # torch: here, not at start-up
        analysis.check_device(device.value, dtype.value)
        import torch

        from ..analysis import roofline

        nthreads = threads or torch.get_num_threads()
        figures = roofline.machine(device.value, dtype.value, nthreads, refresh=refresh)
    except FusionError as e:
        fail(e, fmt, output)
    figures = {**figures, "ridge_flop_per_byte": round(figures["peak_gflops"] / figures["bandwidth_gbs"], 3),
               "cache": str(roofline.cache_path())}
    with atomic_output(output) as stream:
        if as_json:
            stream.write(json.dumps({"schema_version": 1, "tool": {"name": "fusioncli", "version": __version__},
                                     "machine": figures}, indent=2) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="This machine's roofline", header_style="bold")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("peak compute (matmul, GFLOP/s)", f"{figures['peak_gflops']:,.1f}")
        table.add_row("memory bandwidth (triad, GB/s)", f"{figures['bandwidth_gbs']:,.1f}")
        table.add_row("ridge point (FLOP/byte)", f"{figures['ridge_flop_per_byte']:.2f}")
        table.add_row("measured", f"{figures['measured_at']} in {figures['measured_s']:.2f} s "
                      f"(matmul n={figures['matmul_n']})")
        console = Console(file=stream, highlight=False)
        console.print(table)
        console.print(f"key: {figures['key']}\ncache: {figures['cache']} (--refresh measures again)", markup=False)
        console.print("Below the ridge point a design is memory-bound: attainable GFLOP/s = FLOP/byte x bandwidth.",
                      markup=False)
