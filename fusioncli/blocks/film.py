"""FiLM: a vector conditions a map through a per-channel scale and shift.

Paper: Perez, Strub, de Vries, Dumoulin, Courville, *FiLM: Visual Reasoning with a General
Conditioning Layer*, AAAI 2018. Canonical code: ethanjperez/film ``vr/models/filmed_net.py``
(``FiLM.forward``: ``gammas * x + betas`` broadcast over H and W; ``FiLMedNet.forward`` splits the
generator's output into gammas, then betas) and ``vr/models/film_gen.py`` (``FiLMGen``: the
``decoder_linear`` layer predicts them, ``modify_output`` adds ``gamma_baseline``).

Inputs: a map X (C x H x W) and a conditioning vector z (D), e.g. a 128x14x14 map and a 4096 vector.
``[gamma; beta] = W z + b`` (one linear layer, D -> 2C: the first C outputs are gamma, the next C
beta); ``out[c] = gamma[c] * X[c] + beta[c]``.

Shape contract: inputs (B, C, H, W) and (B, D); output (B, C, H, W): ``out_channels`` must be C.
Parameters: D*2C + 2C.

Paper vs reference code: the paper writes FiLM(F) = gamma * F + beta with gamma and beta the
generator's outputs; the code's generator predicts gamma - 1: ``modify_output`` adds
``gamma_baseline`` = 1 to the gamma half (``scripts/train/film.sh``: ``--gamma_option linear
--gamma_baseline 1``), so a zero-initialised layer starts at the identity. ``variant="reference"``
gives that: out = (1 + gamma) * X + beta.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from ..errors import SpecError
from .base import FusionBlock


class FiLMFusion(FusionBlock):
    """A linear layer maps the vector to (gamma, beta); gamma * X + beta, per channel.

    Args:
        variant: ``paper`` (gamma as predicted) or ``reference`` (ethanjperez/film: 1 + gamma).
    """

    kind = "film"
    min_inputs = 2
    max_inputs = 2
    not_a_node = "its second input is a vector, a neck merges maps"

    def __init__(self, in_channels, out_channels, *, variant: Literal["paper", "reference"] = "paper",
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c, d = self.in_channels
        if out_channels != c:
            raise SpecError(f"out_channels: 'film' outputs its map's width ({c}), got {out_channels}; allowed: {c}",
                            field="out_channels")
        self.baseline = 1.0 if variant == "reference" else 0.0  # configuration, not a module
        self.variant = variant
        self.film = nn.Linear(d, 2 * c)

    def forward(self, x, z):
        gamma, beta = self.film(z).unflatten(1, (2, -1)).unsqueeze(-1).unsqueeze(-1).unbind(1)
        if self.baseline:
            gamma = gamma + self.baseline
        return gamma * x + beta

    def output_shape(self, shapes):
        return (self.out_channels, *shapes[0][1:])
