"""``ims-opt run deploy/recipes/face-state-opt.yaml``: the face-state network's adapter for the optimisation runner.

Data: faces found by the runtime's own detector (default :class:`DetectorSpec`) in clips sampled every
``every_s`` seconds, aligned by the stage's own :func:`~ims_runtime.stages.alignment.align_face` and turned into
tensors by the stage's own :meth:`FaceStateModel.preprocess` — exactly what the vehicle feeds the network.
Calibration uses the recipe's calibration clips (video00–02); scores use the held-apart clip (video04).

Scores are agreement with FP32, in the aligned crop's frame (the same roll undoes both, so the differences are the
same in the image frame): gaze angular error (degrees), head yaw/pitch/roll MAE (degrees), eye open/closed
agreement at the stage's ``eye_closed_below``, openness MAE. No teacher labels are needed, so every face the
detector finds counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import paths
from ims_runtime.backends import open_chain
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.spec.schema import DetectorSpec, FaceStateSpec
from ims_runtime.stages.alignment import align_face
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.stages.face_state import FaceStateModel
from ims_runtime.stages.model import OpenedModel
from ims_runtime.toolchain.adapters import ModelAdapter
from ims_runtime.toolchain.benchmark import cpu_session
from ims_runtime.toolchain.calibration import FrameSample, fixed_rate_frames
from ims_runtime.toolchain.face_state.evaluate import angular_error_deg
from ims_runtime.toolchain.recipe import VariantSpec
from ims_runtime.toolchain.run_context import RunContext
from ims_runtime.toolchain.stamps import is_fresh, stamp_key, write_stamp
from ims_runtime.types import Frame

#: stored crops keep this much context on each side (px) for the distillation's shift augmentation
MARGIN_PX = 16
#: smaller faces are not what the stage sees from the driver's seat (the training data used the same floor)
MIN_FACE_HEIGHT_PX = 40.0


def aligned_crops(sample: FrameSample, crop_size_px: int, margin_px: int = MARGIN_PX) -> np.ndarray:
    """Every face of ``sample``'s frames → (N, S+2m, S+2m, 3) uint8 BGR wide crops, aligned as the stage aligns
    (the centre S x S is exactly the stage's crop)."""
    detector = FaceDetector.from_spec(DetectorSpec())
    crops = []
    for index, (_, frame_id, image) in enumerate(fixed_rate_frames(sample)):
        for face in detector.detect(Frame(frame_id, index, image)).faces:
            if face.height_px >= MIN_FACE_HEIGHT_PX:
                crops.append(align_face(image, face.landmarks_px, crop_size_px, margin_px).crop_bgr)
    return np.stack(crops) if crops else np.zeros((0, crop_size_px + 2 * margin_px) * 2 + (3,), np.uint8)


def crops_to_tensors(model: Path, wide_crops: np.ndarray, crop_size_px: int, margin_px: int = MARGIN_PX) -> np.ndarray:
    """Wide crops → (N, 3, S, S) float32 through the stage's own :meth:`FaceStateModel.preprocess`."""
    opened = open_chain(model, [OrtCpuConfig(type="ort_cpu", threads=1)], "face_state")
    stage_model = FaceStateModel(OpenedModel.from_backend(opened.backend), crop_size_px)
    s, m = crop_size_px, margin_px
    out = np.stack([stage_model.preprocess(np.ascontiguousarray(c[m:m + s, m:m + s]))[0].copy() for c in wide_crops])
    opened.backend.close()
    return out


def outputs(model: Path, tensors: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) → (N, 9): gaze pitch, yaw (rad), head yaw, pitch, roll (deg), eye open left, right, mouth open,
    confidence — ONNX Runtime CPU, one crop at a time (the stage's batch of one)."""
    session = cpu_session(model)
    name = session.get_inputs()[0].name
    order = [o.name for o in session.get_outputs()]
    rows = []
    for tensor in tensors:
        named = dict(zip(order, session.run(None, {name: tensor[None]})))
        rows.append(np.concatenate([named[k][0] for k in ("gaze_pitch_yaw_rad", "head_yaw_pitch_roll_deg",
                                                         "eye_open_left_right", "mouth_open", "confidence")]))
    return np.stack(rows).astype(np.float32)


def agreement(pred: np.ndarray, ref: np.ndarray, eye_closed_below: float) -> dict[str, float]:
    """Scores of ``pred`` (N, 9) against the FP32 reference's ``ref`` (N, 9)."""
    gaze = angular_error_deg(pred[:, 0:2].astype(np.float64), ref[:, 0:2].astype(np.float64))
    head = np.abs(pred[:, 2:5] - ref[:, 2:5])
    return {"faces": len(pred), "gaze_error_deg_mean": float(gaze.mean()), "gaze_error_deg_p95":
            float(np.percentile(gaze, 95)) if len(gaze) else 0.0,
            "head_pose_mae_deg": float(head.mean()), "head_pose_max_deg": float(head.max()) if len(head) else 0.0,
            "eye_state_agreement": float(((pred[:, 5:7] < eye_closed_below) == (ref[:, 5:7] < eye_closed_below)).mean()),
            "eye_openness_mae": float(np.abs(pred[:, 5:7] - ref[:, 5:7]).mean()),
            "mouth_openness_mae": float(np.abs(pred[:, 7] - ref[:, 7]).mean()),
            "confidence_mae": float(np.abs(pred[:, 8] - ref[:, 8]).mean()),
            "ref_eyes_closed_share": float((ref[:, 5:7] < eye_closed_below).mean())}


class FaceStateAdapter(ModelAdapter):
    columns = (("gaze err vs FP32 (deg)", "gaze_error_deg_mean", "{gaze_error_deg_mean:.2f}"),
               ("head MAE vs FP32 (deg)", "head_pose_mae_deg", "{head_pose_mae_deg:.2f}"),
               ("eye state agree / openness MAE", "eye_state_agreement",
                "{eye_state_agreement:.3f} / {eye_openness_mae:.3f}"))

    def _crops(self, run: RunContext, which: str) -> np.ndarray:
        """Wide crops of the calibration (``cal``) or held-apart (``eval``) clips, cached next to the artefacts."""
        sample = run.calibration if which == "cal" else run.agreement
        cache = run.out / f"crops_{which}.npy"
        key = stamp_key("crops", sample.describe(), [paths.sha256_file(c) for c in sample.clips], self._size(run),
                   MARGIN_PX, MIN_FACE_HEIGHT_PX)
        if not is_fresh(cache, key):
            crops = aligned_crops(sample, self._size(run))
            np.save(cache, crops)
            write_stamp(cache, key, faces=len(crops))
        return np.load(cache)

    @staticmethod
    def _size(run: RunContext) -> int:
        return run.recipe.input_size_px[0]

    def data_description(self, run: RunContext) -> dict[str, Any]:
        return {"calibration": run.calibration.describe(), "evaluation": run.agreement.describe(),
                "faces": f"detector (runtime default spec) faces >= {MIN_FACE_HEIGHT_PX:g} px, aligned by "
                         "stages/alignment.py, preprocessed by FaceStateModel.preprocess"}

    def calibration_tensors(self, run: RunContext) -> np.ndarray:
        return crops_to_tensors(self.base_weights(run, "official"), self._crops(run, "cal"), self._size(run))

    def held_apart_tensors(self, run: RunContext) -> np.ndarray:
        return crops_to_tensors(self.base_weights(run, "official"), self._crops(run, "eval"), self._size(run))

    def export_float(self, run: RunContext, base_name: str, weights: Path, out: Path) -> None:
        base = run.recipe.bases[base_name]
        if not base.prune_ratio:
            shutil.copyfile(weights, out)  # the project's FP32 model is already the float ONNX
            return
        from ims_runtime.toolchain.face_state.compress import (
            make_pruned,  # imports torch: only pruned bases need it
        )

        facts = make_pruned(weights, out, self._crops(run, "cal"), base.prune_ratio, base.distill_steps,
                            self._size(run), MARGIN_PX)
        (out.parent / (out.name + ".facts.json")).write_text(json.dumps(facts, indent=2))

    def evaluate(self, run: RunContext, model: Path, reference: Path) -> dict[str, Any]:
        tensors = self.held_apart_tensors(run)
        return {"agreement": agreement(outputs(model, tensors), outputs(reference, tensors),
                                       FaceStateSpec.model_fields["eye_closed_below"].default)}

    def within_limit(self, run: RunContext, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        limits, a = run.recipe.limits, scores["agreement"]
        return ((limits.gaze_error_deg is None or a["gaze_error_deg_mean"] <= limits.gaze_error_deg)
                and (limits.head_pose_mae_deg is None or a["head_pose_mae_deg"] <= limits.head_pose_mae_deg)
                and (limits.eye_state_agreement is None or a["eye_state_agreement"] >= limits.eye_state_agreement))

    def headline(self, scores: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
        a = scores["agreement"]
        return {k: a[k] for k in ("gaze_error_deg_mean", "head_pose_mae_deg", "eye_state_agreement",
                                  "eye_openness_mae", "faces")}

    def build_qat(self, run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
        from ims_runtime.toolchain.face_state.compress import make_qat  # imports torch: only QAT needs it

        weights = self.base_weights(run, variant.base)
        if run.recipe.bases[variant.base].prune_ratio:
            weights = run.float_model(variant.base)
        return make_qat(weights, out, self._crops(run, "cal"), variant.steps, self._size(run), MARGIN_PX, meta)
