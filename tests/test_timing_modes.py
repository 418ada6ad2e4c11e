"""Every timing mode runs on CPU; derived figures follow from the cost and the median."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fusioncli.analysis import analyze
from fusioncli.analysis.timing import TimingMode
from fusioncli.cli import app

SMALL = dict(inputs=["8x8x8", "8x8x8"], out=8, min_time=0.02)


@pytest.mark.parametrize("mode", [
    TimingMode(),
    TimingMode(backward=True),
    TimingMode(channels_last=True),
    TimingMode(backend="compile", compile_backend="eager"),
], ids=["forward", "backward", "channels_last", "compile"])
def test_modes_run_on_cpu(mode):
    r = analyze("gated", timing_mode=mode, **SMALL)
    t = r.timing
    assert t.runs >= 7 and t.calls >= t.runs and t.median_ms > 0
    assert t.mode == ("forward+backward" if mode.backward else "forward")
    assert t.channels_last == mode.channels_last and t.compiled == mode.compile
    assert (t.compile_ms is not None) == mode.compile
    assert t.samples_per_s == pytest.approx(1 / (t.median_ms / 1e3))
    seconds = t.median_ms / 1e3
    if mode.backward:  # the rate of what is timed: forward + backward, counted on meta
        assert r.training is not None and r.training.backward.macs == 2 * r.cost.macs  # 1x1 convs: 2x forward
        flops, nbytes = r.training.step_flops, r.cost.bytes.total + r.training.backward.bytes.total
    else:
        assert r.training is None
        flops, nbytes = r.cost.flops, r.cost.bytes.total
    assert t.gflops_per_s == pytest.approx(flops / seconds / 1e9)
    assert t.gbytes_per_s == pytest.approx(nbytes / seconds / 1e9)
    roof = r.roofline  # where it sits under this machine's roof
    assert roof.intensity == pytest.approx(flops / nbytes)
    assert roof.achieved_gflops == pytest.approx(t.gflops_per_s)
    assert roof.attainable_gflops == pytest.approx(min(roof.peak_gflops, roof.intensity * roof.bandwidth_gbs))
    assert roof.fraction == pytest.approx(roof.achieved_gflops / roof.attainable_gflops)
    assert roof.bound == ("memory" if roof.intensity * roof.bandwidth_gbs < roof.peak_gflops else "compute")


def test_backward_leaves_block_parameters_with_gradients():
    from fusioncli.analysis.timing import make_step

    block = torch.nn.Conv2d(2, 2, 1)
    step = make_step(block, [torch.randn(1, 2, 3, 3)], TimingMode(backward=True), "cpu", torch.float32)
    step()
    assert block.weight.grad is not None and block.bias.grad is not None


def test_low_precision_cast_and_autocast():
    cast = analyze("concat", dtype="bfloat16", **SMALL)
    assert cast.timing.dtype_mode == "cast"
    auto = analyze("concat", dtype="bfloat16", timing_mode=TimingMode(autocast=True), **SMALL)
    assert auto.timing.dtype_mode == "autocast"


def test_batch_scales_throughput():
    r = analyze("add", inputs=["8x8x8", "8x8x8"], out=8, batch=4, min_time=0.02)
    assert r.timing.samples_per_s == pytest.approx(4 / (r.timing.median_ms / 1e3))


def test_cli_flags_and_bad_combinations():
    runner = CliRunner()
    r = runner.invoke(app, ["inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--min-time", "0.01",
                            "--backward", "--channels-last", "--quiet", "--json"])
    assert r.exit_code == 0, r.stderr
    t = json.loads(r.stdout)["reports"][0]["timing"]
    assert t["mode"] == "forward+backward" and t["channels_last"] is True
    r = runner.invoke(app, ["inspect", "add", "--autocast"])
    assert r.exit_code == 2 and "--autocast: needs --dtype bfloat16 or float16" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timing_reports_peak_memory():
    r = analyze("concat", device="cuda", **SMALL)
    assert r.timing.cuda_peak_bytes and r.timing.cuda_peak_bytes > 0
