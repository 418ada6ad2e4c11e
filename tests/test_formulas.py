"""The formula table: custom ops, overload over packet keys, replacement, entry points, bad returns,
and that every built-in entry names an op this torch has."""

from __future__ import annotations

import subprocess
import sys
from math import prod

import pytest
import torch

from fusioncli.analysis import formulas
from fusioncli.analysis.cost import CostCounter
from fusioncli.analysis.formulas import (
    BUILTIN_OPS, formula_for, load_entry_point_formulas, register_formula, registered_formulas, unregister_formula,
)
from fusioncli.errors import RunError, SpecError


# the schema written out: torch < 2.5 cannot infer it from this module's string annotations
@torch.library.custom_op("fusiontest::scale2", mutates_args=(), schema="(Tensor x) -> Tensor")
def scale2(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@scale2.register_fake
def _scale2_fake(x):
    return torch.empty_like(x)


class Scaled(torch.nn.Module):
    def forward(self, x):
        return torch.relu(scale2(scale2(x)))


SHAPE = (2, 3, 4, 5)  # 120 elements


@pytest.fixture
def registrations():
    """Op names registered by the test; each is unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        if name in registered_formulas():
            unregister_formula(name)


def count(fn, *shapes):
    xs = [torch.empty(s, device="meta") for s in shapes]
    with torch.no_grad(), CostCounter() as c:
        fn(*xs)
    return c.result()


def test_custom_op_is_uncounted_until_it_has_a_formula(registrations):
    r = count(Scaled(), SHAPE)
    assert r.uncounted == {"fusiontest.scale2": 2}
    assert r.total.flops == 120  # the relu alone

    register_formula("fusiontest::scale2", lambda x, out_shape: 3 * prod(out_shape))
    registrations.append("fusiontest::scale2")
    r = count(Scaled(), SHAPE)
    assert r.uncounted == {}
    assert r.by_op["fusiontest.scale2"].flops == 2 * 3 * 2 * 3 * 4 * 5 == 720
    assert r.by_op["fusiontest.scale2"].calls == 2
    assert (r.total.macs, r.total.flops) == (0, 720 + 120)


def test_formula_gets_shapes_and_may_return_macs(registrations):
    seen = []

    @register_formula(torch.ops.fusiontest.scale2)
    def scale2_cost(x, *, out_shape):
        seen.append((x, out_shape))
        return prod(out_shape), 2 * prod(out_shape)

    registrations.append("fusiontest::scale2")
    r = count(lambda x: scale2(x), SHAPE)
    assert seen == [(torch.Size(SHAPE), torch.Size(SHAPE))] and type(seen[0][0]) is torch.Size
    assert (r.total.macs, r.total.flops) == (120, 240)


def test_overload_key_beats_packet_key(registrations):
    register_formula("fusiontest::scale2", lambda x, out_shape: 3 * prod(out_shape))
    register_formula(torch.ops.fusiontest.scale2.default, lambda x, out_shape: 7 * prod(out_shape))
    registrations += ["fusiontest::scale2", "fusiontest::scale2.default"]
    assert count(lambda x: scale2(x), SHAPE).total.flops == 7 * 120

    # an overload entry also wins over a built-in packet entry, for that overload only
    register_formula("aten::add.Scalar", lambda x, other, alpha=1, out_shape=None: (1, 10))
    registrations.append("aten::add.Scalar")
    assert formula_for(torch.ops.aten.add.Scalar) is not formula_for(torch.ops.aten.add.Tensor)
    r = count(lambda x: (torch.ops.aten.add.Scalar(x, 2), torch.ops.aten.add.Tensor(x, x)), SHAPE)
    assert (r.total.macs, r.total.flops) == (1, 10 + 120)


def test_double_registration_raises_and_replace_overrides(registrations):
    register_formula("fusiontest::scale2", lambda x, out_shape: 1)
    registrations.append("fusiontest::scale2")
    with pytest.raises(ValueError, match="fusiontest::scale2 already has a formula"):
        register_formula("fusiontest::scale2", lambda x, out_shape: 2)
    with pytest.raises(ValueError, match="aten::mean already has a formula"):
        register_formula(torch.ops.aten.mean, lambda *a, out_shape: 0)
    assert count(lambda x: scale2(x), SHAPE).total.flops == 1
    register_formula("fusiontest::scale2", lambda x, out_shape: 2, replace=True)
    assert count(lambda x: scale2(x), SHAPE).total.flops == 2
    unregister_formula("fusiontest::scale2")
    assert formula_for(torch.ops.fusiontest.scale2.default) is None
    with pytest.raises(KeyError):
        unregister_formula("fusiontest::scale2")


def test_bad_names_and_non_callables_are_refused():
    for bad in ("scale2", "fusiontest.scale2", "fusiontest::scale2.a.b", ""):
        with pytest.raises(ValueError, match="namespace::op"):
            register_formula(bad, lambda *a, out_shape: 0)
    with pytest.raises(TypeError, match="expected a callable"):
        register_formula("fusiontest::scale2", 3)
    with pytest.raises(TypeError, match="OpOverloadPacket"):
        register_formula(42, lambda *a, out_shape: 0)
    assert "fusiontest::scale2" not in registered_formulas()


@pytest.mark.parametrize("bad", [-1, 2.5, "12", None, True, (1,), (1, 2, 3), (1, -2), (1.0, 2), [1, 2]])
def test_a_bad_formula_return_names_the_op(registrations, bad):
    register_formula("fusiontest::scale2", lambda x, out_shape: bad)
    registrations.append("fusiontest::scale2")
    with pytest.raises(RunError, match=r"formula for fusiontest::scale2 returned .*expected a non-negative int"):
        count(lambda x: scale2(x), SHAPE)


def test_a_formula_that_raises_names_the_op(registrations):
    register_formula("fusiontest::scale2", lambda x, out_shape: 1 // 0)
    registrations.append("fusiontest::scale2")
    with pytest.raises(RunError, match="formula for fusiontest::scale2 raised ZeroDivisionError"):
        count(lambda x: scale2(x), SHAPE)


def _site(tmp_path, dist: str, entry_points: str, module: str = "") -> str:
    info = tmp_path / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fusioncli.formulas]\n{entry_points}\n")
    if module:
        (tmp_path / f"{dist}.py").write_text(module)
    return str(tmp_path)


@pytest.fixture
def on_path():
    added: list[str] = []
    yield added.append
    for path in added:
        sys.path.remove(path)
        for name in [m for m in sys.modules if m.startswith("fusiontest_")]:
            del sys.modules[name]


def test_entry_point_formula_is_loaded_and_used(tmp_path, on_path, registrations):
    site = _site(tmp_path, "fusiontest_plugin", "fusiontest::scale2 = fusiontest_plugin:scale2_flops",
                 "from math import prod\n\ndef scale2_flops(x, out_shape):\n    return 5 * prod(out_shape)\n")
    sys.path.insert(0, site)
    on_path(site)
    registrations.append("fusiontest::scale2")
    assert load_entry_point_formulas() == ["fusiontest::scale2"]
    assert load_entry_point_formulas() == []  # already registered from this entry point
    assert formula_for(torch.ops.fusiontest.scale2.default).__module__ == "fusiontest_plugin"
    assert count(lambda x: scale2(x), SHAPE).total.flops == 5 * 120


@pytest.mark.parametrize("line,message", [
    ("fusiontest::scale2 = fusiontest_nosuch:flops", "cannot load it: ModuleNotFoundError"),
    ("scale2 = math:prod", "the name must be the op's"),
    ("aten::mean = math:prod", "aten::mean already has a formula"),
    ("fusiontest::scale2 = math:pi", "expected a callable"),
])
def test_a_broken_entry_point_is_a_spec_error(tmp_path, on_path, line, message):
    site = _site(tmp_path, "fusiontest_broken", line)
    sys.path.insert(0, site)
    on_path(site)
    with pytest.raises(SpecError) as e:
        load_entry_point_formulas()
    text = str(e.value)
    assert message in text and "\n" not in text
    assert f"entry point {line.split(' = ')[0]!r}" in text and "fusiontest_broken 1.0" in text
    assert "fusiontest::scale2" not in registered_formulas()


def test_entry_points_load_on_the_first_counter(monkeypatch):
    calls = []
    monkeypatch.setattr(formulas, "_entry_points_loaded", False)
    monkeypatch.setattr(formulas, "load_entry_point_formulas", lambda: calls.append(1) or [])
    CostCounter()
    assert calls == [1]


def _resolve(name: str):
    ns, rest = name.split("::")
    packet, _, overload = rest.partition(".")
    op = getattr(getattr(torch.ops, ns), packet, None)
    return getattr(op, overload, None) if overload and op is not None else op


def test_every_builtin_formula_names_a_real_aten_op():
    assert len(BUILTIN_OPS) > 200
    table = registered_formulas()
    for name in sorted(BUILTIN_OPS):
        assert name.startswith("aten::") and name in table, name
        assert isinstance(_resolve(name), torch._ops.OpOverloadPacket), name
    for name in ("aten::lerp", "aten::mean", "aten::convolution", "aten::view", "aten::cat", "aten::native_layer_norm"):
        assert name in BUILTIN_OPS
    for name in ("aten::convolution_backward", "aten::threshold_backward", "aten::native_batch_norm_backward"):
        assert name in BUILTIN_OPS  # the backward formulas of fusion-train-v1 sit in the same table
    assert formulas.VIEW_OPS <= BUILTIN_OPS and formulas.BATCH_NORM_OPS <= BUILTIN_OPS


def test_register_formula_is_public_and_lazy():
    code = ("import sys, fusioncli; before = 'torch' in sys.modules; f = fusioncli.register_formula; "
            "print(before, 'torch' in sys.modules, 'register_formula' in fusioncli.__all__, f.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True", "fusioncli.analysis.formulas"]
