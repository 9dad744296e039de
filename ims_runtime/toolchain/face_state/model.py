"""The face-state network: a MobileNet-V1-style depthwise-separable CNN, 112x112 aligned face → 9 numbers.

Built only from Conv2d (dense 3x3 stem, depthwise 3x3, pointwise 1x1), BatchNorm (folded into the convs at
export), ReLU, global average pooling and Linear layers: every one quantises to INT8 with a fused activation on
ONNX Runtime CPU and is supported by QNN HTP (docs/platform-notes.md). No LeakyReLU (not fused in INT8), no
squeeze-excitation, no hard-swish.

Input: (N, 3, S, S) float32, BGR (grey/NIR replicated), ``(pixel - 127.5) / 127.5``.
Outputs (the exported ONNX names, in this order):

* ``gaze_pitch_yaw_rad`` (N, 2): gaze pitch, yaw in radians, in the aligned crop's frame
* ``head_yaw_pitch_roll_deg`` (N, 3): head pose in degrees, in the crop's frame
* ``eye_open_left_right`` (N, 2): subject's left, right eye openness 0..1
* ``mouth_open`` (N, 1): mouth openness 0..1
* ``confidence`` (N, 1): 0..1, that the crop is an aligned face the other outputs can be trusted for
"""

from __future__ import annotations

import torch
from torch import nn

from ims_runtime.toolchain import torch_stats
from ims_runtime.toolchain.torch_stats import count_params  # noqa: F401  (re-exported)

OUTPUT_NAMES = ["gaze_pitch_yaw_rad", "head_yaw_pitch_roll_deg", "eye_open_left_right", "mouth_open", "confidence"]
#: the network predicts head angles divided by this (keeps the raw outputs near unit scale)
HEAD_SCALE_DEG = 45.0
#: (output channels, stride) of the depthwise-separable blocks after the stem
DEFAULT_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FaceStateNet(nn.Module):
    """``forward`` returns the raw (N, 9) head: 2 gaze rad, 3 head angles / 45, 3 openness logits, 1 confidence
    logit. :class:`FaceStateExport` turns it into the named, scaled outputs the runtime reads."""

    def __init__(self, width: float = 1.0, stem_channels: int = 16,
                 blocks: tuple[tuple[int, int], ...] = DEFAULT_BLOCKS, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        c = max(8, int(stem_channels * width))
        layers: list[nn.Module] = [_conv_bn_relu(3, c, 3, 2)]
        for channels, stride in blocks:
            out = max(8, int(channels * width))
            layers += [_conv_bn_relu(c, c, 3, stride, groups=c), _conv_bn_relu(c, out, 1, 1)]
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(hidden, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class FaceStateExport(nn.Module):
    """The exported graph: raw head → the five named outputs (scales and sigmoids inside the model). ``net`` is
    any module with the raw (N, 9) head: :class:`FaceStateNet`, or the folded/pruned/QAT networks of
    ``compress.py``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = self.net(x)
        return (raw[:, 0:2], raw[:, 2:5] * HEAD_SCALE_DEG, torch.sigmoid(raw[:, 5:7]), torch.sigmoid(raw[:, 7:8]),
                torch.sigmoid(raw[:, 8:9]))


def count_macs(model: nn.Module, input_size_px: int) -> int:
    """Multiply-accumulates of one forward pass at (1, 3, S, S) (see ``toolchain/torch_stats.py``)."""
    return torch_stats.count_macs(model, (1, 3, input_size_px, input_size_px))
