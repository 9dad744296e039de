"""``ims-opt train eye-state --recipe deploy/recipes/eye-state.yaml``: label (cached), train, calibrate, export, record.

Targets: the two teachers combined into one soft "open" probability per eye — ``omz_weight`` x (1 - OMZ P(closed))
+ the rest x a logistic of the Iris eye aspect ratio centred on the standard blink threshold EAR 0.2 (Soukupová &
Čech 2016). Each teacher keeps its own decision boundary: none is taken from CEW, which is evaluation only. (A first
version fitted the Iris logistic to the OMZ teacher's decisions on the training eyes: its midpoint, EAR 0.12, made
the Iris teacher call almost nothing closed.)
Training: AdamW + one-cycle LR, soft binary cross-entropy, eyes the teachers call closed drawn more often (they
are rare in footage). Calibration: a Platt fit (scale, bias on the logit) of the un-augmented training crops to the
combined teacher's decisions, folded into the graph, so 0.5 is the decision boundary at the training data's prior
(closed eyes ~6 %: calibrated probabilities). With ``balanced_calibration`` the two classes weigh the same in that
fit instead: 0.5 is then the boundary for equal priors — more closures found, far more false ones on footage
(docs/eye-state.md has both). Seeded end to end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ims_runtime.toolchain.eye_state import augment, dataset
from ims_runtime.toolchain.eye_state.augment import AugmentRecipe
from ims_runtime.toolchain.eye_state.dataset import DataRecipe, EyeSet

MODEL_FAMILY = "eye_state"
NORMALISATION = "(pixel - 127.5) / 127.5"


@dataclass(frozen=True)
class TrainRecipe:
    seed: int = 0
    threads: int = 2
    epochs: int = 8
    #: optimiser steps per epoch (the footage + face folder is ~20k eyes; a full pass per epoch is too slow on 2 cores)
    steps_per_epoch: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    #: weight of the OMZ teacher in the combined target (the rest: the Iris teacher)
    omz_weight: float = 0.5
    #: the Iris teacher: P(open) = sigmoid((EAR - iris_ear_mid) / iris_ear_scale)
    iris_ear_mid: float = 0.2
    iris_ear_scale: float = 0.03
    #: weigh closed and open eyes the same in the Platt calibration (see the module docstring)
    balanced_calibration: bool = False
    #: share of each batch drawn from eyes the combined teacher calls closed
    closed_share: float = 0.3
    out_dir: str = "models"
    model_name: str = "eye_state_v1"
    data: DataRecipe = field(default_factory=DataRecipe)
    augment: AugmentRecipe = field(default_factory=AugmentRecipe)

    @classmethod
    def load(cls, path: Path) -> TrainRecipe:
        raw = yaml.safe_load(path.read_text()) or {}
        data = raw.pop("data", {})
        for key in ("train_videos", "val_videos", "detector_input_px", "face_folder_detector_input_px"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(data=DataRecipe(**data), augment=AugmentRecipe(**raw.pop("augment", {})), **raw)


def fit_logistic(x: np.ndarray, y: np.ndarray, balanced: bool = False, steps: int = 50) -> tuple[float, float]:
    """One-feature logistic regression ``P(y) = sigmoid(a * x + b)`` by Newton's method (a tiny ridge keeps it
    finite on separable data). ``x`` (N,), ``y`` (N,) 0/1; ``balanced``: each class weighs half, whatever its
    count. Returns (a, b)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    weight = np.ones_like(y)
    if balanced:
        n_pos = max(1.0, y.sum())
        n_neg = max(1.0, len(y) - y.sum())
        weight = np.where(y > 0.5, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    xs = np.stack([x, np.ones_like(x)], 1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xs @ w, -30, 30)))
        grad = xs.T @ (weight * (p - y)) + 1e-6 * w
        hess = (xs * (weight * p * (1 - p))[:, None]).T @ xs + 1e-6 * np.eye(2)
        w -= np.linalg.solve(hess, grad)
    return float(w[0]), float(w[1])


@dataclass(frozen=True)
class Teacher:
    """The combined teacher: ``p_open = omz_weight * (1 - p_closed_omz) + (1 - omz_weight) * sigmoid(a * ear + b)``."""

    omz_weight: float
    iris_a: float
    iris_b: float

    @classmethod
    def from_recipe(cls, recipe: TrainRecipe) -> Teacher:
        return cls(recipe.omz_weight, 1 / recipe.iris_ear_scale, -recipe.iris_ear_mid / recipe.iris_ear_scale)

    def iris_p_open(self, ear: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.iris_a * np.asarray(ear, np.float64) + self.iris_b)))

    def p_open(self, p_closed_omz: np.ndarray, ear: np.ndarray) -> np.ndarray:
        return (self.omz_weight * (1 - np.asarray(p_closed_omz, np.float64))
                + (1 - self.omz_weight) * self.iris_p_open(ear)).astype(np.float32)

    def as_dict(self) -> dict[str, float]:
        return {"omz_weight": self.omz_weight, "iris_logistic_a": round(self.iris_a, 4),
                "iris_logistic_b": round(self.iris_b, 4), "iris_ear_at_p_0_5": round(-self.iris_b / self.iris_a, 4)}


