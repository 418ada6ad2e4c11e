"""A user block that no ONNX exporter takes: an SVD of the sum (torch.linalg.svd has no ONNX op).
tests/test_deploy.py uses it as the design whose export fails while the others of a compare survive."""

import torch
from torch import nn


class SvdFusion(nn.Module):
    def __init__(self, in_channels: int = 8, out_channels: int = 8) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.linalg.svd(x + y)[0])
