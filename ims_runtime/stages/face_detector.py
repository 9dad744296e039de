"""Detector stage: RetinaFace-MobileNet0.25 → every face in the frame, and which one is the driver.

preprocess (letterbox to the configured input size, BGR minus mean, NCHW) → backend.run → postprocess (decode
against priors computed once for the input size, score threshold, NMS, map back to frame pixels) → driver choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import structlog

from ims_runtime import catalog, errors
from ims_runtime.backends import Backend, open_chain
from ims_runtime.spec.schema import DetectorSpec, RegionSpec
from ims_runtime.stages._retinaface_decode import (
    decode_boxes,
    decode_landmarks,
    iou_xyxy,
    make_priors,
    nms,
)
from ims_runtime.types import Detections, FaceDetection, Frame

log = structlog.get_logger(__name__)

#: BGR means the official weights were trained with (subtracted; no scaling)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the network input: ``input = frame * scale`` placed at the top left."""

    scale: float
    resized_wh_px: tuple[int, int]


class Letterboxer:
    """Fits frames into a fixed ``(w, h)`` input with one resize and no per-frame allocation of the input.

    The padding is the mean colour, i.e. zero after mean subtraction, so it looks like "nothing" to the network.
    """

    def __init__(self, input_wh_px: tuple[int, int]) -> None:
        self.input_wh_px = input_wh_px
        w, h = input_wh_px
        self._canvas = np.empty((h, w, 3), dtype=np.uint8)
        self._tensor = np.empty((1, 3, h, w), dtype=np.float32)

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """HxWx3 uint8 BGR → ((1, 3, H_in, W_in) float32 mean-subtracted, letterbox). The tensor is reused."""
        w_in, h_in = self.input_wh_px
        h, w = image_bgr.shape[:2]
        scale = min(w_in / w, h_in / h)
        rw, rh = max(1, min(w_in, round(w * scale))), max(1, min(h_in, round(h * scale)))
        self._canvas[:] = MEAN_BGR.astype(np.uint8)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        cv2.resize(image_bgr, (rw, rh), dst=self._canvas[:rh, :rw], interpolation=interpolation)
        # HWC uint8 → CHW float32 minus mean, written into the preallocated tensor
        np.subtract(self._canvas.transpose(2, 0, 1), MEAN_BGR[:, None, None], out=self._tensor[0],
                    casting="unsafe")
        return self._tensor, Letterbox(scale=scale, resized_wh_px=(rw, rh))


class DriverSelector:
    """Chooses the driver's face: the largest face whose centre lies in the driver region, kept stable.

    The previous driver stays the driver (tracked by best IoU) unless another eligible face is
    ``switch_ratio`` times larger in area — so a passenger leaning in briefly does not steal the driver slot.
    Pure: state is the previous driver box only.
    """

    def __init__(self, region: RegionSpec, min_face_height_px: float, switch_ratio: float) -> None:
        self.region = region
        self.min_face_height_px = min_face_height_px
        self.switch_ratio = switch_ratio
        self._previous: tuple[float, float, float, float] | None = None

    def reset(self) -> None:
        self._previous = None

    def choose(self, faces: list[FaceDetection], frame_wh_px: tuple[int, int]) -> int | None:
        w, h = frame_wh_px
        eligible = []
        for index, face in enumerate(faces):
            cx, cy = face.center_xy_px
            inside = (self.region.x_min <= cx / w <= self.region.x_max
                      and self.region.y_min <= cy / h <= self.region.y_max)
            if inside and face.height_px >= self.min_face_height_px:
                eligible.append(index)
        if not eligible:
            self._previous = None
            return None
        largest = max(eligible, key=lambda i: faces[i].area_px2)
        chosen = largest
        if self._previous is not None:
            ious = iou_xyxy(np.array([self._previous]), np.array([faces[i].box_xyxy_px for i in eligible]))[0]
            best = int(np.argmax(ious))
            tracked = eligible[best]
            if ious[best] > 0.3 and faces[largest].area_px2 < self.switch_ratio * faces[tracked].area_px2:
                chosen = tracked
        self._previous = faces[chosen].box_xyxy_px
        return chosen


