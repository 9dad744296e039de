"""Measure an exported face-state model against the teachers on the held-apart clip(s).

Runs the ONNX model through the runtime's own :class:`~ims_runtime.stages.face_state.FaceStateModel` (ONNX Runtime
CPU) on the stored aligned crops (the centre of each wide crop is exactly the runtime's crop), maps angles back to
the image frame as the stage does, and compares with the teacher labels. A "predict the training mean" baseline is
reported beside every figure, so a number can be judged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ims_runtime.backends import open_chain
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.stages.alignment import crop_to_image_angles
from ims_runtime.stages.face_state import FaceStateModel
from ims_runtime.stages.model import OpenedModel
from ims_runtime.toolchain.face_state.dataset import LabelledFaces


def gaze_vectors(pitch_rad: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """(N,) angles → (N, 3) unit vectors (x right, y up, z toward the camera)."""
    return np.stack([np.cos(pitch_rad) * np.sin(yaw_rad), np.sin(pitch_rad), np.cos(pitch_rad) * np.cos(yaw_rad)], 1)


def angular_error_deg(pred_pitch_yaw: np.ndarray, true_pitch_yaw: np.ndarray) -> np.ndarray:
    a = gaze_vectors(pred_pitch_yaw[:, 0], pred_pitch_yaw[:, 1])
    b = gaze_vectors(true_pitch_yaw[:, 0], true_pitch_yaw[:, 1])
    return np.degrees(np.arccos(np.clip((a * b).sum(1), -1, 1)))


def predict(model_path: Path, faces: LabelledFaces, crop_size_px: int, margin_px: int) -> np.ndarray:
    """(N, 9) predictions in the image frame, the teacher label layout (openness instead of aspect ratios)."""
    opened = open_chain(model_path, [OrtCpuConfig(type="ort_cpu", threads=1)], "face_state")
    model = FaceStateModel(OpenedModel.from_backend(opened.backend), crop_size_px)
    out = np.empty((len(faces.crops), 9), np.float32)
    s, m = crop_size_px, margin_px
    for i, wide in enumerate(faces.crops):
        p = model.predict(np.ascontiguousarray(wide[m:m + s, m:m + s]))
        gaze, head = crop_to_image_angles(p.gaze_pitch_yaw_rad, p.head_yaw_pitch_roll_deg, float(faces.roll_deg[i]))
        out[i] = [*gaze, *head, *p.eye_open_left_right, p.mouth_open, p.confidence]
    opened.backend.close()
    return out


def metrics(pred: np.ndarray, target: np.ndarray, train_mean: np.ndarray, eye_closed_below: float,
            mouth_open_above: float) -> dict[str, float]:
    """``pred``/``target`` (N, 9) in the image frame with openness 0..1; faces only (no negatives)."""
    baseline = np.broadcast_to(train_mean, target.shape)
    result: dict[str, float] = {"faces": len(target)}
    for name, p in (("model", pred), ("baseline", baseline)):
        err = angular_error_deg(p[:, 0:2], target[:, 0:2])
        result[f"{name}.gaze_angular_error_deg_mean"] = float(err.mean())
        result[f"{name}.gaze_angular_error_deg_median"] = float(np.median(err))
        for j, axis in ((2, "yaw"), (3, "pitch"), (4, "roll")):
            result[f"{name}.head_{axis}_mae_deg"] = float(np.abs(p[:, j] - target[:, j]).mean())
        eyes_t = target[:, 5:7] < eye_closed_below
        result[f"{name}.eye_closed_agreement_pct"] = float(100 * ((p[:, 5:7] < eye_closed_below) == eyes_t).mean())
        result[f"{name}.eye_openness_mae"] = float(np.abs(p[:, 5:7] - target[:, 5:7]).mean())
        mouth_t = target[:, 7] > mouth_open_above
        result[f"{name}.mouth_open_agreement_pct"] = float(100 * ((p[:, 7] > mouth_open_above) == mouth_t).mean())
    result["teacher_eyes_closed_pct"] = float(100 * (target[:, 5:7] < eye_closed_below).mean())
    result["teacher_mouth_open_pct"] = float(100 * (target[:, 7] > mouth_open_above).mean())
    return result


def jitter(pred: np.ndarray, target: np.ndarray, faces: LabelledFaces, still_px_frac: float = 0.02) -> dict:
    """Frame-to-frame change of gaze and head pose on a still face: consecutive frames of one clip where the same
    face (box IoU > 0.7) moved its box centre by less than ``still_px_frac`` of its height. Median |Δ| (degrees)
    for the model and, for reference, the teachers."""
    from ims_runtime.stages._retinaface_decode import iou_xyxy

    pairs = []
    index_by_frame: dict[tuple[str, int], list[int]] = {}
    for i, (clip, frame) in enumerate(zip(faces.clip.tolist(), faces.frame.tolist())):
        index_by_frame.setdefault((clip, frame), []).append(i)
    for (clip, frame), now in index_by_frame.items():
        before = index_by_frame.get((clip, frame - 1), [])
        for i in now:
            for j in before:
                box_i, box_j = faces.box_xyxy_px[i], faces.box_xyxy_px[j]
                height = box_i[3] - box_i[1]
                moved = math.hypot((box_i[0] + box_i[2] - box_j[0] - box_j[2]) / 2,
                                   (box_i[1] + box_i[3] - box_j[1] - box_j[3]) / 2)
                if iou_xyxy(box_i[None], box_j[None])[0, 0] > 0.7 and moved < still_px_frac * height:
                    pairs.append((i, j))
    if not pairs:
        return {"still_pairs": 0}
    i, j = np.array(pairs).T
    result: dict[str, float] = {"still_pairs": len(pairs)}
    for name, values in (("model", pred), ("teacher", target)):
        result[f"{name}.gaze_jitter_deg_median"] = float(np.median(angular_error_deg(values[i, 0:2], values[j, 0:2])))
        result[f"{name}.head_jitter_deg_median"] = float(np.median(np.abs(values[i, 2:5] - values[j, 2:5]).max(1)))
    return result


def format_table(result: dict) -> str:
    rows = [("gaze angular error, mean (deg)", "gaze_angular_error_deg_mean"),
            ("gaze angular error, median (deg)", "gaze_angular_error_deg_median"),
            ("head yaw MAE (deg)", "head_yaw_mae_deg"), ("head pitch MAE (deg)", "head_pitch_mae_deg"),
            ("head roll MAE (deg)", "head_roll_mae_deg"),
            ("eye open/closed agreement (%)", "eye_closed_agreement_pct"),
            ("eye openness MAE (0..1)", "eye_openness_mae"),
            ("mouth open agreement (%)", "mouth_open_agreement_pct")]
    lines = [f"{'metric (held-apart, vs teachers)':<36} {'model':>8} {'mean baseline':>14}"]
    for label, key in rows:
        lines.append(f"{label:<36} {result['model.' + key]:>8.2f} {result['baseline.' + key]:>14.2f}")
    lines.append(f"faces: {result['faces']}; teacher says eyes closed on {result['teacher_eyes_closed_pct']:.1f} % "
                 f"of eyes, mouth open on {result['teacher_mouth_open_pct']:.1f} % of faces")
    if "confidence_auc" in result:
        lines.append(f"confidence: face vs non-face AUC {result['confidence_auc']:.3f}")
    if result.get("still_pairs"):
        lines.append(f"jitter on still faces ({result['still_pairs']} frame pairs), median |Δ| deg: gaze model "
                     f"{result['model.gaze_jitter_deg_median']:.2f} / teacher {result['teacher.gaze_jitter_deg_median']:.2f}"
                     f"; head (worst axis) model {result['model.head_jitter_deg_median']:.2f} / teacher "
                     f"{result['teacher.head_jitter_deg_median']:.2f}")
    return "\n".join(lines)


def auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """Area under the ROC curve (probability a face scores above a non-face)."""
    if len(scores_pos) == 0 or len(scores_neg) == 0:
        return float("nan")
    greater = (scores_pos[:, None] > scores_neg[None, :]).mean()
    ties = (scores_pos[:, None] == scores_neg[None, :]).mean()
    return float(greater + ties / 2)
