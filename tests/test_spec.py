from __future__ import annotations

import pytest

from fusioncli import SpecError, list_fusions, resolve_spec
from fusioncli.registry import block_options, create_fusion
from fusioncli.spec import load_preset, parse_set, parse_shape


@pytest.mark.parametrize("text,shape", [("64x56x56", (64, 56, 56)), ("3X4x5", (3, 4, 5)), (" 8x1x1 ", (8, 1, 1)),
                                        ([2, 3, 4], (2, 3, 4)), ("768", (768,)), ("196x768", (196, 768)),
                                        ("64x8x32x32", (64, 8, 32, 32)), (12, (12,)), ([5, 6], (5, 6))])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["64x56x56x2x2", "-1x4x4", "0x4x4", "axbxc", "", "4x", [1, 2, 0], [], [1] * 5, 0,
                                  True, 2.5, "4x4x4x4x4"])
def test_parse_shape_rejects(text):
    with pytest.raises(SpecError, match="--in"):
        parse_shape(text)


def test_parse_set():
    assert parse_set(["r=4", " merge = sum "]) == {"r": "4", "merge": "sum"}
    with pytest.raises(SpecError):
        parse_set(["r"])


def test_options_are_typed_from_annotations():
    opts = block_options("multiscale")
    assert opts["kernels"].default == (1, 3, 5)
    assert opts["merge"].choices == ("concat", "sum")
    assert opts["align"].default == "first"
    block = create_fusion("multiscale", [8], 8, kernels="1,3", strides=[1], merge="sum", align_corners="true")
    assert len(block.branches) == 2 and block.align_corners is True


def test_list_fusions_filter():
    assert list_fusions("conc*") == ["concat"]
    assert {"concat", "add", "gated", "multiscale"} <= set(list_fusions())


def test_flags_override_preset():
    spec = resolve_spec("unet-skip-concat", inputs=["4x2x2", "4x2x2"], out=8, options={"act": "none"}, batch=2)
    assert spec.inputs == [(4, 2, 2), (4, 2, 2)] and spec.out == 8 and spec.batch == 2
    assert spec.options == {"norm": "bn", "act": "none"}


def test_kind_uses_documented_defaults():
    spec = resolve_spec("concat")
    assert spec.inputs == [(64, 32, 32), (64, 32, 32)] and spec.out == 64


def test_preset_list_of_ints(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('block = "add"\nname = "x"\ninputs = [[4, 2, 2], [4, 2, 2]]\nout = 4\n[options]\nproj_bias = false\n')
    spec = load_preset(p)
    assert spec.name == "x" and spec.inputs == [(4, 2, 2), (4, 2, 2)] and spec.options == {"proj_bias": False}
