"""Self-distillation on unlabelled footage: a student RetinaFace learns to reproduce the FP32 teacher's outputs.

No labels are needed (the footage has none, and WIDER is evaluation-only): the teacher's dense outputs on every
anchor are the targets. Used to recover accuracy after a change the teacher did not have — LeakyReLU → ReLU (so
INT8 ReLU fuses into QLinearConv), channel pruning, or fake quantisation (QAT).

Data: frames of the *calibration/training* clips, letterboxed by the runtime's own ``Letterboxer`` after a random
down-scale (so small faces appear, as in WIDER), random horizontal flip and random grey (NIR look). Batches are
random ``crop_wh_px`` crops of those canvases (a CNN is size-agnostic; crops keep each step cheap on 2 cores).

Loss, per anchor: binary cross-entropy between student and teacher face probability, plus smooth-L1 on box and
landmark offsets weighted by the teacher's face probability (offsets of background anchors are meaningless).
BatchNorm statistics stay frozen (student in eval mode): a few hundred small batches cannot re-estimate them well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ims_runtime.stages.face_detector import Letterboxer


@dataclass(frozen=True)
class DistillConfig:
    steps: int = 400
    batch: int = 8
    lr: float = 1e-3
    crop_wh_px: tuple[int, int] = (320, 192)
    canvas_wh_px: tuple[int, int] = (640, 384)
    min_scale: float = 0.25
    seed: int = 0
    threads: int = 1


def augmented_canvases(images_bgr: list[np.ndarray], config: DistillConfig, rng: np.random.Generator,
                       count: int) -> np.ndarray:
    """``count`` letterboxed canvases (count, 3, H, W) float32 from random frames, scales, flips and grey."""
    letterbox = Letterboxer(config.canvas_wh_px)
    w, h = config.canvas_wh_px
    out = np.empty((count, 3, h, w), dtype=np.float32)
    for i in range(count):
        image = images_bgr[int(rng.integers(len(images_bgr)))]
        scale = float(rng.uniform(config.min_scale, 1.0))
        if scale < 1.0:  # shrink the frame inside the canvas: smaller faces, like the WIDER crowd shots
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = np.full_like(image, (104, 117, 123))
            y = int(rng.integers(image.shape[0] - small.shape[0] + 1))
            x = int(rng.integers(image.shape[1] - small.shape[1] + 1))
            canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
            image = canvas
        if rng.random() < 0.5:
            image = image[:, ::-1]
        if rng.random() < 0.3:
            image = cv2.cvtColor(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        out[i] = letterbox(np.ascontiguousarray(image))[0][0]
    return out


def distillation_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Dense loss over anchors; both tuples are eval-mode ``(loc, conf softmax, landms)``."""
    s_loc, s_conf, s_lm = student
    t_loc, t_conf, t_lm = teacher
    t_face = t_conf[..., 1]
    s_face = s_conf[..., 1].clamp(1e-6, 1 - 1e-6)
    per_anchor = F.binary_cross_entropy(s_face, t_face, reduction="none")
    # mean over all anchors is dominated by easy background; the face-weighted term keeps the scores of real
    # faces calibrated (recall at the operating threshold depends on them)
    cls = per_anchor.mean() + (per_anchor * t_face).sum() / (t_face.sum() + 1.0)
    weight = (t_face + 0.01)[..., None]
    reg = (F.smooth_l1_loss(s_loc, t_loc, reduction="none", beta=0.1) * weight).sum() / weight.sum() / 4
    lm = (F.smooth_l1_loss(s_lm, t_lm, reduction="none", beta=0.1) * weight).sum() / weight.sum() / 10
    return 4.0 * cls + reg + 0.5 * lm


def distill(student: nn.Module, teacher: nn.Module, images_bgr: list[np.ndarray], config: DistillConfig,
            progress: Callable[[int, float], None] | None = None, train_mode: bool = False) -> list[float]:
    """Fine-tune ``student`` in place towards ``teacher`` for ``config.steps`` steps; returns the loss curve.

    ``train_mode=True`` keeps the student in train mode (needed by QAT's observers/fake-quant); its outputs are
    then raw class logits, which are softmaxed here so the loss is the same.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    teacher.eval()
    student.train(train_mode)
    params = [p for p in student.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
    cw, ch = config.crop_wh_px
    losses: list[float] = []
    pool = augmented_canvases(images_bgr, config, rng, max(config.batch * 4, 32))
    for step in range(config.steps):
        if step and step % 25 == 0:  # refresh part of the pool: new scales/flips without decoding per step
            fresh = augmented_canvases(images_bgr, config, rng, config.batch)
            pool[rng.choice(len(pool), config.batch, replace=False)] = fresh
        picks = rng.choice(len(pool), config.batch, replace=False)
        ys = rng.integers(0, config.canvas_wh_px[1] - ch + 1, config.batch) // 32 * 32
        xs = rng.integers(0, config.canvas_wh_px[0] - cw + 1, config.batch) // 32 * 32
        batch = torch.from_numpy(np.stack([pool[p, :, y:y + ch, x:x + cw] for p, y, x in zip(picks, ys, xs)]))
        with torch.no_grad():
            target = teacher(batch)
        out = student(batch)
        if train_mode:
            out = (out[0], F.softmax(out[1], dim=-1), out[2])
        loss = distillation_loss(out, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
    student.eval()
    return losses


def relu_variant(model: nn.Module) -> nn.Module:
    """Replace every LeakyReLU by ReLU in place (INT8 ReLU fuses into QLinearConv on ORT CPU; LeakyReLU does not)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.LeakyReLU):
                setattr(module, name, nn.ReLU(inplace=True))
    return model


def timed(label: str) -> Callable[[int, float], None]:
    """A progress callback printing the loss every 50 steps with elapsed time."""
    start = time.monotonic()

    def report(step: int, loss: float) -> None:
        if step % 50 == 0:
            print(f"  {label}: step {step} loss {loss:.4f} ({time.monotonic() - start:.0f} s)", flush=True)

    return report
