"""The report data model: plain frozen dataclasses that every renderer reads.

Numbers are raw (counts, bytes, milliseconds); only the table renderer humanises them.
Each class's ``to_dict()`` is its JSON form, written nowhere else; ``entry_from_dict`` reads it
back. ``Envelope.to_dict()`` gives the whole document (``schema_version`` 1); keys are only ever added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    depth: int
    output_shape: list[int]  # of the first call; [] for a container that never runs itself
    params: int
    calls: int = 1  # forward calls (a shared module: more than 1; a container that never runs: 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NodeRow:
    """One node of a neck (``fusioncli.necks``): where it sits, what it takes and gives, what it costs.

    The nodes partition the neck: their params, MACs, FLOPs and bytes add up to the report's totals.
    ``latency_ms`` is the node's median time inside the timed neck (``None`` when not timed).
    """

    id: str
    level: int
    kind: str
    merge: bool  # a fusion node (the swappable one) rather than a layer of the topology
    inputs: list[str]  # what feeds it: pyramid inputs (C3, ...) or earlier nodes
    input_shapes: list[list[int]]
    output_shape: list[int]
    params: int
    macs: int
    flops: int
    bytes: int  # read + written
    latency_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Bytes:
    """Bytes moved by the forward, unfused: every op reads its inputs and writes its outputs."""

    read: int
    written: int

    @property
    def total(self) -> int:
        return self.read + self.written

    def to_dict(self) -> dict:
        return {"read": self.read, "written": self.written, "total": self.total}


@dataclass(frozen=True)
class Cost:
    """What the counting pass found: totals, the convention they follow, and their breakdowns.

    ``by_op`` and ``by_module`` map an aten op / a module path to its counts
    (``calls``, ``macs``, ``flops``, ``bytes_read``, ``bytes_written``); ``uncounted_ops`` maps an op
    without a FLOP formula to its calls (counted as 0).
    """

    macs: int
    flops: int
    convention: str
    bytes: Bytes
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)
    by_module: dict[str, dict[str, int]] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)

    @property
    def arithmetic_intensity(self) -> float | None:
        """FLOPs per byte moved (``None`` when nothing moves)."""
        return self.flops / self.bytes.total if self.bytes.total else None

    def to_dict(self) -> dict:
        return {"macs": self.macs, "flops": self.flops, "convention": self.convention,
                "bytes": self.bytes.to_dict(), "arithmetic_intensity": self.arithmetic_intensity,
                "by_op": self.by_op, "by_module": self.by_module, "uncounted_ops": self.uncounted_ops}

    @classmethod
    def from_dict(cls, d: dict) -> Cost:
        b = d["bytes"]
        return cls(macs=d["macs"], flops=d["flops"], convention=d["convention"],
                   bytes=Bytes(b["read"], b["written"]), by_op=d.get("by_op", {}),
                   by_module=d.get("by_module", {}), uncounted_ops=d.get("uncounted_ops", {}))


@dataclass(frozen=True)
class Memory:
    """Bytes held: weights, buffers, the inputs and outputs, and the forward's peak of live activations;
    ``largest_op_bytes``: the most one op call reads and writes (what a kernel may copy into its own
    layout, e.g. oneDNN's reorders around a convolution)."""

    param_bytes: int = 0
    buffer_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    peak_activation_bytes: int = 0
    largest_op_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Memory:
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class Backward:
    """The backward pass of a training step (convention ``fusion-train-v1``): totals, the part that computes
    the weight gradients (``grad_weight``) and the rest (``grad_input``: activation gradients, down to the
    inputs when they need them). ``by_op``/``by_module`` rows: ``calls``, ``macs``, ``flops``, ``bytes_read``,
    ``bytes_written``, ``grad_weight_macs``, ``grad_weight_flops``."""

    macs: int
    flops: int
    bytes: Bytes
    grad_input_macs: int
    grad_input_flops: int
    grad_weight_macs: int
    grad_weight_flops: int
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)
    by_module: dict[str, dict[str, int]] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bytes"] = self.bytes.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Backward:
        b = d["bytes"]
        return cls(**{**_known(cls, d), "bytes": Bytes(b["read"], b["written"])})


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of one training step, exact on ``meta``: what is held throughout (parameters, buffers,
    gradients, optimizer state, inputs and output gradients), the activations saved for backward (per
    module), the live activations and gradients at the forward's and the backward's peak, the optimizer
    step's temporaries, and ``peak_bytes``, the step's peak of everything."""

    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    input_bytes: int  # the inputs and the gradient of each output
    saved_activation_bytes: int
    forward_peak_bytes: int
    backward_peak_bytes: int
    optimizer_temp_bytes: int
    peak_bytes: int
    saved_by_module: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainingMemory:
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class Training:
    """A training step's cost (``--train``, and with ``--backward`` timing): the forward as autograd records
    it, the backward, and the memory; ``step_*`` add forward and backward."""

    convention: str
    optimizer: str
    input_grad: bool  # whether the inputs needed gradients (False: a first layer, --no-input-grad)
    forward_macs: int
    forward_flops: int
    backward: Backward
    memory: TrainingMemory

    @property
    def step_macs(self) -> int:
        return self.forward_macs + self.backward.macs

    @property
    def step_flops(self) -> int:
        return self.forward_flops + self.backward.flops

    def to_dict(self) -> dict:
        return {"convention": self.convention, "optimizer": self.optimizer, "input_grad": self.input_grad,
                "forward_macs": self.forward_macs, "forward_flops": self.forward_flops,
                "step_macs": self.step_macs, "step_flops": self.step_flops,
                "backward": self.backward.to_dict(), "memory": self.memory.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Training:
        return cls(convention=d["convention"], optimizer=d["optimizer"], input_grad=d["input_grad"],
                   forward_macs=d["forward_macs"], forward_flops=d["forward_flops"],
                   backward=Backward.from_dict(d["backward"]), memory=TrainingMemory.from_dict(d["memory"]))


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float
    min_ms: float
    mean_ms: float
    cv: float  # standard deviation / mean of the per-call times
    runs: int  # timed measurements
    calls: int  # forward calls timed in all (runs x calls per run)
    threads: int
    warmup: int
    noisy: bool
    mode: str = "forward"  # or "forward+backward"
    channels_last: bool = False
    compiled: bool = False
    compile_ms: float | None = None  # the first (compiling) call, timed on its own
    cuda_peak_bytes: int | None = None  # torch.cuda.max_memory_allocated over the timed runs
    dtype_mode: str = "cast"  # low precision by casting weights and inputs, or "autocast"
    gflops_per_s: float | None = None  # forward FLOPs / median (forward mode only)
    gbytes_per_s: float | None = None  # bytes moved / median (forward mode only)
    samples_per_s: float | None = None  # batch / median
    capped: bool = False  # --max-time stopped the runs before the 7 a timing needs
    backend: str = "eager"  # what ran the forward: eager, compile (torch.compile) or onnxruntime

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Deploy:
    """The deployment check (``--deploy``): the block exported to ONNX, checked, run in ONNX Runtime.

    ``stage`` says how far it got: ``export``, ``checker``, ``session`` (ONNX Runtime could not load it),
    ``run`` or ``ok``; when not ``ok``, ``error`` is the one-line reason and ``failing_op`` the op named in it.
    ``ops`` is the ONNX op histogram (``domain::Op`` outside the default domain); ``unsupported_ops`` the
    ops without a kernel of ``provider`` at ``opset``. ``max_rel_diff`` is max|ORT - eager| / max|eager|
    over every output; ``latency_ratio`` the ORT median over the eager median of the same report.
    """

    exporter: str  # torchscript or dynamo (torch.onnx.export)
    opset: int
    stage: str
    provider: str  # the ONNX Runtime execution provider
    error: str | None = None
    failing_op: str | None = None
    ops: dict[str, int] = field(default_factory=dict)
    unsupported_ops: list[str] = field(default_factory=list)
    file_bytes: int | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    timing: Timing | None = None  # ONNX Runtime latency (None with --no-time or before a run)
    latency_ratio: float | None = None  # ORT median / eager median

    @property
    def exported(self) -> bool:
        return self.stage not in ("export", "checker")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exported"] = self.exported
        d["nodes"] = sum(self.ops.values())
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Deploy:
        d = _known(cls, d)
        t = d.get("timing")
        return cls(**{**d, "timing": Timing(**_known(Timing, t)) if t else None})


@dataclass(frozen=True)
class Roofline:
    """Where a timed design sits under this machine's roofline (:mod:`fusioncli.analysis.roofline`): peak
    GFLOP/s and GB/s as measured, FLOPs per byte, the attainable and achieved GFLOP/s, their ratio
    (``fraction``, "% of roof") and which roof binds (``memory`` or ``compute``)."""

    peak_gflops: float
    bandwidth_gbs: float
    intensity: float
    attainable_gflops: float
    achieved_gflops: float
    fraction: float | None
    bound: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    name: str
    block: str
    options: dict[str, Any]
    inputs: list[list[int]]
    outputs: list[list[int]]
    params: dict[str, int]
    cost: Cost
    memory: Memory
    timing: Timing | None
    layers: list[Layer]
    unused_params: list[str] = field(default_factory=list)
    crosscheck: dict[str, Any] | None = None  # only when requested
    source: str = ""
    description: str = ""
    sweep: dict[str, Any] | None = None  # only in sweeps: {"spec", "index", "values"} of the grid point
    output_paths: list[str] = field(default_factory=list)  # one per output: "out", "out[0]", "out['p3']"
    input_names: list[str] | None = None  # named inputs (--pack dict or kwargs)
    pack: str = "args"  # how the inputs were passed: args, list, dict or kwargs
    counted_on: str = "meta"  # where the counting pass ran: meta, or cpu for a block that cannot run on meta
    nodes: list[NodeRow] | None = None  # only for necks: one row per node, in execution order
    deploy: Deploy | None = None  # only with --deploy: ONNX export, op histogram, ONNX Runtime latency
    training: Training | None = None  # only with --train or --backward timing
    roofline: Roofline | None = None  # only when timed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cost"] = self.cost.to_dict()
        d["timing"] = self.timing.to_dict() if self.timing else None
        for key in ("training", "roofline", "deploy"):
            value = getattr(self, key)
            if value is None:
                del d[key]
            else:
                d[key] = value.to_dict()
        if self.crosscheck is None:
            del d["crosscheck"]
        if self.sweep is None:
            del d["sweep"]
        if self.nodes is None:
            del d["nodes"]
        return d

    @property
    def latency_ms(self) -> float | None:
        return self.timing.median_ms if self.timing else None


@dataclass(frozen=True)
class ErrorEntry:
    """A spec that failed inside a ``compare``: reported in its row, the others still run."""

    name: str
    error: dict[str, Any]
    sweep: dict[str, Any] | None = None  # only in sweeps: the grid point that failed

    def to_dict(self) -> dict:
        d = {"name": self.name, "error": self.error}
        if self.sweep is not None:
            d["sweep"] = self.sweep
        return d


RATIO_METRICS = ("params", "macs", "flops", "latency_ms")


def metric(report: Report, name: str) -> float | None:
    if name == "params":
        return report.params["total"]
    if name in ("macs", "flops"):
        return getattr(report.cost, name)
    if name == "latency_ms":
        return report.latency_ms
    raise KeyError(name)


def ratios(report: Report, baseline: Report) -> dict[str, float | None]:
    """Each metric of ``report`` divided by the baseline's (None where either is missing or zero)."""
    out: dict[str, float | None] = {}
    for m in RATIO_METRICS:
        a, b = metric(report, m), metric(baseline, m)
        out[m] = (a / b) if (a is not None and b) else None
    return out


