"""Structured pruning and quantisation-aware training of the face-state network, both fine-tuned by
self-distillation from the FP32 model on unlabelled aligned crops of the calibration footage.

The project ships the FP32 network as ONNX (BatchNorm already folded into the convolutions), so both start from
:func:`folded_net_from_onnx`: the same architecture with each conv carrying its folded bias and no BatchNorm.
That is the function the runtime runs; it also means there are no BatchNorm statistics to re-estimate or freeze
(the usual late "freeze BN" step of QAT is a no-op here by construction).

* **Pruning** (torch-pruning, a maintained library for dependency-aware channel removal): L2-magnitude
  importance, the same ratio on every prunable layer, the 9-output layer kept. Channels are really removed
  (depthwise convs follow their input), so parameters and MACs drop.
* **QAT**: PyTorch's eager ``torch.ao.quantization`` path (docs/platform-notes.md): explicit QConfig —
  FakeQuantize with MovingAverageMinMaxObserver quint8 per-tensor activations, per-channel symmetric qint8
  weights — ``fuse_modules_qat`` (conv+ReLU, linear+ReLU), ``prepare_qat``, distillation training, observers
  frozen for the last quarter of the steps, ``convert``, ``torch.onnx.export(..., dynamo=False)`` → a
  QuantizeLinear/DequantizeLinear graph ONNX Runtime fuses into QLinearConv.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ims_runtime.toolchain.face_state.model import OUTPUT_NAMES, FaceStateExport, count_macs, count_params
from ims_runtime.toolchain.qat import qat_qconfig, select_quantized_engine

THREADS = 1  # the build machine's 2 cores are shared; one thread keeps a build polite and deterministic


class FoldedFaceStateNet(nn.Module):
    """:class:`~.model.FaceStateNet` with BatchNorm folded: ``features`` is a list of (Conv2d with bias, ReLU)
    pairs, ``head`` is Flatten, Linear, ReLU, Dropout, Linear. ``forward`` returns the raw (N, 9) head."""

    def __init__(self, convs: list[nn.Conv2d], head: tuple[nn.Linear, nn.Linear]) -> None:
        super().__init__()
        self.features = nn.Sequential(*[nn.Sequential(c, nn.ReLU()) for c in convs])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), head[0], nn.ReLU(), nn.Dropout(0.0), head[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def folded_net_from_onnx(path: Path) -> FoldedFaceStateNet:
    """Rebuild the float network from an exported face-state ONNX (any channel counts: pruned ones too)."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs: list[nn.Conv2d] = []
    linears: list[nn.Linear] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight, bias = inits[node.input[1]], inits[node.input[2]]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            groups = int(attrs.get("group", 1))
            conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2],
                             int(attrs.get("strides", [1])[0]), int(attrs.get("pads", [0])[0]), groups=groups)
            conv.weight.data = torch.from_numpy(weight.copy())
            conv.bias.data = torch.from_numpy(bias.copy())
            convs.append(conv)
        elif node.op_type == "Gemm":
            weight, bias = inits[node.input[1]], inits[node.input[2]]
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data = torch.from_numpy(weight.copy())
            linear.bias.data = torch.from_numpy(bias.copy())
            linears.append(linear)
    if len(linears) != 2 or not convs:
        raise ValueError(f"{path}: not a face-state network (convs {len(convs)}, linear layers {len(linears)})")
    return FoldedFaceStateNet(convs, (linears[0], linears[1])).eval()


def prune(net: FoldedFaceStateNet, ratio: float, crop_size_px: int) -> FoldedFaceStateNet:
    """Remove ``ratio`` of the channels of every prunable layer (in place; returns ``net``).

    Channel counts are rounded to multiples of 8: measured, a first run without rounding (11, 22, 44, 89, 179
    channels) halved the MACs but was 2.4x *slower* on ORT CPU (its blocked NCHWc kernels want multiples of 8)."""
    import torch_pruning as tp

    example = torch.zeros(1, 3, crop_size_px, crop_size_px)
    pruner = tp.pruner.MetaPruner(net, example, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=[net.head[-1]], round_to=8)
    pruner.step()
    return net


