"""Face-state stage: the driver's face → gaze, head pose, eye and mouth openness, eyes-closed and on-road decisions.

align (5 landmarks → canonical 112x112 crop, one warpAffine) → the project's own face-state network
(``models/face_state_v1.onnx``, distilled from MediaPipe FaceMesh and Intel OMZ teachers; see docs/face-state.md)
→ angles back to the image frame → eyes-closed with hysteresis (per-driver state) → on-road against the policy's
road zone (``policy.road_zone``, centred on the camera's mounting offset; the policy's own ``on_road`` decides, so
there is one definition of the zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ims_runtime import catalog, errors
from ims_runtime.backends import Backend, open_chain
from ims_runtime.policy.road_zone import on_road
from ims_runtime.spec.schema import FaceStateSpec, RoadZoneSpec
from ims_runtime.stages.alignment import align_face, crop_to_image_angles
from ims_runtime.stages.eye_state import EyeStateModel
from ims_runtime.temporal.signals import FrameSignals
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


@dataclass(frozen=True)
class FaceState:
    """Everything the stage says about one face in one frame (image frame, project angle conventions)."""

    gaze_pitch_rad: float
    gaze_yaw_rad: float
    on_road: bool
    head_yaw_deg: float
    head_pitch_deg: float
    head_roll_deg: float
    left_eye_open: float
    right_eye_open: float
    eyes_closed: bool
    mouth_open: float
    confidence: float
    reliable: bool

    def to_message(self) -> dict[str, object]:
        """The ``gaze``, ``head_pose``, ``eyes``, ``mouth`` and ``face_state`` parts of a driver_state message."""
        return {
            "gaze": {"pitch_rad": round(self.gaze_pitch_rad, 4), "yaw_rad": round(self.gaze_yaw_rad, 4),
                     "on_road": self.on_road},
            "head_pose": {"yaw_deg": round(self.head_yaw_deg, 2), "pitch_deg": round(self.head_pitch_deg, 2),
                          "roll_deg": round(self.head_roll_deg, 2)},
            "eyes": {"left_open": round(self.left_eye_open, 3), "right_open": round(self.right_eye_open, 3),
                     "closed": self.eyes_closed},
            "mouth": {"open": round(self.mouth_open, 3)},
            "face_state": {"confidence": round(self.confidence, 3), "reliable": self.reliable},
        }

    def to_signals(self) -> dict[str, object]:
        """The :class:`ims_runtime.temporal.signals.FrameSignals` fields this state provides. An unreliable state
        (low network confidence) provides none, so the temporal stage sees missing data rather than bad data."""
        if not self.reliable:
            return {}
        # on_road is left to the policy: it decides from the same gaze with the same zone
        return {"gaze_pitch_rad": self.gaze_pitch_rad, "gaze_yaw_rad": self.gaze_yaw_rad,
                "head_yaw_deg": self.head_yaw_deg, "head_pitch_deg": self.head_pitch_deg,
                "left_open": self.left_eye_open, "right_open": self.right_eye_open, "mouth_open": self.mouth_open}


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

    def __init__(self, backend: Backend, crop_size_px: int) -> None:
        self.backend = backend
        self.crop_size_px = crop_size_px
        self._check_contract()
        self._input_name = backend.inputs[0].name
        names = [o.name for o in backend.outputs]
        self._order = [names.index(n) for n in OUTPUT_NAMES]
        self._tensor = np.empty((1, 3, crop_size_px, crop_size_px), np.float32)

    def _check_contract(self) -> None:
        problem = None
        names = {o.name for o in self.backend.outputs}
        family = self.backend.metadata.get("ims.model_family")
        shape = self.backend.inputs[0].shape
        if family not in (None, "face_state"):
            problem = f"model family is {family!r}, expected 'face_state'"
        elif not set(OUTPUT_NAMES) <= names:
            problem = f"outputs {sorted(names)} lack {sorted(set(OUTPUT_NAMES) - names)}"
        elif all(isinstance(d, int) for d in shape[2:]) and tuple(shape[2:]) != (self.crop_size_px,) * 2:
            problem = f"the model's input is {shape[2]}x{shape[3]} px but crop_size_px is {self.crop_size_px}"
        if problem:
            raise errors.IMSError(errors.MODEL_CONTRACT, f"{self.backend.model_path}: {problem}",
                                  "point stages.face_state.model at a face-state export of the right size")

    def preprocess(self, crop_bgr: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 BGR → the reused (1, 3, S, S) float32 input, ``(pixel - 127.5) / 127.5``."""
        np.subtract(crop_bgr.transpose(2, 0, 1), 127.5, out=self._tensor[0], casting="unsafe")
        self._tensor *= 1 / 127.5
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

    def __init__(self, spec: FaceStateSpec, backend: Backend, model_sha256: str,
                 backend_skips: list | None = None, road_zone: RoadZoneSpec | None = None,
                 eye_model: EyeStateModel | None = None, eye_model_sha256: str | None = None) -> None:
        self.spec = spec
        # eye-state hook (issue 13): when set, eye openness comes from the eye-crop model (stages/eye_state.py)
        self.eye_model = eye_model
        self.eye_model_sha256 = eye_model_sha256
        self.road_zone = road_zone or RoadZoneSpec()
        self.model = FaceStateModel(backend, spec.crop_size_px)
        self.model_sha256 = model_sha256
        self.backend_skips = backend_skips or []
        self.eyes = EyeClosure(spec.eye_closed_below, spec.eye_open_above)

    @classmethod
    def from_spec(cls, spec: FaceStateSpec, spec_dir: Path | None = None,
                  road_zone: RoadZoneSpec | None = None) -> FaceStateStage:
        """``road_zone``: the spec's ``policy.road_zone`` (default zone when the policy is off)."""
        path = catalog.resolve(spec.model, spec_dir)
        sha = catalog.check_sha256(path, spec.sha256)
        opened = open_chain(path, list(spec.backends), cls.name)
        eye_model, eye_sha, eye_skips = None, None, []
        if spec.eye_model:  # eye-state hook (issue 13): same backends as the face-state network
            eye_model, eye_sha, eye_skips = EyeStateModel.open(spec.eye_model, spec.eye_model_sha256,
                                                               list(spec.backends), spec_dir, "eye_state")
        return cls(spec, opened.backend, sha, opened.skipped + eye_skips, road_zone, eye_model, eye_sha)

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
        aligned = align_face(frame.image_bgr, face.landmarks_px, self.spec.crop_size_px)
        pred = self.model.predict(aligned.crop_bgr)
        (g_pitch, g_yaw), (h_yaw, h_pitch, h_roll) = crop_to_image_angles(
            pred.gaze_pitch_yaw_rad, pred.head_yaw_pitch_roll_deg, aligned.roll_deg)
        left, right = pred.eye_open_left_right
        if self.eye_model is not None:  # eye-state hook (issue 13): the eye-crop model's calibrated openness
            left, right = self.eye_model.predict(frame.image_bgr, face.landmarks_px)
        road = bool(on_road(FrameSignals(t_ns=frame.t_capture_ns, face_present=True, gaze_pitch_rad=g_pitch,
                                         gaze_yaw_rad=g_yaw, head_yaw_deg=h_yaw, head_pitch_deg=h_pitch),
                            self.road_zone))
        return FaceState(gaze_pitch_rad=g_pitch, gaze_yaw_rad=g_yaw, on_road=road, head_yaw_deg=h_yaw,
                         head_pitch_deg=h_pitch, head_roll_deg=h_roll, left_eye_open=left, right_eye_open=right,
                         eyes_closed=self.eyes.update(left, right), mouth_open=pred.mouth_open,
                         confidence=pred.confidence, reliable=pred.confidence >= self.spec.min_confidence)

    def describe(self) -> dict[str, object]:
        described = {**self.model.backend.describe(), "precision": self.spec.precision, "sha256": self.model_sha256,
                     "crop_size_px": self.spec.crop_size_px, "fallbacks": self.backend_skips}
        if self.eye_model is not None:  # eye-state hook (issue 13)
            described["eye_model"] = {**self.eye_model.backend.describe(), "sha256": self.eye_model_sha256}
        return described

    def close(self) -> None:
        self.model.backend.close()
        if self.eye_model is not None:
            self.eye_model.close()
