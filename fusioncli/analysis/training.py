"""Training cost on the ``meta`` device: the backward pass counted op by op, gradients with respect to
the inputs and to the weights apart, and the memory of a training step.

Convention ``fusion-train-v1``: the forward is counted as in ``fusion-v1``; the backward ops follow
this table (per element of the gradient an op produces, unless stated; each count follows the ATen
CPU kernel's expression, one per arithmetic op, compare-select or transcendental, as ``fusion-v1``
counts activations):

=============================================  ==============================================
backward op                                    MACs / FLOPs
=============================================  ==============================================
convolution_backward                           MACs: grad_input (a transposed conv) and
                                               grad_weight (input with grad_output) each =
                                               the forward's: batch x weight elements x
                                               output positions (torch's formula counts a
                                               grouped conv's grad_weight groups times);
                                               FLOPs 2 per MAC, +1 per grad_output element
                                               for grad_bias
mm, bmm (linear, attention)                    2 per MAC (torch's formulas)
scaled dot-product attention (CPU flash)       5 matmuls (scores recomputed); +5 per score,
                                               +2 per grad_output element
threshold (relu), hardtanh                     1
leaky_relu, dropout                            2
sigmoid, tanh, hardsigmoid, elu                3
softmax, log_softmax, prelu                    4
hardswish                                      5
silu, softplus                                 6
mish                                           9
gelu                                           11 (erf), 18 (tanh approximation)
batch norm, inference statistics               grad_input 1, grad_weight 3, grad_bias 1
batch norm, batch statistics                   4 (two sums) + grad_input 5
layer / group norm                             grad_input 8, grad_weight 4, grad_bias 1
nearest resize, max pooling (2-D and 3-D)      1 per grad_output element (scatter-add)
linear / bilinear / bicubic resize             4 / 8 / 32 per grad_output element
trilinear resize (volumes)                     16 per grad_output element
avg pooling (2-D and 3-D)                      kernel area (volume) per grad_output element
adaptive avg pooling (2-D and 3-D)             1 per grad_output + 1 per grad_input element
adaptive max pooling (2-D and 3-D)             1 per grad_output element
grid sampling                                  per grad_output element: grad_input 8 / 1 / 32
                                               (bilinear / nearest / bicubic), grad_grid 24 /
                                               0 / 128; per grid point the forward's again,
                                               + 6 / 0 / 52 for grad_grid
fold (col2im) / unfold (im2col) backward       as unfold / fold forward (each is the other)
index_put with accumulate                      1 per value
select/slice backward, padding backward        0 (data movement: bytes only)
=============================================  ==============================================

Element-wise ops the backward runs as such (mul, add, sum, ...) count as in ``fusion-v1``.

**Inputs and weights apart.** The backward is run three ways on one recorded forward: with respect
to the inputs alone (C), to the inputs and the weights (A) and, without input gradients
(``--no-input-grad``: a first layer), to the weights alone (A'). ``grad_weight`` = A - C, the work
the weight gradients add (torch computes only the gradients asked for: a conv's backward drops
its grad_weight half, a linear its weight matmul); ``grad_input`` = the step's pass (A, or A') less
``grad_weight``: the activation gradients, down to the inputs when they need them. Both are kept
per op and per module (the module tracker follows the backward too).

**Memory of a training step** (exact on ``meta``; the block in ``eval()``, as ``--backward`` times
it): parameters, buffers, one gradient per trainable parameter, the optimizer's state as torch's
optimizers allocate it (``momentum``: one buffer per parameter; ``adam``/``adamw``: ``exp_avg`` and
``exp_avg_sq`` plus a float32 ``step`` per parameter tensor; ``sgd``: none), the inputs and the
gradient of each output, the activations saved for backward (saved-tensor hooks, each storage
once, parameters excluded, per module), and the live activations and gradients at the forward's
and at the backward's peak (storages followed until freed); the optimizer step adds its temporaries
(Adam on CPU, one tensor at a time: 2 x the largest parameter; with foreach on CUDA, one copy of
all). ``peak_bytes`` = what is held throughout + the largest of the three peaks.
"""

from __future__ import annotations

import torch
from torch.autograd.graph import saved_tensors_hooks

from .. import limits
from ..report import Backward, Bytes, Training, TrainingMemory
from .cost import CostCounter, Tally
from .timing import _leaves, _map_tensors

CONVENTION = (
    "fusion-train-v1: forward as fusion-v1; backward: grad_input and grad_weight of each conv, linear and "
    "matmul = its forward MACs each (2 FLOPs per MAC), element-wise backward ops as stated per element "
    "(fusion explain costs)"
)


def _snapshot(counter: CostCounter) -> tuple[Tally, dict[str, Tally], dict[str, Tally], dict[str, int]]:
    return (counter.total.copy(), {k: v.copy() for k, v in counter.by_op.items()},
            {k: v.copy() for k, v in counter.by_module.items()}, dict(counter.uncounted))