def _batch(eyes: EyeSet, idx: np.ndarray, recipe: TrainRecipe, rng: np.random.Generator) -> np.ndarray:
    s = recipe.data.crop_size_px
    out = np.empty((len(idx), 1, s, s), np.float32)
    for j, i in enumerate(idx):
        crop = augment.photometric(augment.geometric(eyes.wide[i], s, recipe.augment, rng), recipe.augment, rng)
        out[j, 0] = (crop.astype(np.float32) - 127.5) / 127.5
    return out


def centre_tensors(wide: np.ndarray, size_px: int) -> np.ndarray:
    """(N, 2S, 2S) wide crops → (N, 1, S, S) float32 runtime crops (the centres), normalised."""
    lo = (wide.shape[1] - size_px) // 2
    return ((wide[:, None, lo:lo + size_px, lo:lo + size_px].astype(np.float32) - 127.5) / 127.5)


def logits(net, tensors: np.ndarray, batch: int = 512) -> np.ndarray:
    import torch

    net.eval()
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(tensors[i:i + batch])).numpy().ravel()
                               for i in range(0, len(tensors), batch)])


def held_apart_agreement(p_open_model: np.ndarray, eyes: EyeSet, teacher: Teacher) -> dict[str, float | int]:
    """Per-eye agreement of the model's decisions (open ≥ 0.5) with each teacher's on held-apart eyes, and how many
    eyes each calls closed. Per frame = per eye of each face in that frame."""
    combined = teacher.p_open(eyes.p_closed_omz, eyes.ear_iris) >= 0.5
    omz = eyes.p_closed_omz < 0.5
    model = p_open_model >= 0.5
    result: dict[str, float | int] = {"eyes": len(model), "model_closed": int((~model).sum()),
                                      "teacher_combined_closed": int((~combined).sum()),
                                      "teacher_omz_closed": int((~omz).sum())}
    for name, ref in (("combined", combined), ("omz", omz)):
        result[f"agreement_with_{name}_pct"] = round(100 * float((model == ref).mean()), 2)
        result[f"closed_recall_vs_{name}"] = round(float((~model[~ref]).mean()), 4) if (~ref).any() else float("nan")
        result[f"open_recall_vs_{name}"] = round(float(model[ref].mean()), 4) if ref.any() else float("nan")
    result["agreement_teachers_pct"] = round(100 * float((combined == omz).mean()), 2)
    return result


