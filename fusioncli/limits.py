"""Size limits and memory headroom that can be checked before any tensor exists.

Torch-free, so the command line refuses an absurd shape in well under a second,
before it pays for importing torch. The guard that uses the meta-device pass
(parameters and peak activations, GPU memory) is :mod:`fusioncli.analysis.guard`.

Limits:

- every input tensor (batch x its shape) has at most :data:`MAX_ELEMENTS` (2**40, about
  1.1e12) elements, more than any machine holds; ``--force`` lifts this, for counting on
  the meta device (``--no-time``);
- an input of 2**63 bytes or more does not fit torch's 64-bit sizes: refused even with ``--force``;
- ``--threads`` is at most 4 per CPU;
- a real run (timing) may use at most :data:`SAFE_SHARE` of the memory available now
  (``MemAvailable`` of ``/proc/meminfo``); here only the inputs are checked, the full
  estimate follows the meta pass.
"""

from __future__ import annotations

import math
import os

from .errors import RunError, SpecError

#: the dtypes fusion runs in (--dtype), named once here, with their sizes
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: the optimizers of --optimizer, named once here, with the state torch keeps per parameter tensor:
#: (parameter-sized tensors, bytes besides). SGD: none; momentum: momentum_buffer; Adam/AdamW: exp_avg and
#: exp_avg_sq, and a float32 step
OPTIMIZER_STATES = {"sgd": (0, 0), "momentum": (1, 0), "adam": (2, 4), "adamw": (2, 4)}
MAX_ELEMENTS = 2**40
MAX_BYTES = 2**63 - 1  # torch sizes tensors with signed 64-bit integers
MAX_THREADS_PER_CPU = 4
SAFE_SHARE = 0.8  # of the memory available now: headroom for the allocator, the OS and everything else


def format_bytes(n: float) -> str:
    """``8589934592`` -> ``'8.0 GiB'`` (binary units, for messages)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_ram() -> int | None:
    """Bytes of host memory available now without swapping; ``None`` where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: free pages (lower than what could be reclaimed)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def input_elements(spec) -> list[int]:
    """Elements of each input tensor of a :class:`fusioncli.spec.Spec` (batch included)."""
    out = []
    for shape in spec.inputs:
        n = spec.batch
        for d in shape:
            n *= d
        out.append(n)
    return out


def _inputs_field(spec) -> str:
    return getattr(spec, "inputs_field", None) or "--in"


def check_shapes(spec, dtype: str, *, force: bool = False) -> None:
    """Refuse inputs too large for any machine (unless ``force``) or for torch's sizes (always)."""
    esize = DTYPE_BYTES.get(dtype, 4)
    field = _inputs_field(spec)
    for i, (shape, n) in enumerate(zip(spec.inputs, input_elements(spec)), 1):
        text = f"batch x shape = {'x'.join(map(str, (spec.batch, *shape)))}"
        if spec.batch > 1 and math.prod(shape) * esize <= MAX_BYTES < n * esize or \
                spec.batch > 1 and math.prod(shape) <= MAX_ELEMENTS < n and not force:
            field = "--batch" if field == "--in" or getattr(spec, "path", None) is None else f"{spec.path}: batch"
        if n * esize > MAX_BYTES:
            raise SpecError(f"{field}: input {i} ({text}) is {n:.3g} elements, {format_bytes(n * esize)} as {dtype}, "
                            "beyond torch's 64-bit tensor sizes; allowed: under 2**63 bytes per input", field=field)
        if n > MAX_ELEMENTS and not force:
            raise SpecError(f"{field}: input {i} ({text}) is {n:.3g} elements, {format_bytes(n * esize)} as {dtype}; "
                            f"allowed: at most 2**40 ({MAX_ELEMENTS:.3g}) elements per input (more than any "
                            "machine holds); --force counts it anyway on the meta device (with --no-time)",
                            field=field)


MAX_MIN_TIME = 600.0  # seconds of timed runs per block: ten minutes


def check_min_time(min_time: float) -> None:
    """A finite time budget: ``--min-time 1e9`` would run for ever, ``nan`` compares false to everything."""
    if not (isinstance(min_time, (int, float)) and math.isfinite(min_time) and 0 <= min_time <= MAX_MIN_TIME):
        raise SpecError.bad("--min-time", min_time, f"allowed: 0 to {MAX_MIN_TIME:g} seconds")


def check_max_time(max_time: float | None, min_time: float = 0.0) -> None:
    """A cap on a block's timed runs: finite, positive, at most the largest budget, and not below ``--min-time``."""
    if max_time is None:
        return
    if not (isinstance(max_time, (int, float)) and math.isfinite(max_time) and 0 < max_time <= MAX_MIN_TIME):
        raise SpecError.bad("--max-time", max_time, f"allowed: above 0, at most {MAX_MIN_TIME:g} seconds")
    if max_time < min_time:
        raise SpecError.bad("--max-time", max_time, f"allowed: at least --min-time ({min_time:g} s)")


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def oversubscription(threads: int) -> str | None:
    """A warning when timing with ``threads`` would compete with the machine's other work: the 1-minute
    load average (less this process) plus ``threads`` exceeds the CPUs available. Busy machines give
    latencies many times too long with a small CV (the runs are slow alike), so the CV cannot tell."""
    load = load_average()
    if load is None:
        return None
    cpus = cpus_available()
    others = max(0.0, load - 1.0)
    if threads + others <= cpus:
        return None
    from .render.formats import counted

    fits = max(1, int(cpus - others))
    remedy = f"use --threads {fits} or fewer, or close other programs" if fits < threads else "close other programs"
    return (f"the machine is busy (load {load:.1f} on {cpus} CPUs) and timing uses {counted(threads, 'thread')}: "
            f"latencies will be too long; {remedy}")


def check_threads(threads: int | None) -> None:
    """More threads than 4 per CPU measures nothing but the scheduler, and 10**5 of them can take the machine down."""
    cpus = os.cpu_count() or 1
    if threads is not None and threads > MAX_THREADS_PER_CPU * cpus:
        raise SpecError.bad("--threads", threads, f"allowed: 1 to {MAX_THREADS_PER_CPU * cpus} "
                            f"({MAX_THREADS_PER_CPU} per CPU; this machine has {cpus})")


def check_inputs_fit(spec, dtype: str, *, device: str = "cpu", force: bool = False) -> None:
    """Before a real run: refuse when the inputs alone exceed the safe share of available RAM.

    The inputs are drawn in float32 on the host, then cast (and moved): on CPU at a 16-bit
    dtype both copies exist at once, on CUDA the float32 copy is what the host holds.
    """
    if force:
        return
    available = available_ram()
    if available is None:
        return
    n = sum(input_elements(spec))
    esize = DTYPE_BYTES.get(dtype, 4)
    need = n * 4 + (n * esize if device == "cpu" and esize != 4 else 0)
    if need > SAFE_SHARE * available:
        raise RunError(f"{spec.name}: the inputs alone need {format_bytes(need)} of host memory, but "
                       f"{format_bytes(available)} is available ({SAFE_SHARE:.0%} of it may be used); "
                       "use smaller --in/--batch, --no-time to count on the meta device only, or --force to run "
                       "anyway", field="memory")


__all__ = ["DTYPE_BYTES", "MAX_ELEMENTS", "SAFE_SHARE", "available_ram", "check_inputs_fit", "check_shapes",
           "check_threads", "format_bytes", "input_elements"]
