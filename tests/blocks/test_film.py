"""FiLM: the ethanjperez/film forward transcribed (generator's linear layer, gamma_baseline, FiLM layer)
and compared output for output; parameters and FLOPs by hand; bad widths and ranks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def film_reference(x, z, weight, bias, module_dim, gamma_baseline):
    """vr/models/film_gen.py: film = decoder_linear(encoded); modify_output adds gamma_shift (gamma_baseline) to
    the gamma slice [0, module_dim); vr/models/filmed_net.py: gammas, betas = torch.split(film, module_dim, -1);
    FiLM.forward: gammas.unsqueeze(2).unsqueeze(3).expand_as(x) * x + betas (likewise)."""
    film = F.linear(z, weight, bias)
    film[:, :module_dim] = film[:, :module_dim] + gamma_baseline
    gammas, betas = torch.split(film, module_dim, dim=-1)
    gammas = gammas.unsqueeze(2).unsqueeze(3).expand_as(x)
    betas = betas.unsqueeze(2).unsqueeze(3).expand_as(x)
    return (gammas * x) + betas


@pytest.mark.parametrize("variant,baseline", [("paper", 0.0), ("reference", 1.0)])
def test_film_equals_reference(variant, baseline):
    torch.manual_seed(0)
    block = create_fusion("film", [16, 40], 16, variant=variant).eval()
    gen = torch.Generator().manual_seed(1)
    x, z = torch.randn(3, 16, 7, 5, generator=gen), torch.randn(3, 40, generator=gen)
    with torch.no_grad():
        expected = film_reference(x, z, block.film.weight.clone(), block.film.bias.clone(), 16, baseline)
        torch.testing.assert_close(block(x, z), expected, rtol=1e-5, atol=1e-5)


def test_film_clevr_counts_by_hand():
    # CLEVR FiLM (scripts/train/film.sh): module_dim C = 128 at 14x14, GRU state D = 4096 -> one FiLM layer
    C, D, N = 128, 4096, 128 * 14 * 14
    r = analyze("film-clevr", time=False)
    assert r.params["total"] == D * 2 * C + 2 * C == 1_048_832
    macs = D * 2 * C
    # linear (bias: 2C), gamma + 1 (C, variant=reference), gamma * X (N), + beta (N)
    assert (r.cost.macs, r.cost.flops) == (macs, 2 * macs + 2 * C + C + 2 * N) == (1_048_576, 2_147_712)
    assert r.cost.uncounted_ops == {}
    assert r.outputs == [[1, 128, 14, 14]]


def test_film_out_must_be_the_maps_width():
    with pytest.raises(SpecError, match="allowed: 16"):
        create_fusion("film", [16, 40], 32)


def test_film_from_the_command_line():
    import json

    from cli_helpers import run_main

    code, out, err = run_main("inspect", "film", "--in", "64x32x32", "--in", "128", "--out", "64", "--no-time",
                              "--format", "json")
    assert code == 0, err
    r = json.loads(out)["reports"][0]
    assert r["outputs"] == [[1, 64, 32, 32]] and r["params"]["total"] == 128 * 128 + 128
    for args in (["--in", "64x32x32", "--in", "64x32x32"], ["--in", "128", "--in", "64x32x32"]):
        code, out, err = run_main("inspect", "film", *args, "--out", "64", "--no-time")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "C vectors" in err, err
