"""Deployment settings, checked before torch is imported: the optional extra, the exporter, the opset
and the dynamic axes of ``fusion export``, ``--deploy`` and ``--backend onnxruntime``.

The exporter is torch's own ``torch.onnx.export``: ``torchscript`` (the default: in torch 2.4.1-2.13,
the whole supported range, and 5-10x faster to export than ``dynamo`` on the zoo here, with the same
coverage and the same outputs, see docs/benchmarks.md) or ``dynamo`` (``torch.export`` + onnxscript,
torch 2.5 and later; torch's default since 2.9, smaller graphs). The work is in
:mod:`fusioncli.analysis.export`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RunError, SpecError

BACKENDS = ("eager", "compile", "onnxruntime")  # what runs the timed forward (--backend; --compile = compile)
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 18
OPSETS = range(9, 24)  # what ONNX Runtime 1.2x and the two exporters accept between them
DYNAMIC_AXES = ("batch", "spatial")  # spatial: every axis after the channel axis of a 3-D or larger input
EXTRA = "pip install 'fusioncli[deploy]'"

#: built-in kinds that do not export with the default exporter, with the exact reason (the README lists them;
#: tests/test_deploy.py checks every other kind exports and matches eager within 1e-4)
KNOWN_FAILURES: dict[str, str] = {}


@dataclass(frozen=True)
class ExportSettings:
    """How a block becomes an ONNX file: the exporter, the opset and the axes left dynamic."""

    exporter: str = "torchscript"
    opset: int = DEFAULT_OPSET
    dynamic: tuple[str, ...] = ()

    @classmethod
    def parse(cls, exporter: str = "torchscript", opset: int = DEFAULT_OPSET, dynamic: str | None = None
              ) -> ExportSettings:
        if exporter not in EXPORTERS:
            raise SpecError.bad("--exporter", exporter, "allowed: " + ", ".join(EXPORTERS), choices=EXPORTERS)
        if opset not in OPSETS:
            raise SpecError.bad("--opset", opset, f"allowed: {OPSETS.start} to {OPSETS.stop - 1}")
        axes = tuple(a.strip() for a in (dynamic or "").split(",") if a.strip())
        for a in axes:
            if a not in DYNAMIC_AXES:
                raise SpecError.bad("--dynamic", a, "allowed: batch, spatial or batch,spatial", choices=DYNAMIC_AXES)
        return cls(exporter, opset, tuple(dict.fromkeys(axes)))


def require_extra(field: str, *, exporter: str = "torchscript") -> None:
    """Before any work: onnx and onnxruntime (and onnxscript for the dynamo exporter) import, else one line
    naming the extra (exit 1), as ``--plot`` does without matplotlib."""
    missing = []
    for name in ("onnx", "onnxruntime", *(("onnxscript",) if exporter == "dynamo" else ())):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise RunError(f"{field}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; install "
                       f"the extra with {EXTRA}", field=field)


__all__ = ["BACKENDS", "DEFAULT_OPSET", "EXPORTERS", "ExportSettings", "KNOWN_FAILURES", "require_extra"]