class FaceDetector:
    """The detector stage. ``detect(frame)`` returns every face above threshold and the driver's index."""

    name = "face_detector"

    def __init__(self, spec: DetectorSpec, backend: Backend, model_sha256: str, backend_skips: list | None = None):
        self.spec = spec
        self.backend = backend
        self.model_sha256 = model_sha256
        self.backend_skips = backend_skips or []
        self._check_contract()
        self.letterbox = Letterboxer(spec.input_size_px)
        w, h = spec.input_size_px
        self.priors = make_priors(w, h)
        self._input_name = backend.inputs[0].name
        self.driver = DriverSelector(spec.driver_region, spec.min_face_height_px, spec.driver_switch_ratio)

    @classmethod
    def from_spec(cls, spec: DetectorSpec, spec_dir: Path | None = None) -> FaceDetector:
        path = catalog.resolve(spec.model, spec_dir)
        sha = catalog.check_sha256(path, spec.sha256)
        opened = open_chain(path, list(spec.backends), cls.name)
        return cls(spec, opened.backend, sha, opened.skipped)

    def _check_contract(self) -> None:
        """Fail at load, not at the first frame, if the model is not a RetinaFace the stage can decode."""
        outs = self.backend.outputs
        family = self.backend.metadata.get("ims.model_family")
        problem = None
        if family not in (None, "retinaface"):
            problem = f"model family is {family!r}, expected 'retinaface'"
        elif len(outs) != 3 or [o.shape[-1] for o in outs] != [4, 2, 10]:
            problem = f"outputs {[(o.name, o.shape) for o in outs]} are not RetinaFace's loc/conf/landms"
        else:
            static = self.backend.inputs[0].shape[2:]
            if all(isinstance(d, int) for d in static) and tuple(static) != tuple(reversed(self.spec.input_size_px)):
                problem = (f"the model's input is fixed at {static[1]}x{static[0]} px but the spec asks for "
                           f"input_size_px {list(self.spec.input_size_px)}")
        if problem:
            raise errors.IMSError(errors.MODEL_CONTRACT, f"{self.backend.model_path}: {problem}",
                                  "point stages.face_detector.model at a RetinaFace export of the right size")

    def warmup(self, runs: int = 3) -> None:
        w, h = self.spec.input_size_px
        self.backend.warmup({self._input_name: np.zeros((1, 3, h, w), np.float32)}, runs)

    def detect(self, frame: Frame) -> Detections:
        tensor, box = self.letterbox(frame.image_bgr)
        loc, conf, landms = self.backend.run({self._input_name: tensor})
        faces = self.postprocess(loc[0], conf[0], landms[0], box, frame.size_wh_px)
        return Detections(faces=faces, driver_index=self.driver.choose(faces, frame.size_wh_px))

    def postprocess(self, loc: np.ndarray, conf: np.ndarray, landms: np.ndarray, box: Letterbox,
                    frame_wh_px: tuple[int, int]) -> list[FaceDetection]:
        """Raw (N,4), (N,2), (N,10) outputs → faces in frame pixels, best score first."""
        scores = conf[:, 1]
        keep = np.flatnonzero(scores > self.spec.score_threshold)
        if keep.size == 0:
            return []
        priors = self.priors[keep]
        w_in, h_in = self.spec.input_size_px
        to_frame = np.array([w_in, h_in], dtype=np.float32) / box.scale
        boxes = decode_boxes(loc[keep].astype(np.float32), priors) * np.tile(to_frame, 2)
        points = decode_landmarks(landms[keep].astype(np.float32), priors) * to_frame
        w, h = frame_wh_px
        boxes = np.clip(boxes, 0, [w, h, w, h])
        order = nms(boxes, scores[keep], self.spec.nms_iou_threshold, self.spec.max_faces)
        return [FaceDetection(box_xyxy_px=tuple(float(v) for v in boxes[i]), score=float(scores[keep][i]),
                              landmarks_px=points[i].astype(np.float32)) for i in order]

    def describe(self) -> dict[str, object]:
        return {**self.backend.describe(), "precision": self.spec.precision, "sha256": self.model_sha256,
                "input_size_px": list(self.spec.input_size_px), "fallbacks": self.backend_skips}

    def close(self) -> None:
        self.backend.close()