def _minus(a: dict[str, Tally], b: dict[str, Tally]) -> dict[str, Tally]:
    out = {}
    for k, v in a.items():
        w = b.get(k, Tally())
        out[k] = Tally(v.calls - w.calls, v.macs - w.macs, v.flops - w.flops, v.bytes_read - w.bytes_read,
                       v.bytes_written - w.bytes_written)
    return out


class _Pass:
    """The counts of one backward pass: the counter's tallies after it less those before."""

    def __init__(self, before, after) -> None:
        self.total = _minus({"": after[0]}, {"": before[0]})[""]
        # as in the forward's breakdowns, ops that neither compute nor move bytes (views) are left out
        moved = lambda v: v.macs or v.flops or v.bytes_read or v.bytes_written  # noqa: E731
        self.by_op = {k: v for k, v in _minus(after[1], before[1]).items() if moved(v)}
        self.by_module = {k: v for k, v in _minus(after[2], before[2]).items() if moved(v)}
        self.uncounted = {k: n - before[3].get(k, 0) for k, n in after[3].items() if n - before[3].get(k, 0)}


_EMPTY = (Tally(), {}, {}, {})


def optimizer_temp_bytes(params: list[torch.Tensor], optimizer: str, device_type: str) -> int:
    """The temporaries of one optimizer step: Adam's ``denom`` (a square root, then a division) per
    parameter, one at a time on CPU (2 x the largest) or for all at once with foreach on CUDA (1 x all);
    SGD with or without momentum works in place."""
    if optimizer not in ("adam", "adamw") or not params:
        return 0
    sizes = [p.numel() * p.element_size() for p in params]
    return sum(sizes) if device_type == "cuda" else 2 * max(sizes)


def count_training(model: torch.nn.Module, args: tuple, kwargs: dict, *, input_grad: bool = True,
                   optimizer: str = "adam", device_type: str = "cpu") -> Training:
    """Count one training step of ``model`` (built on ``meta``, in ``eval()``) on ``args``/``kwargs``: the
    forward with autograd recording, then the backward passes of the module docstring, per op and module;
    then once more without the module tracker, for the memory."""
    params = [p for p in model.parameters() if p.requires_grad]
    counts, saved = _count_passes(model, args, kwargs, params, input_grad)
    forward, step, weights = counts
    peaks = _memory_pass(model, args, kwargs, params, input_grad)
    grad_bytes = sum(p.numel() * p.element_size() for p in params)
    copies, extra = limits.OPTIMIZER_STATES[optimizer]
    state_bytes = copies * grad_bytes + extra * len(params)
    temps = optimizer_temp_bytes(params, optimizer, device_type)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    memory = TrainingMemory(
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        grad_bytes=grad_bytes,
        optimizer_state_bytes=state_bytes,
        input_bytes=peaks["inputs"],
        saved_activation_bytes=sum(saved.values()),
        forward_peak_bytes=peaks["forward"],
        backward_peak_bytes=peaks["backward"],
        optimizer_temp_bytes=temps,
        peak_bytes=param_bytes + buffer_bytes + state_bytes + peaks["inputs"]
        + max(peaks["forward"], peaks["backward"], peaks["after"] + temps),
        saved_by_module=saved,
    )
    clean = peaks["step"]  # the step's totals and ops, as a real run executes them; modules from the tracked pass
    clean.by_module = step.by_module
    return Training(convention=CONVENTION, optimizer=optimizer, input_grad=input_grad,
                    forward_macs=forward.macs, forward_flops=forward.flops,
                    backward=_backward(clean, weights), memory=memory)


def _with_grad(args: tuple, kwargs: dict) -> tuple[tuple, dict, list[torch.Tensor]]:
    grad = lambda x: x.detach().requires_grad_(x.is_floating_point())  # noqa: E731
    xs, kws = _map_tensors(tuple(args), grad), _map_tensors(kwargs, grad)
    return xs, kws, [t for t in _leaves((xs, kws)) if t.requires_grad]


