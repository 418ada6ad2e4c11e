"""``fusion export``: a SPEC to an ONNX file, by torch's exporter, checked by ``onnx.checker`` and run once in
ONNX Runtime against eager (the work is :func:`fusioncli.analysis.export.deploy_check`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Optional

import typer

from ..errors import FusionError, RunError, SpecError
from . import app
from .analyze import SpecArg, _setup
from .errors import fail
from .feedback import activity, warn
from .options import RunOptions, run_options
from .state import state

DynamicOpt = Annotated[Optional[str], typer.Option(
    "--dynamic", metavar="AXES", help="Axes left dynamic in the file: batch, spatial (every axis after the channels "
    "of a 3-D or larger input) or batch,spatial [default: every shape static, from --in].")]

#: the run options an export takes (what builds the block, and the export's own); the others (timing, counting,
#: training, reports) are left out, also those added later
EXPORT_OPTIONS = ("inputs", "backbone", "image", "node", "out", "sets", "batch", "pack", "dtype", "exporter", "opset",
                  "quiet", "force", "output")


@app.command("export")
@run_options(omit=tuple(f.name for f in fields(RunOptions) if f.name not in EXPORT_OPTIONS),
             defaults={"no_time": True})
def export_cmd(spec: SpecArg, *, dynamic: DynamicOpt = None, run: RunOptions) -> None:
    """Export one block (kind, preset, user block or neck) to ONNX with torch.onnx.export (-o FILE.onnx), check it
    with onnx.checker, and compare ONNX Runtime's outputs with eager. Needs the extra fusioncli[deploy]."""
    from ..deploy import ExportSettings
    from .output import atomic_output, check_output, spec_files

    try:
        if run.output is None:
            raise SpecError("--output: required: the ONNX file to write (fusion export SPEC -o block.onnx)",
                            field="--output")
        check_output(run.output, inputs=spec_files([spec], run.node or ()))
        settings = ExportSettings.parse(run.exporter.value, run.opset, dynamic)
        run.check_deploy("export")
        resolved = run.precheck(spec, run.one_node("export"))
        state.quiet = run.quiet
        with activity(f"exporting {resolved.name}"):
            analysis = _setup(run)
            from ..analysis.export import check, deploy_check

            dtype = analysis.DTYPES[run.dtype.value]
            check(settings, dtype, "cpu", "export")
            data: list[bytes] = []
            try:
                d = deploy_check(analysis.recipe(resolved), settings, device="cpu", dtype=dtype,
                                 threads=0, min_time=None, data_out=data)
            except FusionError:
                raise
            except Exception as e:  # the block's own forward on cpu, before the export
                raise RunError(f"{resolved.name}: forward failed on cpu ({run.dtype.value}): "
                               f"{(str(e).splitlines() or [type(e).__name__])[0]}") from e
        if d.stage in ("export", "checker"):
            op = f" ({d.failing_op})" if d.failing_op else ""
            raise RunError(f"{resolved.name}: ONNX {d.stage} failed{op}: {d.error}", field="export")
        with atomic_output(run.output, binary=True) as stream:
            stream.write(data[0])
    except FusionError as e:
        fail(e, "table", None)
    ops = ", ".join(f"{k}:{v}" for k, v in d.ops.items())
    typer.echo(f"{run.output}: {d.file_bytes:,} bytes, ONNX opset {d.opset} ({d.exporter} exporter"
               + (f", dynamic {','.join(settings.dynamic)}" if settings.dynamic else "") + "), onnx.checker passed")
    typer.echo(f"ops ({sum(d.ops.values())} nodes): {ops}")
    if d.stage == "ok":
        typer.echo(f"ONNX Runtime ({d.provider}) vs eager: max abs diff {d.max_abs_diff:.3g}, "
                   f"max rel. diff {d.max_rel_diff:.3g}")
    else:
        warn(f"{resolved.name}: ONNX Runtime {d.stage} failed: {d.error}")
    if d.unsupported_ops:
        warn(f"{resolved.name}: ops without an ONNX Runtime {d.provider} kernel: {', '.join(d.unsupported_ops)}")


__all__ = ["export_cmd"]
