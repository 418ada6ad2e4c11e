"""Every block equals its hand-written twin (benchmarks/handwritten.py) at its default inputs.

The twins are what ``benchmarks/forward_overhead.py`` times the blocks against; this keeps them
honest: same weights, same numbers, for the module-style and the functional twin alike. A new
block kind needs a twin there (``test_every_kind_has_a_twin`` says which is missing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fusioncli import list_fusions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import handwritten


def test_every_kind_has_a_twin():
    assert sorted(handwritten.HANDWRITTEN) == sorted(list_fusions())


@pytest.mark.parametrize("kind", list_fusions())
def test_block_equals_hand_written(kind):
    block, hand, xs = handwritten.setup(kind)
    functional = handwritten.HANDWRITTEN[kind](block, functional=True)
    with torch.inference_mode():
        out = block(*xs)
        torch.testing.assert_close(out, hand(*xs), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out, functional(*xs), rtol=1e-5, atol=1e-5)
    outs = out if isinstance(out, list) else [out]  # several outputs (hrnet): a list, and a list of shapes
    contract = block.output_shape([tuple(x.shape[1:]) for x in xs])
    assert [tuple(o.shape[1:]) for o in outs] == (contract if isinstance(contract, list) else [contract])
    assert all(o.abs().sum() > 0 for o in outs)  # not a trivially equal pair of zero maps


def test_hand_written_uses_the_blocks_weights():
    # the twin shares tensors with the block: changing the block's weight changes both outputs
    block, hand, xs = handwritten.setup("concat")
    with torch.no_grad():
        block.conv.weight.mul_(2)
        block.conv.bias.zero_()
    with torch.inference_mode():
        torch.testing.assert_close(block(*xs), hand(*xs))
        torch.testing.assert_close(hand(*xs), 2 * torch.nn.functional.conv2d(torch.cat(xs, 1), block.conv.weight / 2))
