"""Timing statistics on known samples, and the timer's contract on a real block."""

from __future__ import annotations

import statistics

import pytest
import torch

from fusioncli.analysis.timing import quantile, summarize, time_forward


def test_quantile_matches_linear_interpolation():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert quantile(xs, 0.5) == 2.5
    assert quantile(xs, 0.25) == 1.75  # numpy.percentile([1,2,3,4], 25)
    assert quantile(xs, 0.75) == 3.25
    assert quantile([5.0], 0.5) == 5.0


def test_summarize_known_sample():
    per_call = [0.001, 0.002, 0.003, 0.004, 0.010]  # seconds
    t = summarize(per_call, calls=50, threads=2, warmup=3)
    assert t.median_ms == pytest.approx(3.0)
    assert t.iqr_ms == pytest.approx(4.0 - 2.0)
    assert t.min_ms == pytest.approx(1.0)
    assert t.mean_ms == pytest.approx(4.0)
    assert t.cv == pytest.approx(statistics.stdev(per_call) / 0.004)
    assert t.noisy is True and t.runs == 5 and t.calls == 50


def test_summarize_quiet_sample_not_noisy():
    t = summarize([0.010, 0.0101, 0.0099, 0.010, 0.010], calls=5, threads=1, warmup=1)
    assert t.noisy is False and t.cv < 0.01


def test_time_forward_takes_at_least_min_runs():
    model = torch.nn.Conv2d(4, 4, 1).eval()
    t = time_forward(model, [torch.randn(1, 4, 8, 8)], threads=1, min_time=0.01, min_runs=6)
    assert t.runs >= 6 and t.calls >= t.runs
    assert 0 < t.min_ms <= t.median_ms


def test_max_time_caps_the_timed_runs_of_a_slow_block():
    import time as _time

    from torch import nn

    from fusioncli.analysis.timing import time_forward

    class Slow(nn.Module):
        def forward(self, x):
            _time.sleep(0.05)
            return x

    x = torch.zeros(1)
    free = time_forward(Slow(), (x,), threads=1, min_time=0.1, warmup=1)
    assert free.runs == 7 and not free.capped  # the 7-run floor holds without a cap
    capped = time_forward(Slow(), (x,), threads=1, min_time=0.1, max_time=0.1, warmup=1)
    assert capped.capped and 2 <= capped.runs < 7


@pytest.mark.parametrize("args,message", [(("--max-time", "nan"), "--max-time: invalid value nan"),
                                          (("--max-time", "0.1", "--min-time", "0.5"), "at least --min-time")])
def test_bad_max_time_is_a_usage_error(args, message):
    from cli_helpers import run_main

    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", *args)
    assert code == 2 and message in err


def test_a_busy_machine_is_said_before_timing(monkeypatch):
    """A faked load: 3 runnable besides us on 2 CPUs, timing with 2 threads."""
    import os

    from cli_helpers import run_main
    from fusioncli import limits

    monkeypatch.setattr(os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    monkeypatch.setattr(limits, "cpus_available", lambda: 2)
    assert "load 4.0 on 2 CPUs" in limits.oversubscription(2) and "--threads 1" in limits.oversubscription(2)
    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--threads", "2",
                              "--min-time", "0.01")
    assert code == 0 and "the machine is busy (load 4.0 on 2 CPUs) and timing uses 2 threads" in err
    assert limits.oversubscription(1).endswith("timing uses 1 thread: latencies will be too long; close other "
                                               "programs")  # no --threads advice at 1 already
    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--threads", "1",
                              "--min-time", "0.01", "-q")
    assert "[forward, 1 thread]" in " ".join(out.split()) and "1 threads" not in out
    code, out, err = run_main("inspect", "add", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--no-time")
    assert "busy" not in err  # counting only: nothing is timed
    code, out, err = run_main("inspect", "concat", "--set", "nrom=bn", "--threads", "2", "--min-time", "0.01")
    assert code == 2 and "busy" not in err and len(err.strip().splitlines()) == 1  # a bad input: its error alone
    code, out, err = run_main("compare", "add", "concat", "--in", "4x4x4", "--in", "4x4x4", "--out", "4", "--threads",
                              "2", "--min-time", "0.01")
    assert code == 0 and err.count("the machine is busy") == 1  # said once per command
    code, out, err = run_main("inspect", "concat", "--set", "align_corners=maybe", "--threads", "2")
    assert code == 2 and err.strip().splitlines() == [  # bad input stays one line on a busy machine
        "fusion: error: --set align_corners: invalid value 'maybe'; allowed: bool or none"]
    code, out, err = run_main("inspect", "gated", "--in", "8x4x4", "--threads", "2")  # fails building the block
    assert code == 2 and len(err.strip().splitlines()) == 1 and "busy" not in err
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # ourselves alone
    assert limits.oversubscription(2) is None