def _count_passes(model, args, kwargs, params, input_grad):
    """((forward total, the step's backward, the weight gradients' part), saved bytes per module)."""
    xs, kws, inputs = _with_grad(args, kwargs)
    held = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    counter = CostCounter(root_name=type(model).__name__)
    saved: dict[int, tuple[int, str]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in held and storage._cdata not in saved:
            saved[storage._cdata] = (storage.nbytes(), counter.current_module())
        return t

    def backward(wrt: list[torch.Tensor], retain: bool = True) -> _Pass:
        before = _snapshot(counter)
        torch.autograd.backward(outs, grads_out, inputs=wrt, retain_graph=retain)
        for t in wrt:
            t.grad = None
        return _Pass(before, _snapshot(counter))

    with counter:
        with saved_tensors_hooks(pack, lambda t: t):
            out = model(*xs, **kws)
        forward = counter.total.copy()
        outs = [t for t in _leaves(out) if t.requires_grad]
        del out
        with counter.paused():
            grads_out = [torch.ones_like(t) for t in outs]
        final = [*inputs, *params] if input_grad else params
        if not outs or not final:  # nothing to differentiate
            step = weights = _Pass(_EMPTY, _EMPTY)
        elif params and inputs:
            only_inputs = backward(inputs)
            both = backward([*inputs, *params], retain=not input_grad)
            step = both if input_grad else backward(params, retain=False)
            weights = _Pass(_as_tallies(only_inputs), _as_tallies(both))  # what the weight gradients add
        else:  # no parameters: all input gradient; no inputs: all weight gradient
            step = backward(final, retain=False)
            weights = step if not inputs else _Pass(_EMPTY, _EMPTY)
    by_module: dict[str, int] = {}
    for n, module in saved.values():
        by_module[module] = by_module.get(module, 0) + n
    return (forward, step, weights), by_module


def _memory_pass(model, args, kwargs, params, input_grad) -> dict[str, int]:
    """Live bytes of activations and gradients at the forward's and the backward's peak and after the
    backward (the gradients), the inputs with the output gradients, and the step's backward counts: one
    forward and the step's backward, with storages followed until freed and no module tracker (whose
    hooks make autograd copy gradients a real run keeps)."""
    xs, kws, inputs = _with_grad(args, kwargs)
    counter = CostCounter(track_modules=False)
    with counter:
        out = model(*xs, **kws)
        forward_peak = counter.peak
        outs = [t for t in _leaves(out) if t.requires_grad]
        del out
        with counter.paused():
            grads_out = [torch.ones_like(t) for t in outs]
        in_bytes = sum(t.numel() * t.element_size() for t in (*_leaves((xs, kws)), *grads_out))
        final = [*inputs, *params] if input_grad else params
        counter.peak = counter.live
        before = _snapshot(counter)
        if outs and final:
            with counter.backward_memory():
                torch.autograd.backward(outs, grads_out, inputs=final)
        backward_peak = counter.peak if outs and final else 0
        step = _Pass(before, _snapshot(counter))
        del outs, grads_out
        after = counter.live
        for t in (*params, *inputs):
            t.grad = None
    return {"forward": forward_peak, "backward": backward_peak, "after": after, "inputs": in_bytes, "step": step}


def _as_tallies(p: _Pass):
    return p.total, p.by_op, p.by_module, {}


def _backward(step: _Pass, weights: _Pass) -> Backward:
    """The step's backward, with the weight gradients' share of each total, op and module."""
    def rows(total: dict[str, Tally], part: dict[str, Tally]) -> dict[str, dict[str, int]]:
        return {k: {**v.to_dict(), "grad_weight_macs": part.get(k, Tally()).macs,
                    "grad_weight_flops": part.get(k, Tally()).flops}
                for k, v in sorted(total.items(), key=lambda kv: -kv[1].flops)}

    t, w = step.total, weights.total
    return Backward(
        macs=t.macs, flops=t.flops, bytes=Bytes(t.bytes_read, t.bytes_written),
        grad_input_macs=t.macs - w.macs, grad_input_flops=t.flops - w.flops,
        grad_weight_macs=w.macs, grad_weight_flops=w.flops,
        by_op=rows(step.by_op, weights.by_op), by_module=rows(step.by_module, weights.by_module),
        uncounted_ops=step.uncounted,
    )


def make_optimizer(params: list[torch.Tensor], optimizer: str) -> torch.optim.Optimizer:
    """The torch optimizer ``--optimizer`` names (its state is what the training memory counts)."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-3)
    if optimizer == "momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    return (torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW)(params, lr=1e-3)


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor an optimizer holds in its state."""
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if isinstance(v, torch.Tensor))


def measure_step_peak(model: torch.nn.Module, args: tuple, kwargs: dict, *, input_grad: bool = True,
                      optimizer: str = "adam") -> dict[str, int]:
    """The peak memory of one real training step on CPU (forward, backward, optimizer step), measured with
    torch's profiler memory events, to check :func:`count_training` against: what is held before the
    step (parameters, buffers, optimizer state after a first step, inputs and output gradients, counted
    from the tensors) + the highest the allocations of the step rise above it (``held`` and ``rise``)."""
    from torch.profiler import ProfilerActivity, profile

    params = [p for p in model.parameters() if p.requires_grad]
    grad = lambda x: x.detach().requires_grad_(input_grad and x.is_floating_point())  # noqa: E731
    xs, kws = _map_tensors(tuple(args), grad), _map_tensors(kwargs, grad)
    opt = make_optimizer(params, optimizer) if params else None
    ones: list[torch.Tensor] = []

    def step() -> None:
        out = model(*xs, **kws)
        leaves = [t for t in _leaves(out) if t.requires_grad]
        if not ones:
            ones.extend(torch.ones_like(t) for t in leaves)
        del out
        if leaves:
            torch.autograd.backward(leaves, ones)
        del leaves
        if opt is not None:
            opt.step()

    def clear() -> None:
        for t in (*params, *_leaves((xs, kws))):
            t.grad = None

    step()  # the first step allocates the optimizer's state
    clear()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    held = nbytes([*model.parameters(), *model.buffers(), *_leaves((xs, kws)), *ones]) + \
        (state_bytes(opt) if opt is not None else 0)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        clear()
    live = rise = 0
    for e in sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns()):
        live += e.nbytes()
        rise = max(rise, live)
    return {"held": held, "rise": rise, "peak": held + rise}
