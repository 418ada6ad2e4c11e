"""Every command option, declared once (Annotated aliases, as in fastapi-cli), and the run
options that ``inspect``, ``compare`` and ``sweep`` share, gathered into one :class:`RunOptions`
by :func:`run_options`."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from enum import Enum
from typing import Annotated, Any, Optional, get_type_hints

import typer

from ..deploy import BACKENDS, DEFAULT_OPSET, EXPORTERS
from ..limits import DTYPE_BYTES, OPTIMIZER_STATES
from ..pareto import METRICS, SORT_KEYS
from ..render.formats import FORMATS, STREAM_FORMATS


#: one vocabulary per choice: formats from the renderers, dtypes from the size limits' table
Format = Enum("Format", {f: f for f in FORMATS}, type=str)
SweepFormat = Enum("SweepFormat", {f: f for f in (*FORMATS, *STREAM_FORMATS)}, type=str)
DType = Enum("DType", {d: d for d in DTYPE_BYTES}, type=str)
Backend = Enum("Backend", {b: b for b in BACKENDS}, type=str)
Exporter = Enum("Exporter", {e: e for e in EXPORTERS}, type=str)
Optimizer = Enum("Optimizer", {o: o for o in OPTIMIZER_STATES}, type=str)


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Pack(str, Enum):
    args = "args"
    list = "list"
    dict = "dict"
    kwargs = "kwargs"


InputsOpt = Annotated[Optional[list[str]], typer.Option(
    "--in", metavar="[NAME=]SHAPE", help="One input's shape without the batch, repeat once per input: CxHxW maps "
    "(--in 64x56x56 --in 128x28x28) or, for token blocks, NxC tokens (196x768); user blocks also take C "
    "and CxDxHxW volumes; "
    "named for --pack dict/kwargs (--in query=100x64).")]
PackOpt = Annotated[Optional[Pack], typer.Option(
    "--pack", help="How inputs are passed to forward: separate tensors (args, default), one list, one dict of "
    "named inputs, or keyword arguments (kwargs).")]
NodeOpt = Annotated[Optional[list[str]], typer.Option(
    "--node", metavar="KIND", help="A neck's fusion node (neck:fpn, ...): a block kind or FILE.py:NAME; its options "
    "as --set node.NAME=VALUE. compare takes several (one row per SPEC and node).")]
BackboneOpt = Annotated[Optional[str], typer.Option(
    "--backbone", metavar="NAME", help="Inputs from a backbone's feature pyramid at --image, instead of --in "
    "(resnet50, convnext_tiny, efficientnet_b0, mit_b0, vit_b, yolov8s, ...: `fusion explain backbones`).")]
ImageOpt = Annotated[Optional[str], typer.Option(
    "--image", metavar="HxW", help="Image size for --backbone (or a preset's backbone), e.g. 800x1333 or 512.")]
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
MaxTimeOpt = Annotated[Optional[float], typer.Option(
    "--max-time", metavar="SECONDS", help="Cap on a block's timed runs: a block too slow for 7 runs stops after "
    "at least 2, marked capped [default: no cap].")]
DepthOpt = Annotated[int, typer.Option("--depth", metavar="N", min=1,
                                       help="Depth of the per-layer table (in a sweep, of each report's layer list).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Short for --format json.")]
# choosing a design (compare, sweep, merge): see fusioncli.pareto and fusioncli.sweep
BaselineOpt = Annotated[Optional[str], typer.Option(
    "--baseline", metavar="NAME", help="Spec (as given) or report name the ratios divide by (default: the first).")]
SortOpt = Annotated[Optional[str], typer.Option(
    "--sort", metavar="COLUMN", help=f"Row order: {', '.join(SORT_KEYS)} (ascending; failed specs last; default: the "
    "order given).")]
ParetoOpt = Annotated[str, typer.Option(
    "--pareto", metavar="METRICS", help=f"Comma-separated metrics of the Pareto front (lower is better): "
    f"{', '.join(METRICS)}. Latency is left out, with a note, when not timed.")]
PlotOpt = Annotated[Optional[str], typer.Option(
    "--plot", metavar="FILE", help="Also draw a picture to FILE.png, .svg or .pdf (needs the extra "
    "fusioncli\\[plot], i.e. matplotlib).")]
VaryOpt = Annotated[Optional[list[str]], typer.Option(
    "--vary", metavar="NAME=V1,V2,...", help="A swept variable, repeatable for a grid: size (first input's H, "
    "others scaled alike), channels (first input's C; all widths and --out scaled alike), batch, out, image (a "
    "backbone's pyramid at S or HxW), or a block option, node.NAME for a neck's node (separate values by ';' when "
    "they contain commas).")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N", help="Run only shard I of N (1-based): grid points k with k mod N = I-1.")]
ByOpOpt = Annotated[bool, typer.Option("--by-op", help="Add the cost breakdown by aten op (table format).")]
ByModuleOpt = Annotated[bool, typer.Option("--by-module", help="Add the cost breakdown by module (table format).")]
CrosscheckOpt = Annotated[bool, typer.Option(
    "--crosscheck", help="Also count with fvcore, torch's FlopCounterMode and torchinfo, and show why they differ.")]
BackwardOpt = Annotated[bool, typer.Option(
    "--backward", help="Time forward + backward (a training step's cost) instead of the forward alone.")]
TrainOpt = Annotated[bool, typer.Option(
    "--train", help="Also count a training step on meta: backward MACs/FLOPs (w.r.t. inputs and weights apart, "
    "per op and module) and its memory (gradients, optimizer state, saved activations, peak). --backward "
    "timing implies it.")]
OptimizerOpt = Annotated[Optimizer, typer.Option(
    "--optimizer", help="Optimizer whose state the training memory holds (momentum: SGD with momentum).")]
NoInputGradOpt = Annotated[bool, typer.Option(
    "--no-input-grad", help="The inputs need no gradient (a first layer): --train and --backward skip it.")]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="Time with channels_last memory format.")]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="Short for --backend compile: time torch.compile(block); the compiling first call is reported "
    "as compile_ms.")]
BackendOpt = Annotated[Backend, typer.Option(
    "--backend", help="What runs the timed forward: eager, compile (torch.compile) or onnxruntime (the block "
    "exported to ONNX, run by ONNX Runtime; needs the extra fusioncli\\[deploy]).")]
DeployOpt = Annotated[bool, typer.Option(
    "--deploy", help="Also export to ONNX and report: exported or why not, the ONNX op histogram, ops ONNX Runtime "
    "lacks, its outputs against eager, its latency and ratio to eager (needs fusioncli\\[deploy]).")]
ExporterOpt = Annotated[Exporter, typer.Option(
    "--exporter", help="torch.onnx.export's exporter: torchscript (torch 2.4-2.13) or dynamo (torch 2.5+, needs "
    "onnxscript).")]
OpsetOpt = Annotated[int, typer.Option("--opset", metavar="N", help="ONNX opset of the export.")]
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



@dataclass(frozen=True)
class RunOptions:
    """The options of a run that ``inspect``, ``compare`` and ``sweep`` share, declared once: what
    overrides each spec's shapes and options, how it is measured, and where the output goes.
    The annotations are the command-line declarations; :func:`run_options` adds them to a command."""

    inputs: InputsOpt = None
    backbone: BackboneOpt = None
    image: ImageOpt = None
    node: NodeOpt = None
    out: OutOpt = None
    sets: SetOpt = None
    batch: BatchOpt = None
    pack: PackOpt = None
    device: DeviceOpt = Device.cpu
    dtype: DTypeOpt = DType.float32
    threads: ThreadsOpt = None
    no_time: NoTimeOpt = False
    min_time: MinTimeOpt = 0.4
    max_time: MaxTimeOpt = None
    depth: DepthOpt = 3
    crosscheck: CrosscheckOpt = False
    backward: BackwardOpt = False
    train: TrainOpt = False
    optimizer: OptimizerOpt = Optimizer.adam
    no_input_grad: NoInputGradOpt = False
    channels_last: ChannelsLastOpt = False
    compile: CompileOpt = False
    compile_backend: CompileBackendOpt = "inductor"
    autocast: AutocastOpt = False
    backend: BackendOpt = Backend.eager
    deploy: DeployOpt = False
    exporter: ExporterOpt = Exporter.torchscript
    opset: OpsetOpt = DEFAULT_OPSET
    quiet: QuietOpt = False
    force: ForceOpt = False
    output: OutputOpt = None

    def one_node(self, command: str) -> str | None:
        """The ``--node`` of a command that takes at most one."""
        if self.node and len(self.node) > 1:
            from ..errors import SpecError

            hint = "use --vary node=" + ",".join(self.node) if command == "sweep" else "compare takes several"
            raise SpecError(f"--node: {command} takes one node, got {len(self.node)} ({', '.join(self.node)}); "
                            f"{hint}", field="--node")
        return self.node[0] if self.node else None

    def resolve(self, spec_text: str, node: str | None = None):
        """The spec with the overriding flags (``node``: the one ``--node`` of this spec), resolved once,
        without importing torch or user code."""
        from ..spec import parse_set, resolve_spec

        return resolve_spec(spec_text, inputs=self.inputs, out=self.out, options=parse_set(self.sets),
                            batch=self.batch, pack=self.pack.value if self.pack is not None else None,
                            check_options=False, node=node, backbone=self.backbone, image=self.image)

    def precheck(self, spec_text: str, node: str | None = None):
        """Resolve the spec and check size limits and inputs against free RAM, before torch is imported:
        an absurd shape fails in well under a second (the full memory guard follows the meta pass, in
        :func:`fusioncli.analysis.analyze`). Returns the resolved spec."""
        from ..limits import check_inputs_fit, check_max_time, check_min_time, check_shapes

        check_min_time(self.min_time)
        check_max_time(self.max_time, self.min_time)
        spec = self.resolve(spec_text, node)
        check_shapes(spec, self.dtype.value, force=self.force)
        if not self.no_time or self.crosscheck:
            check_inputs_fit(spec, self.dtype.value, device=self.device.value, force=self.force)
        return spec

    @property
    def timing_backend(self) -> str:
        """``--backend``, with ``--compile`` as its short form (one source of truth: ``TimingMode.backend``)."""
        if self.compile and self.backend.value == "onnxruntime":
            from ..errors import SpecError

            raise SpecError("--compile: short for --backend compile, so not with --backend onnxruntime; use one of "
                            "them", field="--compile")
        return "compile" if self.compile else self.backend.value

    def check_deploy(self, field: str | None = None):
        """Before torch is imported: the export settings, and the deploy extra when the run needs it.
        Returns the :class:`fusioncli.deploy.ExportSettings`."""
        from ..deploy import ExportSettings, require_extra

        settings = ExportSettings.parse(self.exporter.value, self.opset)
        field = field or ("--deploy" if self.deploy else "--backend" if self.timing_backend == "onnxruntime" and
                          not self.no_time else None)
        if field:
            require_extra(field, exporter=settings.exporter)
        return settings

    def analyze_keywords(self) -> dict[str, Any]:
        """The :func:`fusioncli.analysis.analyze` keywords of this run."""
        from ..analysis.timing import TimingMode

        mode = TimingMode(backward=self.backward, channels_last=self.channels_last, backend=self.timing_backend,
                          compile_backend=self.compile_backend, autocast=self.autocast,
                          input_grad=not self.no_input_grad)
        return dict(device=self.device.value, dtype=self.dtype.value, threads=self.threads, time=not self.no_time,
                    depth=self.depth, min_time=self.min_time, max_time=self.max_time, crosscheck=self.crosscheck,
                    timing_mode=mode, force=self.force, train=self.train, optimizer=self.optimizer.value,
                    input_grad=not self.no_input_grad, deploy=self.deploy, export=self.check_deploy())


def run_options(*, omit: tuple[str, ...] = (), defaults: dict[str, Any] | None = None):
    """Declare a command with the :class:`RunOptions` options added to its own, and call it with
    them gathered as ``run``. ``omit`` leaves options out (they keep their defaults), ``defaults``
    changes an option's default for this command. The command's own parameters
    come first (its arguments), then the run options, then its keyword-only parameters (the
    output format), which is also the order of ``--help``."""
    defaults = defaults or {}
    hints = get_type_hints(RunOptions, include_extras=True)
    shared = []
    for f in fields(RunOptions):
        if f.name in omit:
            continue
        shared.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                                        default=defaults.get(f.name, f.default)))
    names = {p.name for p in shared}

    def decorate(command):
        own = inspect.signature(command, eval_str=True).parameters.values()
        first = [p for p in own if p.kind != p.KEYWORD_ONLY]
        last = [p.replace(kind=p.KEYWORD_ONLY) for p in own if p.kind == p.KEYWORD_ONLY and p.name != "run"]
        params = [*(p.replace(kind=p.POSITIONAL_OR_KEYWORD) for p in first), *shared, *last]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            run = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in names},
                             **{k: defaults[k] for k in defaults if k not in names})
            return command(*args, run=run, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the signature above, not the command's
        return wrapper

    return decorate


def complete_spec(incomplete: str) -> list[str]:
    """Shell completion of a SPEC: block and neck kinds, plugin kinds (metadata only) and bundled preset names
    (no torch, no user file executed)."""
    from ..registry import list_fusions, list_necks
    from ..spec import bundled_presets
    from ..userblock import plugin_kinds

    return [n for n in (*list_fusions(), *list_necks(), *plugin_kinds(), *bundled_presets())
            if n.startswith(incomplete)]
