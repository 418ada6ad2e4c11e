"""Resource guard: refuse a run that would not fit, before any real tensor is allocated.

Two checks; ``force`` (``--force``) lifts the memory estimates and the 2**40 limit:

1. Before the meta pass (:func:`check_spec`): the limits of :mod:`fusioncli.limits` (no
   input over 2**40 elements; none over 2**63 bytes and at most 4 threads per CPU, even
   with ``force``) and, when a real run follows, the inputs against the host memory
   available now.
2. After the meta pass, before the block is built on a real device (:func:`check_memory`):

   ``need = parameters + buffers + inputs + peak activations + the largest op's working set
   + min(4 x the largest op's working set, 288 MiB) + a fixed runtime overhead``

   from the meta pass's ``report.memory``. The largest op's read and written bytes stand for the
   copies a kernel may make (oneDNN reorders a convolution's input and output into its blocked
   layout, and its weights); the allocator's slack for what it keeps of the timed calls' freed
   blocks (glibc raises its mmap threshold once a large block is freed, so later ones stay in the
   heap: 9 outputs of ``cat`` were kept, measured; blocks over 32 MiB, glibc's largest threshold,
   are always unmapped when freed, hence the cap of 9 x 32 MiB); the overhead (:data:`RUNTIME_OVERHEAD`) for the allocator's
   arenas, primitive caches and scratchpads. Both were sized by ``benchmarks/guard_rss.py``,
   which measures the peak resident memory of timed runs of every block at two shapes
   against this estimate. With ``--channels-last`` the weights and inputs are copied once
   more; with ``--backward`` the parameters' gradients,
   the inputs' gradients and every activation the forward wrote (``cost.bytes.written``,
   an upper bound on what autograd saves) are added; under ``--autocast`` the weights
   and inputs stay float32. On CPU the inputs' float32 draft counts too when the dtype is
   16-bit. ``need`` is compared with :data:`fusioncli.limits.SAFE_SHARE` (80 %) of the memory
   available now: ``MemAvailable`` for CPU, ``torch.cuda.mem_get_info`` (free) for CUDA.
   ``--crosscheck`` runs fvcore on CPU tensors: the same estimate is checked on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import FusionError, RunError
from ..report import Memory
from ..limits import (DTYPE_BYTES, SAFE_SHARE, available_ram, check_inputs_fit, check_shapes, check_threads,
                      format_bytes)


def check_spec(spec, dtype: str, *, device: str = "cpu", real_run: bool = True, threads: int | None = None,
               force: bool = False) -> None:
    """Size limits and thread count, and the inputs against available host memory when a real run follows."""
    check_threads(threads)
    check_shapes(spec, dtype, force=force)
    if real_run:
        check_inputs_fit(spec, dtype, device=device, force=force)


@contextlib.contextmanager
def meta_errors(name: str) -> Iterator[None]:
    """Building a block and its inputs on ``meta`` at extreme sizes: a :class:`RunError`, not a traceback."""
    try:
        yield
    except FusionError:
        raise
    except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as e:
        raise RunError(f"{name}: cannot build the block at these sizes: {type(e).__name__}: "
                       f"{(str(e).splitlines() or [''])[0]}") from e


def available_memory(device: str) -> int | None:
    """Bytes available now on ``device`` (``None`` where unknown)."""
    if device.startswith("cuda"):
        import torch

        try:
            free, _total = torch.cuda.mem_get_info(torch.device(device))
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    return available_ram()


RUNTIME_OVERHEAD = 16 << 20  # bytes a timed run holds beyond its tensors (benchmarks/guard_rss.py)
ALLOCATOR_SLACK = 4  # freed blocks glibc may keep, in largest-op working sets (benchmarks/guard_rss.py: cat x4 kept 9 outputs)
MAX_SLACK = 9 * (32 << 20)  # glibc maps blocks over 32 MiB (its largest mmap threshold) and unmaps them when freed


def required_bytes(memory: Memory, written: int, *, device: str, dtype: str,
                   mode: Any = None) -> dict[str, int]:
    """The estimate of a real run, by part (bytes); see the module docstring.

    ``written`` is the bytes the forward writes (what a backward keeps saved, at most).
    """
    esize = DTYPE_BYTES.get(dtype, 4)
    autocast = bool(getattr(mode, "autocast", False))
    backward = bool(getattr(mode, "backward", False))
    widen = 4 / esize if autocast else 1  # autocast keeps float32 weights and inputs
    params = int((memory.param_bytes + memory.buffer_bytes) * widen)
    inputs = int(memory.input_bytes * widen)
    parts = {"parameters": params, "inputs": inputs, "peak activations": memory.peak_activation_bytes,
             "largest op's working set": memory.largest_op_bytes,
             "allocator slack": min(ALLOCATOR_SLACK * memory.largest_op_bytes, MAX_SLACK),
             "runtime overhead": RUNTIME_OVERHEAD}
    if getattr(mode, "channels_last", False):
        parts["channels-last copies"] = params + inputs
    if device == "cpu" and esize != 4 and not autocast:
        parts["float32 input draft"] = inputs * 4 // esize
    if backward:
        parts["gradients"] = params + inputs
        parts["saved activations"] = written
    return parts


def check_memory(name: str, memory: Memory, written: int, *, device: str, dtype: str,
                 mode: Any = None, force: bool = False) -> None:
    """Refuse a real run on ``device`` whose estimate exceeds the safe share of available memory."""
    if force:
        return
    available = available_memory(device)
    if available is None:
        return
    parts = required_bytes(memory, written, device=device, dtype=dtype, mode=mode)
    need = sum(parts.values())
    if need <= SAFE_SHARE * available:
        return
    what = " + ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v)
    where = "GPU memory free" if device.startswith("cuda") else "host memory available"
    raise RunError(f"{name}: a run on {device} needs about {format_bytes(need)} ({what}), but "
                   f"{format_bytes(available)} of {where} allows {format_bytes(SAFE_SHARE * available)} "
                   f"({SAFE_SHARE:.0%}); use smaller --in/--batch, --no-time to count on the meta device only, "
                   "or --force to run anyway", field="memory")


__all__ = ["available_memory", "check_memory", "check_spec", "meta_errors", "required_bytes"]
