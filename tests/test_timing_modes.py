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
    if mode.backward:
        assert t.gflops_per_s is None  # backward FLOPs are not counted: no rate is claimed
    else:
        assert t.gflops_per_s == pytest.approx(r.cost.flops / (t.median_ms / 1e3) / 1e9)
        assert t.gbytes_per_s == pytest.approx(r.cost.bytes.total / (t.median_ms / 1e3) / 1e9)


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
