"""Accuracy of a detector variant on held-apart data, through the runtime's own detector stage.

* WIDER subset: recall at IoU 0.5 (faces ≥ ``min_height_px``) at the operating threshold and AP — the same
  :func:`ims_runtime.eval.detector_eval.evaluate` as ``ims-runtime eval-detector``.
* Agreement with FP32 on frames of clips never used for calibration or training: for each FP32 face (score ≥ the
  operating threshold) the best-IoU variant face; reports the share of FP32 faces found (IoU ≥ 0.5), extra faces,
  mean box IoU and landmark error in pixels and as a fraction of the inter-ocular distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ims_runtime.eval.data_split import HashSplit, Part
from ims_runtime.eval.detector_eval import SCORE_FLOOR, evaluate, parse_gt
from ims_runtime.spec.schema import DetectorSpec
from ims_runtime.stages._retinaface_decode import iou_xyxy
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.types import FaceDetection, Frame


def detector_for(model: Path, input_wh_px: tuple[int, int], score_threshold: float,
                 max_faces: int = 50) -> FaceDetector:
    spec = DetectorSpec(model=str(model.resolve()), input_size_px=input_wh_px, score_threshold=score_threshold,
                        max_faces=max_faces)
    return FaceDetector.from_spec(spec)


def wider_scores(model: Path, input_wh_px: tuple[int, int], wider_dir: Path, min_height_px: float = 16.0,
                 operating_threshold: float = 0.6, split: HashSplit | None = None,
                 part: Part | None = None) -> dict[str, object]:
    """Recall at ``operating_threshold`` and AP on the WIDER folder, or only on ``part`` of ``split``."""
    gt = parse_gt(wider_dir / "gt.txt")
    if split is not None and part is not None:
        gt = split.select(gt, part, lambda item: item.path)
    detector = detector_for(model, input_wh_px, SCORE_FLOOR, max_faces=1000)
    try:
        scores = evaluate(detector, wider_dir / "images", gt, min_height_px, operating_threshold)
    finally:
        detector.close()
    return {"recall": scores.recall_at_threshold, "ap": scores.average_precision,
            "recall_by_subset": scores.recall_by_subset, "faces_counted": scores.faces_counted,
            "images": scores.images, "part": part if split is not None and part is not None else "all"}


def wider_split(evaluation: object) -> HashSplit | None:
    """The recipe's ``evaluation.wider_split`` as a :class:`HashSplit` (None when the recipe has none)."""
    spec = getattr(evaluation, "wider_split", None)
    return None if spec is None else HashSplit(spec.search_share, spec.salt)


@dataclass
class Agreement:
    reference_faces: int = 0
    found: int = 0
    extra: int = 0
    box_iou_sum: float = 0.0
    landmark_px_sum: float = 0.0
    landmark_iod_sum: float = 0.0

    def to_dict(self) -> dict[str, float]:
        n = max(self.found, 1)
        return {"reference_faces": self.reference_faces,
                "found_share": self.found / self.reference_faces if self.reference_faces else 1.0,
                "extra_faces": self.extra, "mean_box_iou": self.box_iou_sum / n,
                "mean_landmark_error_px": self.landmark_px_sum / n,
                "mean_landmark_error_iod": self.landmark_iod_sum / n}


def compare_faces(reference: list[FaceDetection], variant: list[FaceDetection], tally: Agreement) -> None:
    """Match each reference face to the variant's best-IoU face (IoU ≥ 0.5, each used once) and add to ``tally``."""
    tally.reference_faces += len(reference)
    if not reference:
        tally.extra += len(variant)
        return
    ref_boxes = np.array([f.box_xyxy_px for f in reference]).reshape(-1, 4)
    var_boxes = np.array([f.box_xyxy_px for f in variant]).reshape(-1, 4)
    ious = iou_xyxy(ref_boxes, var_boxes) if len(variant) else np.zeros((len(reference), 0))
    used: set[int] = set()
    for r, face in enumerate(reference):
        candidates = [(ious[r, v], v) for v in range(len(variant)) if v not in used]
        if not candidates:
            continue
        best_iou, v = max(candidates)
        if best_iou < 0.5:
            continue
        used.add(v)
        tally.found += 1
        tally.box_iou_sum += float(best_iou)
        error_px = float(np.linalg.norm(face.landmarks_px - variant[v].landmarks_px, axis=1).mean())
        inter_ocular_px = float(np.linalg.norm(face.landmarks_px[0] - face.landmarks_px[1])) or 1.0
        tally.landmark_px_sum += error_px
        tally.landmark_iod_sum += error_px / inter_ocular_px
    tally.extra += len(variant) - len(used)


def agreement_with_reference(model: Path, reference: Path, frames_bgr: list[np.ndarray],
                             input_wh_px: tuple[int, int], score_threshold: float = 0.6) -> dict[str, float]:
    """How closely ``model`` reproduces ``reference`` (FP32) on ``frames_bgr`` at the operating threshold."""
    ref = detector_for(reference, input_wh_px, score_threshold)
    var = detector_for(model, input_wh_px, score_threshold)
    tally = Agreement()
    try:
        for index, image in enumerate(frames_bgr):
            frame = Frame(index, 0, image, "agreement")
            compare_faces(ref.detect(frame).faces, var.detect(frame).faces, tally)
    finally:
        ref.close()
        var.close()
    return tally.to_dict()
