"""RetinaFace with a MobileNetV1-0.25 backbone, written to load the official biubug6/Pytorch_Retinaface weights.

Module names match the official ``state_dict`` keys (``body.stage1.0.0.weight``, ``fpn.output1.0.weight``,
``ssh1.conv3X3.0.weight``, ``ClassHead.0.conv1x1.weight``, ...), so the weights load strictly. Configuration
facts (from ``../shared/README.md``): FPN in 32 / out 64 channels, LeakyReLU slope 0.1 in the backbone and in the
64-channel FPN/SSH layers, 2 anchors per location, 5 landmarks. Input: BGR float minus (104, 117, 123), NCHW,
any size. Outputs (eval mode): ``loc`` (1, N, 4) box offsets, ``conf`` (1, N, 2) softmax [background, face],
``landms`` (1, N, 10) landmark offsets; decoding against the priors happens in the runtime's detector stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


def conv_bn_no_relu(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup))


def conv_bn1x1(inp: int, oup: int, stride: int, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 1, stride, padding=0, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


def conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BN and LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1Body(nn.Module):
    """The three backbone stages RetinaFace taps (strides 8, 16, 32; 64, 128, 256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = conv_bn1x1(in_channels[0], out_channels, stride=1, leaky=leaky)
        self.output2 = conv_bn1x1(in_channels[1], out_channels, stride=1, leaky=leaky)
        self.output3 = conv_bn1x1(in_channels[2], out_channels, stride=1, leaky=leaky)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1 = self.output1(features[0])
        out2 = self.output2(features[1])
        out3 = self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[2:], mode="nearest"))
        return [out1, out2, out3]


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channel <= 64 else 0.0
        self.conv3X3 = conv_bn_no_relu(in_channel, out_channel // 2, stride=1)
        self.conv5X5_1 = conv_bn(in_channel, out_channel // 4, stride=1, leaky=leaky)
        self.conv5X5_2 = conv_bn_no_relu(out_channel // 4, out_channel // 4, stride=1)
        self.conv7X7_2 = conv_bn(out_channel // 4, out_channel // 4, stride=1, leaky=leaky)
        self.conv7x7_3 = conv_bn_no_relu(out_channel // 4, out_channel // 4, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


class _Head(nn.Module):
    def __init__(self, in_channels: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """RetinaFace-MobileNet0.25. ``forward`` returns ``(loc, conf, landms)``; ``conf`` is softmaxed in eval."""

    anchors_per_location = 2
    head_type: type[nn.Module] = _Head  # subclasses swap the head (detector_qat: dequantize after its conv)

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        self.body = MobileNetV1Body()
        self.fpn = FPN([64, 128, 256], out_channels)
        self.ssh1 = SSH(out_channels, out_channels)
        self.ssh2 = SSH(out_channels, out_channels)
        self.ssh3 = SSH(out_channels, out_channels)
        a = self.anchors_per_location
        self.ClassHead = nn.ModuleList([self.head_type(out_channels, a, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([self.head_type(out_channels, a, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([self.head_type(out_channels, a, 10) for _ in range(3)])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone, FPN and SSH: the three feature maps (strides 8, 16, 32) the heads read."""
        fpn = self.fpn(self.body(x))
        return [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.features(x)
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, features)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, features)], dim=1)
        landms = torch.cat([h(f) for h, f in zip(self.LandmarkHead, features)], dim=1)
        if not self.training:
            conf = F.softmax(conf, dim=-1)
        return loc, conf, landms


def load_official(weights_path: str) -> RetinaFace:
    """Build the network and load the official ``mobilenet0.25_Final.pth`` strictly (eval mode).

    ``weights_only=True`` keeps torch's unpickler from running code: the file is a plain ``state_dict``.
    """
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = RetinaFace()
    model.load_state_dict(state, strict=True)
    return model.eval()
