"""Quantisation-aware training of the RetinaFace detector, self-distilled from the FP32 model on unlabelled footage.

Eager ``torch.ao.quantization`` (docs/platform-notes.md: the path that exports to a QDQ ONNX running on ORT CPU and
fully on QNN HTP):

* :class:`QuantizableRetinaFace` is :class:`~.models.retinaface.RetinaFace` with the module names (and so the
  official ``state_dict`` keys) unchanged, plus: a ``QuantStub`` at the input, ``FloatFunctional`` for the FPN
  additions and the SSH concatenation (each gets its own output observer), a ``DeQuantStub`` after each head's
  1x1 conv (reshaping, concatenating the levels and the class softmax stay float, as in PTQ). SSH's ``relu(cat(a, b, c))`` is written as
  ``cat(relu(a), relu(b), relu(c))`` — the same numbers — so each branch fuses to Conv+BN+ReLU (one QLinearConv
  with an all-positive output range instead of a signed one clipped afterwards).
* Conv+BN(+ReLU) are fused by ``fuse_modules_qat``; LeakyReLU (0.1) stays a separate quantized op, as ORT has no
  fused QLinearConv+LeakyRelu either.
* BatchNorm statistics are frozen from the first step (``freeze_bn_stats``): the fused ConvBn keeps folding the
  official running mean/var into the weights, like :mod:`.distill`'s float student, which stays in eval mode for
  the same reason — a few hundred batches of 8 crops of three clips cannot re-estimate them well. Only weights
  and BN affine parameters learn the rounding.
* Observers are frozen for the last quarter of the steps, then ``convert`` and ``torch.onnx.export(dynamo=False)``
  write QuantizeLinear/DequantizeLinear pairs ORT fuses into QLinearConv.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from ims_runtime.toolchain.models.retinaface import FPN, SSH, RetinaFace, _Head, load_official

THREADS = 1  # the build machine's cores are shared; one thread keeps a build polite and deterministic


class QuantizableFPN(FPN):
    """:class:`FPN` with the two top-down additions as ``FloatFunctional`` (observed, requantised)."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self.add2 = FloatFunctional()
        self.add1 = FloatFunctional()

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1 = self.output1(features[0])
        out2 = self.output2(features[1])
        out3 = self.output3(features[2])
        out2 = self.merge2(self.add2.add(out2, F.interpolate(out3, size=out2.shape[2:], mode="nearest")))
        out1 = self.merge1(self.add1.add(out1, F.interpolate(out2, size=out1.shape[2:], mode="nearest")))
        return [out1, out2, out3]


class QuantizableSSH(SSH):
    """:class:`SSH` with the final ReLU moved into the three branches (``relu`` commutes with ``cat``) and the
    concatenation as ``FloatFunctional``. The added ``nn.ReLU`` modules have no parameters: keys unchanged."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__(in_channel, out_channel)
        for branch in (self.conv3X3, self.conv5X5_2, self.conv7x7_3):
            branch.append(nn.ReLU())
        self.cat = FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        return self.cat.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], dim=1)


class DequantizedHead(_Head):
    """:class:`_Head` whose 1x1 conv is the last quantized op: the permute/reshape to (N, anchors, values) and the
    concatenation of the three levels run on float (the TorchScript exporter has no quantized Reshape; data
    movement has nothing to quantise)."""

    def __init__(self, in_channels: int, anchors: int, values: int) -> None:
        super().__init__(in_channels, anchors, values)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dequant(self.conv1x1(x)).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class QuantizableRetinaFace(RetinaFace):
    """RetinaFace ready for eager QAT. Before :func:`prepare` it computes exactly what :class:`RetinaFace` does."""

    head_type = DequantizedHead

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__(out_channels)
        self.fpn = QuantizableFPN([64, 128, 256], out_channels)
        self.ssh1 = QuantizableSSH(out_channels, out_channels)
        self.ssh2 = QuantizableSSH(out_channels, out_channels)
        self.ssh3 = QuantizableSSH(out_channels, out_channels)
        self.quant = torch.ao.quantization.QuantStub()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Input quantisation, then backbone, FPN, SSH: the three quantized feature maps the heads read."""
        return super().features(self.quant(x))


