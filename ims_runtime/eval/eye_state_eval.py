"""Eye state against ground truth: labelled eye patches in the CEW folder layout (Closed Eyes In The Wild).

Layout: ``closedLeftEyes``, ``closedRightEyes``, ``openLeftEyes``, ``openRightEyes``, each a folder of 24x24 grey
patches (``../shared/data/cew``: research licence, **evaluation only** — nothing is ever fitted on it).

Metrics (pure functions, below): closed recall (closed patches called closed), open recall, their mean (balanced
accuracy: the two classes weigh the same whatever their counts) and the number of patches per class. A
predictor's answer is an openness 0..1; "closed" is openness < 0.5.

Framing: a CEW patch shows the eye tighter than the crops the models were made for. It is estimated (from the
patches, not fitted to any score) that a patch's side is about ``CEW_IOD_RATIO`` x the inter-ocular distance, and
each predictor gets the patch padded (replicated border) to its own crop side / inter-ocular distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors

FOLDERS = {"closedLeftEyes": (False, "left"), "closedRightEyes": (False, "right"),
           "openLeftEyes": (True, "left"), "openRightEyes": (True, "right")}
#: estimated side of a CEW patch / inter-ocular distance (an eye is ~0.75 of the patch, ~0.5 of the distance)
CEW_IOD_RATIO = 0.65


@dataclass
class EyePatches:
    """``grey`` (N, 24, 24) uint8; ``is_open`` (N,) bool; ``folder`` (N,) the CEW folder name; ``names`` (N,)."""

    grey: np.ndarray
    is_open: np.ndarray
    folder: np.ndarray
    names: np.ndarray

    def subsample(self, every: int) -> EyePatches:
        keep = np.arange(len(self.grey)) % every == 0
        return EyePatches(self.grey[keep], self.is_open[keep], self.folder[keep], self.names[keep])


def load_cew(folder: Path) -> EyePatches:
    """Every patch of the four CEW folders (sorted by name), or a coded error saying what is missing."""
    missing = [name for name in FOLDERS if not (folder / name).is_dir()]
    if missing:
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"{folder} lacks the CEW folder(s) {', '.join(missing)}",
                              "pass --cew DIR holding closedLeftEyes, closedRightEyes, openLeftEyes, openRightEyes")
    grey, is_open, names, folders = [], [], [], []
    for name, (open_, _) in FOLDERS.items():
        for path in sorted((folder / name).iterdir()):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                continue
            if image.shape != (24, 24):
                image = cv2.resize(image, (24, 24), interpolation=cv2.INTER_AREA)
            grey.append(image)
            is_open.append(open_)
            names.append(path.name)
            folders.append(name)
    if not grey or all(is_open) or not any(is_open):
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{folder}: need readable images of both classes",
                              "check the CEW folders hold .jpg eye patches")
    return EyePatches(np.stack(grey), np.array(is_open), np.array(folders), np.array(names))


def reframe(grey: np.ndarray, iod_ratio: float, size_px: int) -> np.ndarray:
    """A CEW patch (h, w) → the framing of a crop whose side is ``iod_ratio`` x the inter-ocular distance, resized
    to ``size_px``: replicate-pad (wider framing) or centre-crop (tighter)."""
    side = grey.shape[0]
    target = side * iod_ratio / CEW_IOD_RATIO
    if target >= side:
        pad = round((target - side) / 2)
        framed = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    else:
        cut = round((side - target) / 2)
        framed = grey[cut:side - cut, cut:side - cut]
    return cv2.resize(framed, (size_px, size_px), interpolation=cv2.INTER_LINEAR)


def recall_metrics(p_open: np.ndarray, is_open: np.ndarray, threshold: float = 0.5) -> dict[str, float | int]:
    """Closed recall, open recall, balanced accuracy and counts for openness ``p_open`` (N,) against ``is_open``
    (N,) bool; an eye is called open when ``p_open >= threshold``. A class with no example gives NaN recall."""
    p_open = np.asarray(p_open, dtype=np.float64)
    is_open = np.asarray(is_open, dtype=bool)
    if p_open.shape != is_open.shape:
        raise ValueError(f"shapes differ: {p_open.shape} vs {is_open.shape}")
    said_open = p_open >= threshold
    n_open, n_closed = int(is_open.sum()), int((~is_open).sum())
    open_recall = float(said_open[is_open].mean()) if n_open else float("nan")
    closed_recall = float((~said_open[~is_open]).mean()) if n_closed else float("nan")
    return {"closed_recall": closed_recall, "open_recall": open_recall,
            "balanced_accuracy": (closed_recall + open_recall) / 2, "n_closed": n_closed, "n_open": n_open}


def auc(p_open: np.ndarray, is_open: np.ndarray) -> float:
    """Area under the ROC curve of ``p_open`` separating open from closed (ties count half): threshold-free."""
    p_open = np.asarray(p_open, dtype=np.float64)
    is_open = np.asarray(is_open, dtype=bool)
    pos, neg = p_open[is_open], p_open[~is_open]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([neg, pos]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([neg, pos])[order]
    # average ranks over ties
    _, start, counts = np.unique(values, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def evaluate(p_open: np.ndarray, patches: EyePatches) -> dict[str, object]:
    """Every figure of one predictor: overall metrics, AUC, and the recall per CEW folder (left / right eyes)."""
    result: dict[str, object] = {**recall_metrics(p_open, patches.is_open), "auc": auc(p_open, patches.is_open)}
    for name, (open_, _) in FOLDERS.items():
        mask = patches.folder == name
        if mask.any():
            said_open = np.asarray(p_open)[mask] >= 0.5
            result[f"recall.{name}"] = float(said_open.mean() if open_ else (~said_open).mean())
    return result


def constant_open(patches: EyePatches) -> np.ndarray:
    """The trivial baseline: every eye open (eyes are open most of the time)."""
    return np.ones(len(patches.grey), np.float32)


def model_p_open(model, patches: EyePatches, batch: int = 2) -> np.ndarray:
    """Openness from an :class:`ims_runtime.stages.eye_state.EyeStateModel` (the runtime's own path), two patches
    per run as the stage runs them."""
    framed = np.stack([reframe(g, model.iod_ratio, model.size_px) for g in patches.grey])
    if len(framed) % batch:
        framed = np.concatenate([framed, framed[-1:].repeat(batch - len(framed) % batch, 0)])
    out = np.concatenate([model.predict_crops(framed[i:i + batch]) for i in range(0, len(framed), batch)])
    return out[:len(patches.grey)]
