"""Detector accuracy against WIDER-style ground truth: recall at IoU 0.5 and average precision.

Ground truth format (``../shared/data/widerface_val_subset/gt.txt``): per image a path line, a count line, then
``x y w h blur occlusion invalid subset`` lines in image pixels (subset: easy / medium / hard / ignore).

Protocol (close to the official WIDER evaluation, simplified to one IoU threshold):
* faces that are ``invalid``, in the ``ignore`` subset or shorter than ``min_height_px`` are *ignore regions*:
  a detection matching one (IoU ≥ 0.5) counts neither as a true nor as a false positive;
* each remaining face is matched at most once, greedily by detection score;
* AP is the area under the all-point interpolated precision/recall curve over every detection above a low
  score floor; recall is reported at the spec's operating ``score_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors, inputs
from ims_runtime.stages._retinaface_decode import iou_xyxy
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.types import Frame

IOU_MATCH = 0.5
#: detections below this score are not scored at all (the AP curve's tail)
SCORE_FLOOR = 0.02


@dataclass
class GroundTruthImage:
    path: str
    boxes_xyxy_px: np.ndarray  # (M, 4)
    subsets: list[str]
    invalid: np.ndarray  # (M,) bool

    def counted(self, min_height_px: float) -> np.ndarray:
        """(M,) bool: the faces that count (valid, not 'ignore', at least ``min_height_px`` tall)."""
        heights = self.boxes_xyxy_px[:, 3] - self.boxes_xyxy_px[:, 1]
        return (~self.invalid) & (heights >= min_height_px) & np.array([s != "ignore" for s in self.subsets],
                                                                        dtype=bool).reshape(-1)


def _gt_box(fields: list[str]) -> list[float]:
    """``x y w h`` as finite pixels with w, h ≥ 0 (via the input boundary), as x1 y1 x2 y2."""
    if len(fields) < 4:
        raise inputs.InputRejected("malformed", f"expected 'x y w h ...', got {' '.join(fields)!r}")
    try:
        x, y, w, h = (float(v) for v in fields[:4])
    except ValueError:
        raise inputs.InputRejected("malformed", f"x y w h must be numbers, got {' '.join(fields[:4])!r}") from None
    x, y = inputs.finite_number(x, "x"), inputs.finite_number(y, "y")
    w, h = inputs.finite_number(w, "w", 0.0, None), inputs.finite_number(h, "h", 0.0, None)
    return [x, y, x + w, y + h]


def parse_gt(path: Path) -> list[GroundTruthImage]:
    """Parse a WIDER-style ``gt.txt``; raise SOURCE_UNREADABLE naming the line on a format error, and when the
    file lists no image (an empty ground truth would score AP 0 and look like a result)."""
    lines = inputs.read_text(Path(path), "ground-truth file").splitlines()
    images: list[GroundTruthImage] = []
    i = 0
    hint = "expected WIDER format: path, count, then count lines 'x y w h blur occlusion invalid subset'"
    try:
        while i < len(lines):
            if not lines[i].strip():
                i += 1
                continue
            name = lines[i].strip()
            if i + 1 >= len(lines):
                raise inputs.InputRejected("missing_field", f"image {name!r} has no face-count line")
            i += 1
            try:
                count = int(lines[i])
            except ValueError:
                raise inputs.InputRejected("malformed", f"face count must be a whole number, got "
                                           f"{lines[i].strip()!r}") from None
            if count < 0:
                raise inputs.InputRejected("out_of_range", f"face count must be >= 0, got {count}")
            boxes, subsets, invalid = [], [], []
            for _ in range(count):
                i += 1
                if i >= len(lines):
                    raise inputs.InputRejected("missing_field", f"image {name!r} lists {count} faces, the file "
                                               "ends before")
                row = lines[i].split()
                boxes.append(_gt_box(row))
                subsets.append(row[7] if len(row) > 7 else "unknown")
                invalid.append(len(row) > 6 and row[6] == "1")
            images.append(GroundTruthImage(name, np.array(boxes, dtype=np.float64).reshape(-1, 4), subsets,
                                           np.array(invalid, dtype=bool)))
            i += 1
    except inputs.InputRejected as exc:
        raise inputs.file_error(path, i + 1, exc, hint=hint) from exc
    if not images:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}: the ground truth lists no image", hint)
    return images


@dataclass
class DetectorScores:
    images: int = 0
    faces_counted: int = 0
    recall_at_threshold: float = 0.0
    average_precision: float = 0.0
    recall_by_subset: dict[str, float] = field(default_factory=dict)
    score_threshold: float = 0.0
    min_height_px: float = 0.0
    input_size_px: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, object]:
        return {"images": self.images, "faces_counted": self.faces_counted,
                "recall_at_threshold": self.recall_at_threshold, "average_precision": self.average_precision,
                "recall_by_subset": self.recall_by_subset, "score_threshold": self.score_threshold,
                "iou": IOU_MATCH, "min_height_px": self.min_height_px, "input_size_px": list(self.input_size_px)}


def _match(det_boxes: np.ndarray, gt_boxes: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections → (per detection: 1 TP, 0 FP, -1 ignored; matched gt index)."""
    outcome = np.zeros(len(det_boxes), dtype=np.int8)
    matched_gt = np.full(len(det_boxes), -1)
    if len(gt_boxes) == 0:
        return outcome, matched_gt
    ious = iou_xyxy(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for d in range(len(det_boxes)):
        # prefer an unmatched counted face, then any ignore region
        candidates = np.where(counted & ~taken, ious[d], -1.0)
        g = int(np.argmax(candidates))
        if candidates[g] >= IOU_MATCH:
            taken[g] = True
            outcome[d], matched_gt[d] = 1, g
            continue
        ignore_ious = np.where(~counted, ious[d], -1.0)
        if ignore_ious.size and ignore_ious.max() >= IOU_MATCH:
            outcome[d] = -1
    return outcome, matched_gt


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_positive: int) -> float:
    """All-point interpolated AP (VOC 2010+) from per-detection scores and TP flags."""
    if n_positive == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(is_tp[order])
    fp = np.cumsum(~is_tp[order])
    recall = tp / n_positive
    precision = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def evaluate(detector: FaceDetector, images_dir: Path, gt: list[GroundTruthImage], min_height_px: float,
             operating_threshold: float, progress=None) -> DetectorScores:
    """Run ``detector`` (built with a low score threshold, without tracking) over every ground-truth image and
    score it. Each image is detected on its own (the detector is reset between images)."""
    if detector.tracking is not None:
        raise ValueError("evaluate a detector without tracking: still images are unrelated to each other")
    all_scores, all_tp = [], []
    counted_total = 0
    found_at_threshold = 0
    per_subset_total: dict[str, int] = {}
    per_subset_found: dict[str, int] = {}
    for index, item in enumerate(gt):
        path = images_dir / item.path
        if not path.is_file():
            path = images_dir / Path(item.path).name  # flat folder of images
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"cannot read image {path} listed in ground truth",
                                  "check --images points at the folder the gt paths are relative to")
        detector.reset()
        faces = detector.detect(Frame(index, 0, image, path.name)).faces
        det = np.array([f.box_xyxy_px for f in faces], dtype=np.float64).reshape(-1, 4)
        sc = np.array([f.score for f in faces], dtype=np.float64)
        counted = item.counted(min_height_px)
        outcome, matched = _match(det, item.boxes_xyxy_px, counted)
        keep = outcome >= 0
        all_scores.append(sc[keep])
        all_tp.append(outcome[keep] == 1)
        counted_total += int(counted.sum())
        hits = set(matched[(outcome == 1) & (sc >= operating_threshold)].tolist())
        found_at_threshold += len(hits)
        for g in np.flatnonzero(counted):
            subset = item.subsets[g]
            per_subset_total[subset] = per_subset_total.get(subset, 0) + 1
            per_subset_found[subset] = per_subset_found.get(subset, 0) + (g in hits)
        if progress is not None:
            progress(1)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tps = np.concatenate(all_tp) if all_tp else np.zeros(0, dtype=bool)
    return DetectorScores(
        images=len(gt), faces_counted=counted_total,
        recall_at_threshold=found_at_threshold / counted_total if counted_total else 0.0,
        average_precision=average_precision(scores, tps, counted_total),
        recall_by_subset={k: per_subset_found[k] / v for k, v in sorted(per_subset_total.items())},
        score_threshold=operating_threshold, min_height_px=min_height_px,
        input_size_px=tuple(detector.spec.input_size_px))