def augmented_batch(wide_crops: np.ndarray, batch: int, crop_size_px: int, margin_px: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """Random wide crops → (B, 3, S, S) network input: shift within the margin, horizontal flip, brightness and
    contrast, sometimes grey (NIR-like). Labels come from the teacher on the same input, so any augmentation is
    consistent."""
    s, m = crop_size_px, margin_px
    picks = rng.integers(0, len(wide_crops), batch)
    out = np.empty((batch, 3, s, s), np.float32)
    for j, i in enumerate(picks):
        dx, dy = rng.integers(-m // 2, m // 2 + 1, 2)
        crop = wide_crops[i, m + dy:m + dy + s, m + dx:m + dx + s].astype(np.float32)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:
            crop = np.repeat(crop.mean(2, keepdims=True), 3, 2)
        crop = np.clip((crop - 127.5) * rng.uniform(0.7, 1.3) + 127.5 + rng.uniform(-30, 30), 0, 255)
        out[j] = (crop.transpose(2, 0, 1) - 127.5) / 127.5
    return torch.from_numpy(out)


def distill(student: nn.Module, teacher: nn.Module, wide_crops: np.ndarray, steps: int, crop_size_px: int,
            margin_px: int, lr: float = 1e-3, batch: int = 32, seed: int = 0,
            on_step: Any = None) -> list[float]:
    """Fit the student's raw (N, 9) head to the teacher's (smooth L1), Adam with cosine decay. Returns losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    teacher.eval()
    optimiser = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, steps))
    losses = []
    for step in range(steps):
        if on_step is not None:
            on_step(step)
        x = augmented_batch(wide_crops, batch, crop_size_px, margin_px, rng)
        with torch.no_grad():
            target = teacher(x)
        student.train()
        loss = nn.functional.smooth_l1_loss(student(x), target, beta=0.1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses


def _export(module: nn.Module, out: Path, crop_size_px: int, metadata: dict[str, object]) -> None:
    from ims_runtime.toolchain.export import export_onnx

    export_onnx(module, torch.zeros(1, 3, crop_size_px, crop_size_px), out, input_name="face",
                output_names=OUTPUT_NAMES, dynamic_axes=None, metadata=metadata)


def make_pruned(fp32_onnx: Path, out: Path, wide_crops: np.ndarray, ratio: float, steps: int, crop_size_px: int,
                margin_px: int) -> dict[str, Any]:
    """FP32 ONNX → prune ``ratio`` of the channels → distil ``steps`` from the FP32 model → float ONNX ``out``."""
    torch.set_num_threads(THREADS)
    teacher = folded_net_from_onnx(fp32_onnx)
    student = folded_net_from_onnx(fp32_onnx)
    before = {"params": count_params(student), "macs": count_macs(student, crop_size_px)}
    prune(student, ratio, crop_size_px)
    after = {"params": count_params(student), "macs": count_macs(student, crop_size_px)}
    started = time.monotonic()
    losses = distill(student, teacher, wide_crops, steps, crop_size_px, margin_px)
    _export(FaceStateExport(student), out, crop_size_px,
            {"ims.model_family": "face_state", "ims.precision": "fp32",
             "ims.how_made": f"face_state_v1 pruned {ratio:.0%} (torch-pruning, L2), {steps} distillation steps"})
    return {"prune_ratio": ratio, "before": before, "after": after, "distill_steps": steps,
            "distill_s": round(time.monotonic() - started, 1), "distill_loss_first_last": [losses[0], losses[-1]]
            if losses else None, "faces": len(wide_crops)}


class QuantWrapped(nn.Module):
    """QuantStub → folded network → DeQuantStub; the output scaling and sigmoids stay float (as in PTQ)."""

    def __init__(self, net: FoldedFaceStateNet) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.net = net
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.net(self.quant(x)))


def make_qat(fp32_onnx: Path, out: Path, wide_crops: np.ndarray, steps: int, crop_size_px: int, margin_px: int,
             metadata: dict[str, object]) -> dict[str, Any]:
    """FP32 ONNX → QAT with self-distillation from it → converted INT8 → QDQ ONNX ``out``."""
    from torch.ao.quantization import convert, disable_observer, fuse_modules_qat, prepare_qat

    torch.set_num_threads(THREADS)
    select_quantized_engine()
    teacher = folded_net_from_onnx(fp32_onnx)
    net = folded_net_from_onnx(fp32_onnx)
    model = QuantWrapped(net)
    model.train()
    fuse_modules_qat(model, [[f"net.features.{i}.0", f"net.features.{i}.1"] for i in range(len(net.features))]
                     + [["net.head.1", "net.head.2"]], inplace=True)
    model.qconfig = qat_qconfig()
    prepare_qat(model, inplace=True)
    freeze_at = steps - steps // 4  # last quarter: observers frozen, the weights adapt to fixed ranges

    def on_step(step: int) -> None:
        if step == freeze_at:
            model.apply(disable_observer)

    started = time.monotonic()
    # a smaller rate than pruning's fine-tune: the network is already right, only its rounding must be learnt
    losses = distill(model, teacher, wide_crops, steps, crop_size_px, margin_px, lr=2e-4, on_step=on_step)
    model.eval()
    quantized = convert(model, inplace=False)
    # the TorchScript exporter (dynamo=False) writes quantized modules as QuantizeLinear/DequantizeLinear pairs
    _export(FaceStateExport(quantized), out, crop_size_px,
            {**metadata, "ims.model_family": "face_state", "ims.precision": "int8",
             "ims.how_made": f"QAT (torch.ao eager), {steps} self-distillation steps from face_state_v1"})
    return {"qat_steps": steps, "observers_frozen_at": freeze_at, "train_s": round(time.monotonic() - started, 1),
            "distill_loss_first_last": [losses[0], losses[-1]] if losses else None, "faces": len(wide_crops),
            "engine": torch.backends.quantized.engine}
