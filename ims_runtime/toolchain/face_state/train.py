"""``ims-opt train face-state --recipe deploy/recipes/face-state.yaml``: label (cached), train, export, evaluate, record.

Seeded end to end (numpy generator for augmentation and order, torch seed for initialisation and dropout), one or
two CPU threads. Writes ``<out_dir>/face_state_v1.onnx`` and its record in ``<out_dir>/manifest.json``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ims_runtime.stages.alignment import image_to_crop_angles
from ims_runtime.toolchain.face_state import augment, dataset, evaluate
from ims_runtime.toolchain.face_state.augment import AugmentRecipe
from ims_runtime.toolchain.face_state.dataset import DataRecipe, LabelledFaces


@dataclass(frozen=True)
class Targets:
    """How teacher aspect ratios become 0..1 openness: linear between a 'closed' and an 'open' ratio."""

    ear_closed: float = 0.12
    ear_open: float = 0.30
    mar_closed: float = 0.05
    mar_open: float = 0.45
    #: thresholds of the agreement metrics (openness 0..1)
    eye_closed_below: float = 0.25
    mouth_open_above: float = 0.5


@dataclass(frozen=True)
class TrainRecipe:
    seed: int = 0
    threads: int = 2
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: float = 1.0
    out_dir: str = "models"
    model_name: str = "face_state_v1"
    #: the exported model's ``ims.licence`` and the manifest's: the weights inherit their training data's terms
    weights_licence: str = "Apache-2.0 (the project's own weights)"
    #: per training source, its licence (manifest ``training_data_licences``)
    training_data_licences: dict = field(default_factory=dict)
    data: DataRecipe = field(default_factory=DataRecipe)
    augment: AugmentRecipe = field(default_factory=AugmentRecipe)
    targets: Targets = field(default_factory=Targets)

    @classmethod
    def load(cls, path: Path) -> TrainRecipe:
        raw = yaml.safe_load(path.read_text()) or {}
        data = raw.pop("data", {})
        for key in ("train_videos", "val_videos", "detector_input_px", "face_folders",
                    "face_folder_detector_input_px"):
            if key in data:
                data[key] = tuple(data[key])
        augment_raw = raw.pop("augment", {})
        if "landmark_offset_px" in augment_raw:
            augment_raw["landmark_offset_px"] = tuple(tuple(p) for p in augment_raw["landmark_offset_px"])
        return cls(data=DataRecipe(**data), augment=AugmentRecipe(**augment_raw),
                   targets=Targets(**raw.pop("targets", {})), **raw)


def crop_frame_targets(faces: LabelledFaces, t: Targets) -> np.ndarray:
    """Teacher labels (image frame, aspect ratios) → training targets (crop frame, openness 0..1); NaN rows
    (negatives) stay NaN except the face score."""
    out = faces.labels.copy()
    for i, row in enumerate(faces.labels):
        if np.isnan(row[0]):
            continue
        gaze, head = image_to_crop_angles((float(row[0]), float(row[1])), (float(row[2]), float(row[3]),
                                                                          float(row[4])), float(faces.roll_deg[i]))
        out[i, 0:2], out[i, 2:5] = gaze, head
    out[:, 5:8] = openness(faces.labels, t)
    out[:, 8] = (faces.labels[:, 8] > 0).astype(np.float32)
    return out


def image_frame_targets(faces: LabelledFaces, t: Targets) -> np.ndarray:
    """Teacher labels in the image frame with openness 0..1 (what evaluation compares against)."""
    out = faces.labels.copy()
    out[:, 5:8] = openness(faces.labels, t)
    return out


def openness(labels: np.ndarray, t: Targets) -> np.ndarray:
    """(N, 9) teacher labels → (N, 3) left eye, right eye, mouth openness 0..1 (linear between the recipe's ratios)."""
    eyes = np.clip((labels[:, 5:7] - t.ear_closed) / (t.ear_open - t.ear_closed), 0, 1)
    mouth = np.clip((labels[:, 7:8] - t.mar_closed) / (t.mar_open - t.mar_closed), 0, 1)
    return np.concatenate([eyes, mouth], axis=1)


def source_group(clip: str) -> str:
    """The source a face comes from: the clip name, or the folder for face-folder photos ('utkface/…' → 'utkface')."""
    return clip.split("/", 1)[0]


def evaluate_held_apart(model_path: Path, faces: LabelledFaces, recipe: TrainRecipe) -> dict[str, dict]:
    """Every validation figure of ``model_path`` on the recipe's held-apart faces, per source (the held-apart clip;
    each face folder's validation files), see evaluate.py."""
    val_groups = np.array([source_group(c) for c in faces.clip.tolist()])
    return {group: _evaluate_group(model_path, faces, (faces.split == "val") & (val_groups == group), recipe)
            for group in sorted(set(val_groups[faces.split == "val"].tolist()))}


def _evaluate_group(model_path: Path, faces: LabelledFaces, is_val: np.ndarray, recipe: TrainRecipe) -> dict:
    val = faces.subset(is_val)
    mask = ~np.isnan(val.labels[:, 0])
    target = image_frame_targets(val, recipe.targets)
    pred = evaluate.predict(model_path, val, recipe.data.crop_size_px, recipe.data.margin_px)
    train_faces = faces.subset((faces.split == "train") & ~np.isnan(faces.labels[:, 0]))
    result = evaluate.metrics(pred[mask], target[mask], image_frame_targets(train_faces, recipe.targets).mean(0),
                              recipe.targets.eye_closed_below, recipe.targets.mouth_open_above)
    result["confidence_auc"] = evaluate.auc(pred[mask, 8], pred[~mask, 8])
    result.update(evaluate.jitter(pred[mask], target[mask], val.subset(mask)))
    return result


def _batch(faces: LabelledFaces, targets: np.ndarray, idx: np.ndarray, recipe: TrainRecipe,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s, m = recipe.data.crop_size_px, recipe.data.margin_px
    xs, ys = [], []
    for i in idx:
        crop, labels = augment.geometric(faces.crops[i], targets[i], s, m, recipe.augment, rng)
        xs.append(augment.to_tensor_layout(augment.photometric(crop, recipe.augment, rng)))
        ys.append(labels)
    return np.stack(xs), np.stack(ys).astype(np.float32)


def loss_fn(raw, target):
    """Raw (N, 9) head vs crop-frame targets. Angles in units of 10 degrees (smooth L1), openness and confidence
    as soft binary cross-entropy. Negatives (NaN targets) only train the confidence."""
    import torch
    import torch.nn.functional as F

    from ims_runtime.toolchain.face_state.model import HEAD_SCALE_DEG

    is_face = ~torch.isnan(target[:, 0])
    conf = F.binary_cross_entropy_with_logits(raw[:, 8], target[:, 8])
    if not is_face.any():
        return conf, {}
    r, t = raw[is_face], target[is_face]
    gaze = F.smooth_l1_loss(torch.rad2deg(r[:, 0:2]) / 10, torch.rad2deg(t[:, 0:2]) / 10)
    head = F.smooth_l1_loss(r[:, 2:5] * HEAD_SCALE_DEG / 10, t[:, 2:5] / 10)
    open_ = F.binary_cross_entropy_with_logits(r[:, 5:8], t[:, 5:8])
    parts = {"gaze": gaze.item(), "head": head.item(), "open": open_.item(), "conf": conf.item()}
    return gaze + head + 2 * open_ + 0.5 * conf, parts


def train(recipe: TrainRecipe, shared: Path, recipe_path: Path | None = None, log=print) -> dict:
    import torch

    from ims_runtime.toolchain.export import export_onnx
    from ims_runtime.toolchain.face_state.model import (
        OUTPUT_NAMES,
        FaceStateExport,
        FaceStateNet,
        count_macs,
        count_params,
    )
    from ims_runtime.toolchain.manifest import record

    t_start = time.monotonic()
    torch.set_num_threads(recipe.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(recipe.threads))
    faces, label_path, data_facts = dataset.build(shared, recipe.data, log)
    targets = crop_frame_targets(faces, recipe.targets)
    train_idx = np.flatnonzero(faces.split == "train")
    log(f"training on {len(train_idx)} crops ({data_facts['faces_train']} faces), validating on "
        f"{data_facts['faces_val']} faces of {data_facts['clips_val']}")

    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    net = FaceStateNet(width=recipe.width)
    steps_per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
                                                pct_start=0.15)
    for epoch in range(recipe.epochs):
        net.train()
        order = rng.permutation(train_idx)
        sums: dict[str, float] = {}
        for b in range(steps_per_epoch):
            x, y = _batch(faces, targets, order[b * recipe.batch_size:(b + 1) * recipe.batch_size], recipe, rng)
            loss, parts = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / steps_per_epoch
        log(f"epoch {epoch + 1}/{recipe.epochs} " + " ".join(f"{k} {v:.3f}" for k, v in sums.items())
            + f" ({time.monotonic() - t_start:.0f} s)")

    out_dir = Path(recipe.out_dir)
    out_path = out_dir / f"{recipe.model_name}.onnx"
    s = recipe.data.crop_size_px
    n_params, macs = count_params(net), count_macs(net, s)
    meta = {"ims.model_family": "face_state", "ims.input_color": "bgr (grey/NIR: replicate to 3 channels)",
            "ims.input_normalisation": "(pixel - 127.5) / 127.5", "ims.input_layout": "NCHW",
            "ims.input_size_wh": [s, s], "ims.alignment": "5-point similarity to the symmetric 112 template "
            "(ims_runtime/stages/alignment.py)", "ims.outputs": ", ".join(OUTPUT_NAMES) + " (angles in the aligned "
            "crop's frame: yaw > 0 toward the image's right, pitch > 0 up, roll > 0 clockwise)",
            "ims.precision": "fp32", "ims.licence": recipe.weights_licence,
            "ims.teachers": "MediaPipe FaceMesh (Apache-2.0); Intel OMZ head-pose-estimation-adas-0001, "
                            "gaze-estimation-adas-0002 (Apache-2.0)", "ims.params": n_params, "ims.macs": macs}
    export_onnx(FaceStateExport(net), torch.zeros(1, 3, s, s), out_path, input_name="face",
                output_names=OUTPUT_NAMES, dynamic_axes=None, metadata=meta)

    result = evaluate_held_apart(out_path, faces, recipe)
    for group, figures in result.items():
        log(f"held apart: {group}\n{evaluate.format_table(figures)}")
    minutes = (time.monotonic() - t_start) / 60
    entry = record(out_dir / "manifest.json", out_path, recipe=f"ims-opt train face-state --recipe {recipe_path}",
                   precision="fp32", input={"name": "face", "shape": [1, 3, s, s], "color": "bgr",
                                            "normalisation": "(pixel - 127.5) / 127.5"},
                   outputs=OUTPUT_NAMES, params=n_params, macs=macs, seed=recipe.seed, epochs=recipe.epochs,
                   teachers=meta["ims.teachers"], data={**data_facts, "label_cache": label_path.name},
                   validation={g: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                               for g, r in result.items()},
                   weights_licence=recipe.weights_licence, training_data_licences=recipe.training_data_licences,
                   train_minutes=round(minutes, 1))
    log(f"wrote {out_path} ({entry['size_bytes']} B, sha256 {entry['sha256'][:16]}…, {n_params} params, "
        f"{macs / 1e6:.1f} MMAC) in {minutes:.1f} min")
    return entry