def train(recipe: TrainRecipe, shared: Path, recipe_path: Path | None = None, log=print) -> dict:
    import torch
    import torch.nn.functional as F

    from ims_runtime.toolchain.export import export_onnx
    from ims_runtime.toolchain.eye_state.model import (
        OUTPUT_NAME,
        EyeStateExport,
        EyeStateNet,
        count_macs,
        count_params,
    )
    from ims_runtime.toolchain.manifest import record

    t_start = time.monotonic()
    torch.set_num_threads(recipe.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(recipe.threads))
    eyes, label_path, data_facts = dataset.build(shared, recipe.data, log)
    teacher = Teacher.from_recipe(recipe)
    target = teacher.p_open(eyes.p_closed_omz, eyes.ear_iris)
    train_idx = np.flatnonzero(eyes.split == "train")
    closed_idx = train_idx[target[train_idx] < 0.5]
    open_idx = train_idx[target[train_idx] >= 0.5]
    log(f"training on {len(train_idx)} eyes ({len(closed_idx)} called closed by the combined teacher; "
        f"{data_facts['eyes_from_face_folder']} from the face folder), held apart: {data_facts['eyes_val']} eyes of "
        f"{data_facts['clips_val']}; teacher {teacher.as_dict()}")

    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    net = EyeStateNet()
    steps = recipe.steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps,
                                                pct_start=0.2)
    n_closed = round(recipe.batch_size * recipe.closed_share)
    for epoch in range(recipe.epochs):
        net.train()
        total = 0.0
        for _ in range(steps):
            idx = np.concatenate([rng.choice(closed_idx, n_closed), rng.choice(open_idx, recipe.batch_size - n_closed)])
            x = torch.from_numpy(_batch(eyes, idx, recipe, rng))
            loss = F.binary_cross_entropy_with_logits(net(x).ravel(), torch.from_numpy(target[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() / steps
        log(f"epoch {epoch + 1}/{recipe.epochs} loss {total:.4f} ({time.monotonic() - t_start:.0f} s)")

    s = recipe.data.crop_size_px
    train_logits = logits(net, centre_tensors(eyes.wide[train_idx], s))
    scale, bias = fit_logistic(train_logits, target[train_idx] >= 0.5, recipe.balanced_calibration)
    log(f"calibration: openness = sigmoid({scale:.3f} * logit + {bias:.3f})")

    out_dir = Path(recipe.out_dir)
    out_path = out_dir / f"{recipe.model_name}.onnx"
    n_params, macs = count_params(net), count_macs(net, s)
    licences = ["Apache-2.0: Intel OMZ open-closed-eye-0001 and MediaPipe Iris (teachers)",
                "Pexels licence: data/videos footage"]
    if data_facts["eyes_from_face_folder"]:
        licences.append(recipe.data.face_folder_licence)
    meta = {"ims.model_family": MODEL_FAMILY, "ims.input_color": "grey (BGR frames converted, NIR as is)",
            "ims.input_normalisation": NORMALISATION, "ims.input_layout": "NCHW", "ims.input_size_wh": [s, s],
            "ims.eye_crop_iod_ratio": repr(recipe.data.iod_ratio),
            "ims.eye_crop": "square centred on a RetinaFace eye landmark, side = eye_crop_iod_ratio x the inter-ocular "
                            "distance, rotated so the eye line is level (ims_runtime/stages/eye_state.py)",
            "ims.outputs": f"{OUTPUT_NAME} (N, 1): calibrated openness, 0 closed … 1 open, 0.5 = decision boundary",
            "ims.precision": "fp32", "ims.teachers": "Intel OMZ open-closed-eye-0001; MediaPipe Iris (Apache-2.0)",
            "ims.training_data_licences": "; ".join(licences), "ims.params": n_params, "ims.macs_per_eye": macs}
    export_onnx(EyeStateExport(net, scale, bias), torch.zeros(2, 1, s, s), out_path, input_name="eyes",
                output_names=[OUTPUT_NAME], dynamic_axes=None, metadata=meta)

    val = eyes.subset(eyes.split == "val")
    validation = held_apart_agreement(_onnx_p_open(out_path, val.wide, s), val, teacher) if len(val.wide) else {}
    log(f"held apart ({data_facts['clips_val']}): {validation}")
    minutes = (time.monotonic() - t_start) / 60
    entry = record(out_dir / "manifest.json", out_path, recipe=f"ims-opt train eye-state --recipe {recipe_path}",
                   how_made="trained by the project's own code (ims_runtime/toolchain/eye_state), distilled from "
                            "the teachers on eye crops placed from RetinaFace landmarks",
                   precision="fp32", input={"name": "eyes", "shape": [2, 1, s, s], "color": "grey",
                                            "normalisation": NORMALISATION, "eye_crop_iod_ratio": recipe.data.iod_ratio},
                   outputs=[OUTPUT_NAME], params=n_params, macs_per_eye=macs, seed=recipe.seed,
                   epochs=recipe.epochs, teachers=meta["ims.teachers"], teacher_combination=teacher.as_dict(),
                   calibration={"scale": round(scale, 4), "bias": round(bias, 4),
                                "balanced_classes": recipe.balanced_calibration},
                   training_data_licences=licences, data={**data_facts, "label_cache": label_path.name},
                   validation_held_apart=validation, train_minutes=round(minutes, 1))
    log(f"wrote {out_path} ({entry['size_bytes']} B, sha256 {entry['sha256'][:16]}…, {n_params} params, "
        f"{macs / 1e6:.2f} MMAC per eye) in {minutes:.1f} min")
    return entry


def _onnx_p_open(model_path: Path, wide: np.ndarray, size_px: int) -> np.ndarray:
    """Openness of every (wide) crop's centre through the exported file, via the runtime's own model class."""
    from ims_runtime.backends.ort_cpu import OrtCpuConfig
    from ims_runtime.stages.eye_state import EyeStateModel

    model = EyeStateModel.open(str(model_path.resolve()), None, [OrtCpuConfig(type="ort_cpu", threads=1)])
    lo = (wide.shape[1] - size_px) // 2
    crops = wide[:, lo:lo + size_px, lo:lo + size_px]
    if len(crops) % 2:
        crops = np.concatenate([crops, crops[-1:]])
    out = np.concatenate([model.predict_crops(np.ascontiguousarray(crops[i:i + 2])) for i in range(0, len(crops), 2)])
    return out[:len(wide)]
