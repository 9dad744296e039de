"""The eye-state network: a small CNN, one grey S x S eye crop → one openness logit.

Built only from Conv2d (3x3 dense, 3x3 depthwise, 1x1 pointwise), BatchNorm (folded at export), ReLU, global
average pooling and one Linear layer — every op fuses in INT8 on ONNX Runtime CPU and runs on QNN HTP
(docs/platform-notes.md). About 2.7 MMAC per eye at 32x32 (budget: ≤ 5 MMAC).

Input: (N, 1, S, S) float32 grey, ``(pixel - 127.5) / 127.5``. Exported output ``eye_open`` (N, 1): calibrated
openness 0 (closed) … 1 (open), ``sigmoid(scale * logit + bias)`` with the calibration inside the graph.
"""

from __future__ import annotations

import torch
from torch import nn

from ims_runtime.toolchain import torch_stats
from ims_runtime.toolchain.torch_stats import count_params  # noqa: F401  (re-exported)

OUTPUT_NAME = "eye_open"
#: (kind, output channels, stride) after the stem: "conv" a dense 3x3, "dw" a depthwise 3x3 + pointwise 1x1
DEFAULT_LAYERS = (("conv", 32, 2), ("dw", 48, 1), ("dw", 64, 2), ("dw", 96, 1), ("dw", 128, 2))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class EyeStateNet(nn.Module):
    """``forward``: (N, 1, S, S) → (N, 1) raw logit of "open"."""

    def __init__(self, stem_channels: int = 16, layers: tuple[tuple[str, int, int], ...] = DEFAULT_LAYERS,
                 dropout: float = 0.1) -> None:
        super().__init__()
        c = stem_channels
        modules: list[nn.Module] = _conv_bn_relu(1, c, 3, 1)
        for kind, out, stride in layers:
            if kind == "conv":
                modules += _conv_bn_relu(c, out, 3, stride)
            else:
                modules += _conv_bn_relu(c, c, 3, stride, groups=c) + _conv_bn_relu(c, out, 1, 1)
            c = out
        self.features = nn.Sequential(*modules)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class EyeStateExport(nn.Module):
    """The exported graph: logit → calibrated openness ``sigmoid(scale * logit + bias)``."""

    def __init__(self, net: nn.Module, scale: float, bias: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x) * self.scale + self.bias)


def count_macs(model: nn.Module, size_px: int) -> int:
    """Multiply-accumulates of one eye (1, 1, S, S) (see ``toolchain/torch_stats.py``)."""
    return torch_stats.count_macs(model, (1, 1, size_px, size_px))