@dataclass
class Envelope:
    """What one command run produced: environment, reports in spec order, and for compare the ratios."""

    tool_version: str
    environment: dict[str, Any]
    reports: list[Report | ErrorEntry]
    baseline: str | None = None
    pareto_metrics: list[str] | None = None  # compare: metrics of the Pareto front (see fusioncli.pareto)
    pareto_front: list[str] = field(default_factory=list)  # names on that front
    best: dict[str, list[str]] | None = None  # compare: metric -> names with the lowest value
    sweep: dict[str, Any] | None = None  # sweep: specs, grid, shard, fitted exponents (see fusioncli.sweep)
    notes: list[str] = field(default_factory=list)  # one-line remarks every format shows

    def ratio_table(self) -> dict[str, dict[str, float | None]]:
        base = next((r for r in self.reports if isinstance(r, Report) and r.name == self.baseline), None)
        if base is None:
            return {}
        return {r.name: ratios(r, base) for r in self.reports if isinstance(r, Report)}

    def to_dict(self) -> dict:
        table = self.ratio_table()
        reports = []
        for r in self.reports:
            d = r.to_dict()
            if self.baseline is not None and isinstance(r, Report):
                d["ratios"] = table.get(r.name)
            if self.pareto_metrics is not None and isinstance(r, Report):
                d["pareto"] = r.name in self.pareto_front
            reports.append(d)
        d = {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "fusioncli", "version": self.tool_version},
            "environment": self.environment,
            "reports": reports,
        }
        if self.baseline is not None:
            d["baseline"] = self.baseline
        if self.pareto_metrics is not None:
            d["pareto_metrics"] = list(self.pareto_metrics)
        if self.best is not None:
            d["best"] = self.best
        if self.sweep is not None:
            d["sweep"] = self.sweep
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    @property
    def failed(self) -> list[ErrorEntry]:
        return [r for r in self.reports if isinstance(r, ErrorEntry)]


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def entry_from_dict(d: dict) -> Report | ErrorEntry:
    """A report (or error row) back from its JSON form, as ``fusion merge`` reads it.

    Keys this version does not know (``ratios``, ``pareto``, later additions) are ignored.
    Raises ``KeyError`` or ``TypeError`` on something that is not a report.
    """
    if "error" in d:
        return ErrorEntry(d["name"], d["error"], d.get("sweep"))
    d = _known(Report, d)
    timing = d.get("timing")
    d["timing"] = Timing(**_known(Timing, timing)) if timing else None
    d["layers"] = [Layer(**_known(Layer, x)) for x in d.get("layers", [])]
    d["cost"] = Cost.from_dict(d["cost"])
    if d.get("nodes") is not None:
        d["nodes"] = [NodeRow(**_known(NodeRow, x)) for x in d["nodes"]]
    d["memory"] = Memory.from_dict(d["memory"])
    if d.get("deploy") is not None:
        d["deploy"] = Deploy.from_dict(d["deploy"])
    if d.get("training") is not None:
        d["training"] = Training.from_dict(d["training"])
    if d.get("roofline") is not None:
        d["roofline"] = Roofline(**_known(Roofline, d["roofline"]))
    return Report(**d)