def quantizable_from(model: RetinaFace) -> QuantizableRetinaFace:
    """A :class:`QuantizableRetinaFace` with ``model``'s weights and BN statistics (strict; eval mode)."""
    net = QuantizableRetinaFace()
    net.load_state_dict(model.state_dict(), strict=True)
    return net.eval()


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Every Conv2d → BatchNorm2d (→ ReLU) run inside an ``nn.Sequential``, as ``fuse_modules_qat`` names."""
    groups = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for i, (child_name, child) in enumerate(children[:-1]):
            if isinstance(child, nn.Conv2d) and isinstance(children[i + 1][1], nn.BatchNorm2d):
                group = [f"{name}.{child_name}", f"{name}.{children[i + 1][0]}"]
                if i + 2 < len(children) and type(children[i + 2][1]) is nn.ReLU:
                    group.append(f"{name}.{children[i + 2][0]}")
                groups.append(group)
    return groups


def module_of_onnx_node(node_name: str) -> str:
    """The torch module path of an exported node name: ``/body/stage1/stage1.1/stage1.1.2/LeakyRelu`` →
    ``body.stage1.1.2`` (the exporter scopes each node by the module path, one level per segment)."""
    parts = node_name.strip("/").split("/")
    return parts[-2] if len(parts) < 3 else f"{parts[0]}.{parts[-2]}"


def keep_float_prefix(net: QuantizableRetinaFace, last_float: str) -> list[str]:
    """Leave the backbone's first layers, up to and including module ``last_float`` (in ``body.stage1``), in
    float: their Conv+BN are folded (no BN statistics to freeze), their qconfig is None, and the input QuantStub
    moves to just after ``last_float``. Returns the module paths kept float.

    Why: ORT CPU's u8s8 QLinearConv is slower than float Conv for the 3-channel stem and the 8-channel depthwise
    layer after it (docs/optimisation.md), and the stem sees the raw image, whose range is the widest."""
    from torch.ao.quantization import fuse_modules

    leaves = [f"body.stage1.{name}" for name, module in net.body.stage1.named_modules()
              if name and not list(module.children())]
    if last_float not in leaves:
        raise ValueError(f"{last_float!r} is not a layer of body.stage1 ({leaves[:4]} ...)")
    prefix = leaves[:leaves.index(last_float) + 1]
    net.eval()  # eval-mode fusion folds BN into the conv
    fuse_modules(net, [g for g in fusion_groups(net) if set(g) <= set(prefix)], inplace=True)
    for name in prefix:
        net.get_submodule(name).qconfig = None
    parent_name, _, index = last_float.rpartition(".")
    parent = net.get_submodule(parent_name)
    from ims_runtime.toolchain.qat import qat_qconfig

    parent[int(index)] = nn.Sequential(parent[int(index)], torch.ao.quantization.QuantStub(qat_qconfig()))
    net.quant = nn.Identity()
    return prefix


def prepare(net: QuantizableRetinaFace, float_until: str | None = None) -> QuantizableRetinaFace:
    """Fuse, attach the project's QConfig, insert fake-quant (in place; returns ``net`` in train mode, BN frozen).

    ``float_until``: keep the layers up to this module path float (:func:`keep_float_prefix`); None = all INT8."""
    from torch.ao.nn.intrinsic.qat import freeze_bn_stats
    from torch.ao.quantization import fuse_modules_qat, prepare_qat

    from ims_runtime.toolchain.qat import qat_qconfig

    if float_until is not None:
        keep_float_prefix(net, float_until)
    net.train()
    fuse_modules_qat(net, fusion_groups(net), inplace=True)
    net.qconfig = qat_qconfig()
    prepare_qat(net, inplace=True)
    net.apply(freeze_bn_stats)
    return net


def convert(net: QuantizableRetinaFace) -> nn.Module:
    """The trained fake-quant network → a real quantized module (eval mode) the TorchScript exporter writes as QDQ."""
    from ims_runtime.toolchain.qat import select_quantized_engine

    select_quantized_engine()
    quantized = torch.ao.quantization.convert(copy.deepcopy(net).eval(), inplace=False)
    for module in quantized.modules():  # quantized::leaky_relu has no in-place form: it warns on every call
        if isinstance(module, nn.LeakyReLU):
            module.inplace = False
    return quantized


def train(net: QuantizableRetinaFace, teacher: RetinaFace, images_bgr: list[np.ndarray], steps: int,
          lr: float = 1e-4, label: str = "qat") -> dict[str, Any]:
    """Self-distil the prepared ``net`` from ``teacher`` for ``steps`` (observers frozen for the last quarter)."""
    from torch.ao.quantization import disable_observer

    from ims_runtime.toolchain.distill import DistillConfig, distill, timed

    freeze_at = steps - steps // 4
    report = timed(label)

    def progress(step: int, loss: float) -> None:
        report(step, loss)
        if step + 1 == freeze_at:  # from step freeze_at on, the ranges are fixed and the weights adapt to them
            net.apply(disable_observer)

    started = time.monotonic()
    losses = distill(net, teacher, images_bgr, DistillConfig(steps=steps, lr=lr), progress, train_mode=True)
    return {"qat_steps": steps, "observers_frozen_at": freeze_at, "lr": lr, "bn_stats": "frozen from step 0",
            "train_s": round(time.monotonic() - started, 1), "s_per_step": round((time.monotonic() - started)
                                                                                 / max(1, steps), 2),
            "distill_loss_first_last": [losses[0], losses[-1]] if losses else None, "frames": len(images_bgr)}


def export(quantized: nn.Module, out: Path, input_wh_px: tuple[int, int] | None, metadata: dict[str, Any]) -> Path:
    """Converted network → QDQ ONNX ``out`` with the FP32 export's contract (``input_wh_px=None``: dynamic
    height/width, what the ORT CPU runtime deploys; a size: static)."""
    from ims_runtime.toolchain.export import export_retinaface_module

    return export_retinaface_module(quantized, out, input_wh_px, metadata)


def make_qat(student_weights: Path, teacher_weights: Path, out: Path, images_bgr: list[np.ndarray], steps: int,
             input_wh_px: tuple[int, int] | None, metadata: dict[str, object], lr: float = 1e-4,
             keep_float: list[str] | None = None) -> dict[str, Any]:
    """Float RetinaFace weights → QAT self-distilled from the FP32 teacher on ``images_bgr`` → QDQ ONNX ``out``.

    Both weight files are LeakyReLU RetinaFace ``state_dict`` s (the recipe passes the official weights twice).
    ``keep_float``: exported node names (as in PTQ's ``keep_float``) of a float *prefix* of the backbone; the
    last one decides where quantisation starts, and every node before it must be listed too."""
    from ims_runtime.toolchain.export import retinaface_metadata

    torch.set_num_threads(THREADS)
    teacher = load_official(str(teacher_weights))
    net = quantizable_from(load_official(str(student_weights)))
    float_until = module_of_onnx_node(keep_float[-1]) if keep_float else None
    prepare(net, float_until)
    kept = {name for name, m in net.named_modules() if name.startswith("body.") and not hasattr(m, "weight_fake_quant")
            and isinstance(m, nn.Conv2d)}
    wanted = {module_of_onnx_node(n) for n in keep_float or [] if n.endswith("/Conv")}
    if kept != wanted:
        raise ValueError(f"keep_float must name a prefix of the backbone: float convs would be {sorted(kept)}, "
                         f"asked {sorted(wanted)}")
    facts = train(net, teacher, images_bgr, steps, lr=lr)
    meta = {**retinaface_metadata(student_weights), **metadata, "ims.precision": "int8",
            "ims.how_made": f"QAT (torch.ao eager), {steps} self-distillation steps from {teacher_weights.name}"}
    export(convert(net), out, input_wh_px, meta)
    return {**facts, "kept_float": keep_float or [], "engine": torch.backends.quantized.engine, "threads": THREADS}
