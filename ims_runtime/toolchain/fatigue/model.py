"""The fatigue network: a small 1-D CNN over binned eye signals with gap-aware (masked) pooling.

Input ``(B, 3, T)``: mean openness, closed fraction, valid (T = window_s / bin_s = 1200 by default). Three strided
convolutions (×8 downsampling) and one dilated convolution see patterns up to ~2 s long (blinks, long closures,
droop); masked mean and max pooling over time then ignore empty bins, so a face-lost gap lowers the evidence,
not the estimated rates. Heads: KSS-equivalent (1..9 through a sigmoid) and three level logits.
"""

from __future__ import annotations

import torch
from torch import nn

DOWNSAMPLE = 8


class FatigueTCN(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        half = width // 2
        self.features = nn.Sequential(
            nn.Conv1d(3, half, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(half, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
        )
        self.valid_pool = nn.AvgPool1d(DOWNSAMPLE, DOWNSAMPLE)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)  # (B, C, T/8), ≥ 0 after ReLU
        w = self.valid_pool(x[:, 2:3])  # (B, 1, T/8): share of valid bins under each output step
        mean = (h * w).sum(-1) / (w.sum(-1) + 1e-3)
        peak = (h * w).amax(-1)
        out = self.head(torch.cat([mean, peak], dim=1))
        kss = 1.0 + 8.0 * torch.sigmoid(out[:, :1])
        return kss, out[:, 1:]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
