"""Training cost (fusion-train-v1): backward MACs and FLOPs derived by hand, the inputs/weights split,
training memory against torch's optimizers and a measured CPU peak, and the roofline."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fusioncli import analysis
from fusioncli.analysis import roofline, training
from fusioncli.cli import app
from fusioncli.registry import get_info, list_fusions
from fusioncli.spec import resolve_spec

runner = CliRunner()


def test_concat_backward_by_hand():
    # concat 64x32x32 + 64x32x32 -> 64 with a 1x1 conv (bias): the conv has Cin = 128, Cout = 64, 32x32 positions
    r = analysis.analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False, train=True)
    fwd = 64 * 128 * 1 * 1 * 32 * 32  # forward MACs: Cout x Cin x k x k x H x W = 8,388,608
    assert r.cost.macs == fwd == 8_388_608
    b = r.training.backward
    # grad_input: a transposed 1x1 conv of grad_out (64 ch) with the weight back to 128 ch: the forward's MACs
    # grad_weight: the input (128 ch) against grad_out (64 ch) at each of the 32x32 positions: the forward's MACs
    assert b.grad_input_macs == fwd and b.grad_weight_macs == fwd and b.macs == 2 * fwd
    # FLOPs: 2 per MAC for each, + grad_bias: the sum of grad_out over the batch and positions (64 x 32 x 32)
    assert b.grad_input_flops == 2 * fwd
    assert b.grad_weight_flops == 2 * fwd + 64 * 32 * 32
    assert b.flops == 4 * fwd + 65_536 == 33_619_968
    # the concat's backward is two slices of the gradient (views): nothing more
    assert set(b.by_op) == {"aten.convolution_backward"} and b.uncounted_ops == {}
    assert r.training.step_macs == 3 * fwd
    m = r.training.memory
    assert m.saved_activation_bytes == 128 * 32 * 32 * 4  # the conv keeps its input (the concat) for grad_weight
    assert m.param_bytes == m.grad_bytes == (64 * 128 + 64) * 4
    assert m.optimizer_state_bytes == 2 * m.param_bytes + 2 * 4  # Adam: exp_avg, exp_avg_sq, a float32 step each


def test_concat_first_layer_skips_grad_input():
    r = analysis.analyze("concat", inputs=["64x32x32", "64x32x32"], out=64, time=False, train=True, input_grad=False)
    b = r.training.backward
    assert not r.training.input_grad
    assert b.grad_input_macs == 0 and b.grad_weight_macs == 8_388_608  # only the weight gradient is computed


def test_aff_backward_by_hand():
    # aff 64x32x32 x 2, r=4 (16 channels inside): local branch conv 64->16, conv 16->64 at 32x32; global branch
    # the same two convs at 1x1 after pooling. Forward MACs = 64*16*1024 * 2 + 64*16 * 2 = 2,099,200.
    fwd = 64 * 16 * 1024 * 2 + 64 * 16 * 2
    r = analysis.analyze("aff", time=False, train=True)
    assert r.cost.macs == fwd
    b = r.training.backward
    assert b.macs == 2 * fwd and b.grad_weight_macs == fwd and b.grad_input_macs == fwd
    # without input gradients the first convs of both branches need no grad_input: 64*16*1024 + 64*16 fewer
    first = analysis.analyze("aff", time=False, train=True, input_grad=False).training.backward
    assert first.grad_input_macs == fwd - (64 * 16 * 1024 + 64 * 16) and first.grad_weight_macs == fwd


def _weight_macs(kind: str, scale: int, inputs: tuple[str, ...] | None = None) -> tuple[int, int]:
    """(MACs of every conv/linear with a weight, all forward MACs): an independent count from the module
    shapes seen by forward hooks on CPU (Cout x Cin/groups x kernel x output positions x batch)."""
    spec = resolve_spec(kind, inputs=list(inputs)) if inputs else resolve_spec(kind)
    spec.inputs = [[s[0] * scale, s[1]] if len(s) == 2 else [s[0], *(d * scale for d in s[1:])]  # tokens: N
                   for s in spec.inputs]
    model = analysis.build(spec, "cpu", torch.float32)
    weights = 0
    hooks = []

    def hook(m, i, o):
        nonlocal weights
        if isinstance(m, torch.nn.Linear):
            weights += o.numel() * m.in_features
        else:
            weights += o.numel() * m.weight[0].numel()  # each output element: Cin/groups x kernel MACs

    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            hooks.append(m.register_forward_hook(hook))
    args, kwargs = analysis.make_inputs(spec, "cpu", torch.float32)
    with torch.no_grad():
        model(*args, **kwargs)
    return weights, spec


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("kind", list_fusions())
def test_every_block_backward_is_twice_its_products(kind, scale):
    """Each product y = A.B needs grad_A = g.B^T and grad_B = A^T.g, each with the forward's MACs: with input
    gradients, backward MACs = 2 x forward MACs; the weight gradients are the products with a weight."""
    weights, spec = _weight_macs(kind, scale)
    r = analysis.analyze(spec, time=False, train=True)
    b = r.training.backward
    assert b.macs == 2 * r.cost.macs
    if kind not in PARAMETER_FED:
        assert b.grad_weight_macs == weights
        assert b.grad_input_macs == 2 * r.cost.macs - weights
    assert b.uncounted_ops == {} and r.training.forward_macs == r.cost.macs


@pytest.mark.parametrize("kind", [k for k in list_fusions() if (4,) in get_info(k).ranks])
def test_volume_backward_is_twice_its_products(kind):
    """The same on CxDxHxW volumes (the kinds that take them, at their 3-D test inputs: Conv3d, 3-D resizes)."""
    weights, spec = _weight_macs(kind, 1, get_info(kind).alt_inputs)
    assert all(len(s) == 4 for s in spec.inputs)
    r = analysis.analyze(spec, time=False, train=True)
    b = r.training.backward
    assert b.macs == 2 * r.cost.macs and b.grad_weight_macs == weights
    assert b.uncounted_ops == {} and r.cost.uncounted_ops == {}


# Blocks with a parameter that feeds activations (qformer's learned queries): the backward through the path
# the inputs do not reach exists only for that parameter and counts as grad_weight, beyond the conv/linear
# weights; tests/blocks/test_tokens.py derives that split by hand.
PARAMETER_FED = {"qformer"}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_optimizer_state_as_torch_allocates_it(optimizer):
    spec = resolve_spec("aff")
    r = analysis.analyze(spec, time=False, train=True, optimizer=optimizer)
    model = analysis.build(spec, "cpu", torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = training.make_optimizer(params, optimizer)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert r.training.memory.optimizer_state_bytes == training.state_bytes(opt)
    assert r.training.optimizer == optimizer


@pytest.mark.parametrize("kind", ["concat", "gated", "se", "crossattn", "add"])
def test_training_peak_agrees_with_a_measured_cpu_step(kind):
    """The meta estimate of the step's peak against torch's profiler memory events on a real CPU step."""
    spec = resolve_spec(kind)
    r = analysis.analyze(spec, time=False, train=True)
    torch.set_num_threads(1)
    model = analysis.build(spec, "cpu", torch.float32)
    args, kwargs = analysis.make_inputs(spec, "cpu", torch.float32)
    measured = training.measure_step_peak(model, args, kwargs, optimizer="adam")
    m = r.training.memory
    assert measured["held"] == m.param_bytes + m.buffer_bytes + m.optimizer_state_bytes + m.input_bytes
    assert m.peak_bytes == pytest.approx(measured["peak"], rel=0.10)


def test_train_json_validates_and_reads_back():
    import jsonschema

    from fusioncli.report import entry_from_dict
    from fusioncli.schema import load_schema

    res = runner.invoke(app, ["inspect", "aff", "--train", "--optimizer", "adam", "--no-time", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, load_schema())
    d = doc["reports"][0]
    tr = d["training"]
    tensors = 2 * (2 + 2) * 2  # two branches of 2 convs and 2 batch norms, each with a weight and a bias
    assert tr["memory"]["optimizer_state_bytes"] == 2 * tr["memory"]["param_bytes"] + 4 * tensors
    assert tr["step_flops"] == tr["forward_flops"] + tr["backward"]["flops"]
    assert entry_from_dict(d).training.to_dict() == tr


def test_optimizer_vocabulary_is_checked():
    res = runner.invoke(app, ["inspect", "aff", "--train", "--optimizer", "lion", "--no-time"])
    assert res.exit_code == 2 and "--optimizer" in res.output and "adamw" in res.output


def test_backward_with_nothing_to_differentiate_is_one_line():
    res = runner.invoke(app, ["inspect", "add", "--backward", "--no-input-grad", "--min-time", "0.01"])
    assert res.exit_code == 2 and "nothing to differentiate" in res.output


def test_machine_is_measured_once_per_key(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(roofline, "measure", lambda d, t, n: calls.append((d, t, n)) or
                        {"peak_gflops": 100.0, "bandwidth_gbs": 10.0, "matmul_n": 8, "triad_bytes": 1,
                         "measured_s": 0.1, "measured_at": "now"})
    a = roofline.machine("cpu", "float32", 1)
    b = roofline.machine("cpu", "float32", 1)
    assert a == b and len(calls) == 1
    roofline.machine("cpu", "float32", 2)  # another thread count is another key
    roofline.machine("cpu", "float32", 1, refresh=True)
    assert len(calls) == 3
    cache = json.loads((tmp_path / "fusioncli" / "machine.json").read_text())
    assert len(cache) == 2 and all("threads=" in k for k in cache)


def test_place_under_the_roof():
    figures = {"peak_gflops": 100.0, "bandwidth_gbs": 10.0}
    low = roofline.place(flops=4_000_000, nbytes=2_000_000, seconds=0.001, figures=figures)  # 2 FLOP/B
    assert low.bound == "memory" and low.attainable_gflops == pytest.approx(20.0)  # 2 x 10 GB/s
    assert low.achieved_gflops == pytest.approx(4.0) and low.fraction == pytest.approx(0.2)
    high = roofline.place(flops=50_000_000, nbytes=1_000_000, seconds=0.001, figures=figures)  # 50 FLOP/B
    assert high.bound == "compute" and high.attainable_gflops == pytest.approx(100.0)


def test_machine_command_json():
    import jsonschema

    from fusioncli.schema import load_schema

    res = runner.invoke(app, ["machine", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    jsonschema.validate(json.loads(res.stdout), load_schema())
    m = json.loads(res.stdout)["machine"]
    assert m["peak_gflops"] > 0 and m["bandwidth_gbs"] > 0
    assert m["ridge_flop_per_byte"] == pytest.approx(m["peak_gflops"] / m["bandwidth_gbs"], rel=1e-3)
    assert m["measured_s"] <= 3.0  # measuring takes at most 3 s
