"""Structured channel pruning of RetinaFace-MobileNet0.25 (torch-pruning), and how a pruned network is persisted.

* **Pruning**: torch-pruning's ``MetaPruner`` (a maintained library that follows the channel dependencies through
  the FPN's additions, the SSH concatenations and the depthwise convolutions), L2-magnitude importance, the
  ``ClassHead``/``BboxHead``/``LandmarkHead`` 1x1 convolutions ignored (their outputs are the anchors' values; their
  *input* channels follow the SSH layers they read). Every layer keeps ``ceil((1 - ratio) * channels / 8) * 8``
  channels: multiples of 8 because ORT CPU's blocked NCHWc kernels want them (measured on face-state: a network with
  11/22/44/89/179 channels was 2.4x *slower* than the unpruned one), rounded *up* so no layer loses more than
  ``ratio`` — torch-pruning's own ``round_to`` rounds the kept count down, which halves this network's 16- and
  32-channel layers (the stem and every SSH branch) at ratio 0.3.
* **Persistence**: a plain ``state_dict`` (tensors only, loaded with ``weights_only=True``). The channel counts
  are read back from the tensor shapes: :func:`load_pruned` builds the official :class:`RetinaFace` and replaces
  each Conv2d/BatchNorm2d by one of the saved shape before a strict load. torch-pruning's own
  ``tp.state_dict``/``tp.load_state_dict`` pickle every module's ``__dict__`` and need ``weights_only=False``
  (torch's unpickler would run code from a cache file), hence these few lines.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ims_runtime.toolchain.models.retinaface import RetinaFace

#: channel counts are multiples of this (ORT CPU NCHWc blocks)
ROUND_TO = 8


def head_convs(model: RetinaFace) -> list[nn.Conv2d]:
    """The nine output 1x1 convolutions whose output channels are the anchors' values (never pruned)."""
    return [head.conv1x1 for heads in (model.ClassHead, model.BboxHead, model.LandmarkHead) for head in heads]


def kept_channels(channels: int, ratio: float) -> int:
    """Channels a layer keeps: ``(1 - ratio) * channels`` rounded up to a multiple of :data:`ROUND_TO`."""
    return min(channels, max(ROUND_TO, math.ceil((1.0 - ratio) * channels / ROUND_TO) * ROUND_TO))


def prune_retinaface(model: RetinaFace, ratio: float, input_wh_px: tuple[int, int] = (320, 192)) -> RetinaFace:
    """Remove ``ratio`` of the output channels of every prunable convolution (in place; returns ``model``).

    Depthwise convolutions follow the layer that feeds them; additions/concatenations are kept consistent by
    torch-pruning's dependency graph. Each layer gets its own ratio so that its kept count is exactly
    :func:`kept_channels` (the ``+ 0.5`` keeps torch-pruning's ``int()`` truncation from dropping one more block).
    """
    import torch_pruning as tp

    ignored = head_convs(model)
    ratios: dict[nn.Module, float] = {}
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module not in ignored and module.groups == 1:
            kept = kept_channels(module.out_channels, ratio)
            if kept < module.out_channels:
                ratios[module] = (module.out_channels - kept - 0.5) / module.out_channels
    w, h = input_wh_px
    was_training = model.training
    model.eval()
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, 3, h, w), importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.0, pruning_ratio_dict=ratios, ignored_layers=ignored,
                                  round_to=ROUND_TO)
    pruner.step()
    model.train(was_training)
    return model


def conv_channels(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{conv name: (in_channels, out_channels)}`` of every Conv2d."""
    return {name: (m.in_channels, m.out_channels) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def params_and_macs(model: nn.Module, input_wh_px: tuple[int, int]) -> dict[str, int]:
    """Parameter count and multiply-accumulates of one ``input_wh_px`` image (torch-pruning's counter)."""
    import torch_pruning as tp

    w, h = input_wh_px
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, h, w))
    model.train(was_training)
    return {"params": int(params), "macs": int(macs)}


def _resized(module: nn.Module, state: dict[str, torch.Tensor], prefix: str) -> nn.Module | None:
    """A Conv2d/BatchNorm2d shaped like the saved tensors under ``prefix``, or None if ``module`` already is."""
    if isinstance(module, nn.Conv2d):
        out_ch, in_per_group = state[prefix + "weight"].shape[:2]
        if (out_ch, in_per_group) == (module.out_channels, module.in_channels // module.groups):
            return None
        groups = out_ch if module.groups > 1 else 1  # depthwise stays depthwise
        return nn.Conv2d(in_per_group * groups, out_ch, module.kernel_size, module.stride, module.padding,  # type: ignore[arg-type]
                         groups=groups, bias=module.bias is not None)
    if isinstance(module, nn.BatchNorm2d):
        features = state[prefix + "weight"].shape[0]
        return None if features == module.num_features else nn.BatchNorm2d(features)
    return None


def load_pruned(state: dict[str, torch.Tensor], activation: str = "leaky_relu") -> RetinaFace:
    """A :class:`RetinaFace` whose layers have the channel counts of ``state`` (a pruned network's plain
    ``state_dict``), loaded strictly, eval mode."""
    from ims_runtime.toolchain.distill import relu_variant

    model = RetinaFace()
    if activation == "relu":
        relu_variant(model)
    for name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            prefix = f"{name}.{child_name}." if name else f"{child_name}."
            replacement = _resized(child, state, prefix)
            if replacement is not None:
                setattr(parent, child_name, replacement)
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_pruned(model: nn.Module, out: Path) -> None:
    """Write ``model``'s plain ``state_dict`` atomically (:func:`load_pruned` reads it back)."""
    import io

    from ims_runtime.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(out, buffer.getvalue())
