"""Face-state stage: the driver's face → gaze, head pose, eye and mouth openness, eyes-closed and on-road decisions.

align (5 landmarks → canonical 112x112 crop, one warpAffine) → the project's own face-state network
(``models/face_state_v1.onnx``, distilled from MediaPipe FaceMesh and Intel OMZ teachers; see docs/face-state.md)
→ angles back to the image frame → eye openness (from the eye-crop model ``stages/eye_state.py`` when the spec
names one in ``eye_model``, else the face network's own output) → eyes-closed with hysteresis (per-driver state) →
on-road against the policy's road zone (``policy.road_zone``, centred on the camera's mounting offset;
``policy.road_zone.in_road_zone`` decides, so there is one definition of the zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime.contract import FaceState
from ims_runtime.policy.road_zone import in_road_zone
from ims_runtime.spec.schema import FaceStateSpec, RoadZoneSpec
from ims_runtime.stages.alignment import align_face, crop_to_image_angles
from ims_runtime.stages.eye_state import EyeStateModel
from ims_runtime.stages.model import ModelContract, OpenedModel, open_model
from ims_runtime.types import FaceDetection, Frame

#: output names of the network, in the order the stage reads them (see toolchain/face_state/model.py)
OUTPUT_NAMES = ("gaze_pitch_yaw_rad", "head_yaw_pitch_roll_deg", "eye_open_left_right", "mouth_open", "confidence")


@dataclass(frozen=True)
class CropPrediction:
    """The network's answer for one aligned crop (angles in the crop's frame)."""

    gaze_pitch_yaw_rad: tuple[float, float]
    head_yaw_pitch_roll_deg: tuple[float, float, float]
    eye_open_left_right: tuple[float, float]
    mouth_open: float
    confidence: float


class EyeClosure:
    """Eyes-closed decision with hysteresis on the mean openness of both eyes. Pure; state is one boolean.

    Closed when the mean drops below ``closed_below``; open again only when it rises above ``open_above``.
    In between the previous decision stands, so a value hovering at one threshold does not make a blink storm.
    """

    def __init__(self, closed_below: float, open_above: float) -> None:
        if not 0 < closed_below < open_above < 1:
            raise ValueError("need 0 < closed_below < open_above < 1")
        self.closed_below = closed_below
        self.open_above = open_above
        self.closed = False

    def reset(self) -> None:
        self.closed = False

    def update(self, left_open: float, right_open: float) -> bool:
        mean = (left_open + right_open) / 2
        if self.closed and mean > self.open_above:
            self.closed = False
        elif not self.closed and mean < self.closed_below:
            self.closed = True
        return self.closed


class FaceStateModel:
    """The network behind a backend: aligned crop in, :class:`CropPrediction` out."""

    #: what the stage needs from the model (checked at load by :func:`open_model`)
    CONTRACT = ModelContract("face_state", OUTPUT_NAMES, "stages.face_state.model")
    #: the normalisation the project's exports declare; used when a model carries no ``ims.input_*`` facts
    DEFAULT_MEAN, DEFAULT_SCALE = 127.5, 1 / 127.5

    def __init__(self, model: OpenedModel, crop_size_px: int) -> None:
        self.model = model
        self.backend = model.backend
        self.crop_size_px = crop_size_px
        fixed = model.facts.input_wh_px
        if fixed is not None and fixed != (crop_size_px, crop_size_px):
            raise model.contract_error(f"the model's input is {fixed[0]}x{fixed[1]} px but crop_size_px is "
                                       f"{crop_size_px}", "stages.face_state.model")
        self._input_name = self.backend.inputs[0].name
        names = [o.name for o in self.backend.outputs]
        self._order = [names.index(n) for n in OUTPUT_NAMES]
        mean = model.facts.input_mean_bgr or (self.DEFAULT_MEAN,) * 3
        self._mean_scalar = (*(float(v) for v in mean), 0.0)
        self._scale = np.float32(model.facts.input_scale or self.DEFAULT_SCALE)
        self._crop_f32 = np.empty((crop_size_px, crop_size_px, 3), np.float32)
        self._tensor = np.empty((1, 3, crop_size_px, crop_size_px), np.float32)

    def preprocess(self, crop_bgr: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 BGR → the reused (1, 3, S, S) float32 input, ``(pixel - mean) * scale`` (the model's
        own ``ims.input_normalisation``: ``(pixel - 127.5) / 127.5`` for the project's exports).

        Two passes, no allocation: OpenCV subtracts the mean into a preallocated float32 HWC buffer, then one
        numpy multiply writes it scaled and transposed into the CHW tensor the backend has bound."""
        cv2.subtract(crop_bgr, self._mean_scalar, dst=self._crop_f32, dtype=cv2.CV_32F)
        np.multiply(self._crop_f32.transpose(2, 0, 1), self._scale, out=self._tensor[0])
        return self._tensor

    def predict(self, crop_bgr: np.ndarray) -> CropPrediction:
        outs = self.backend.run({self._input_name: self.preprocess(crop_bgr)})
        gaze, head, eyes, mouth, conf = (np.asarray(outs[i], np.float32).ravel() for i in self._order)
        return CropPrediction(gaze_pitch_yaw_rad=(float(gaze[0]), float(gaze[1])),
                              head_yaw_pitch_roll_deg=(float(head[0]), float(head[1]), float(head[2])),
                              eye_open_left_right=(float(eyes[0]), float(eyes[1])), mouth_open=float(mouth[0]),
                              confidence=float(conf[0]))


class FaceStateStage:
    """The face-state stage for the driver's face. Holds per-driver state (eye closure): call :meth:`reset` when
    the face is lost (``process(frame, None)`` does it)."""

    name = "face_state"

    def __init__(self, spec: FaceStateSpec, model: OpenedModel, road_zone: RoadZoneSpec | None = None,
                 eye_model: EyeStateModel | None = None) -> None:
        self.spec = spec
        # when set, eye openness comes from the eye-crop model (stages/eye_state.py), not the face network
        self.eye_model = eye_model
        self.road_zone = road_zone or RoadZoneSpec()
        self.model = FaceStateModel(model, spec.crop_size_px)
        self.eyes = EyeClosure(spec.eye_closed_below, spec.eye_open_above)
        # the aligned crop is warped into this buffer every frame (no per-frame allocation)
        self._crop = np.empty((spec.crop_size_px, spec.crop_size_px, 3), np.uint8)

    @classmethod
    def from_spec(cls, spec: FaceStateSpec, spec_dir: Path | None = None,
                  road_zone: RoadZoneSpec | None = None) -> FaceStateStage:
        """``road_zone``: the spec's ``policy.road_zone`` (default zone when the policy is off)."""
        model = open_model(spec.model, spec.sha256, list(spec.backends), cls.name, FaceStateModel.CONTRACT,
                           spec_dir)
        eye_model = None
        try:
            if spec.eye_model:  # on the same backend chain as the face-state network
                eye_model = EyeStateModel.open(spec.eye_model, spec.eye_model_sha256, list(spec.backends),
                                               spec_dir)
            return cls(spec, model, road_zone, eye_model)
        except BaseException:
            model.backend.close()
            if eye_model is not None:
                eye_model.close()
            raise

    @property
    def backend_skips(self) -> list[dict[str, object]]:
        eye_skips = self.eye_model.model.backend_skips if self.eye_model is not None else []
        return self.model.model.backend_skips + eye_skips

    def warmup(self, runs: int = 3) -> None:
        s = self.spec.crop_size_px
        self.model.backend.warmup({self.model._input_name: np.zeros((1, 3, s, s), np.float32)}, runs)
        if self.eye_model is not None:
            self.eye_model.warmup(runs)

    def reset(self) -> None:
        self.eyes.reset()

    def process(self, frame: Frame, face: FaceDetection | None) -> FaceState | None:
        """The state of ``face`` in ``frame`` (None, and the per-driver state reset, when there is no face)."""
        if face is None:
            self.reset()
            return None
        aligned = align_face(frame.image_bgr, face.landmarks_px, self.spec.crop_size_px, out=self._crop)
        pred = self.model.predict(aligned.crop_bgr)
        (g_pitch, g_yaw), (h_yaw, h_pitch, h_roll) = crop_to_image_angles(
            pred.gaze_pitch_yaw_rad, pred.head_yaw_pitch_roll_deg, aligned.roll_deg)
        left, right = pred.eye_open_left_right
        if self.eye_model is not None:  # the eye-crop model sees closures the face network misses (issue 13)
            left, right = self.eye_model.predict(frame.image_bgr, face.landmarks_px)
        return FaceState(gaze_pitch_rad=g_pitch, gaze_yaw_rad=g_yaw,
                         on_road=in_road_zone(self.road_zone, g_pitch, g_yaw, h_yaw, h_pitch),
                         head_yaw_deg=h_yaw, head_pitch_deg=h_pitch, head_roll_deg=h_roll,
                         left_eye_open=left, right_eye_open=right, eyes_closed=self.eyes.update(left, right),
                         mouth_open=pred.mouth_open if self.spec.publish_mouth else None,
                         confidence=pred.confidence,
                         reliable=pred.confidence >= self.spec.min_confidence)

    def describe(self) -> dict[str, object]:
        model = self.model.model
        described = {**self.model.backend.describe(), "precision": model.running_precision(self.spec.precision),
                     "sha256": model.sha256, "crop_size_px": self.spec.crop_size_px, "fallbacks": self.backend_skips}
        if self.eye_model is not None:
            described["eye_model"] = {**self.eye_model.backend.describe(), "sha256": self.eye_model.model.sha256}
        return described

    def close(self) -> None:
        self.model.backend.close()
        if self.eye_model is not None:
            self.eye_model.close()
