"""Eye state on eye crops: the detector's 5 landmarks → two grey eye crops → per-eye openness 0 (closed) … 1 (open).

Why a separate model: the face-state network sees the whole face at 112x112, where an eye is ~20 px wide and a
closed lid differs from an open one by a few pixels; its eye-aspect-ratio teacher missed closures at that size
(issue 13). This model sees each eye at its own resolution.

* :class:`EyeCropper` places one square crop per eye from RetinaFace's eye centres: side = ``iod_ratio`` x the
  inter-ocular distance, rotated so the eye line is level, one ``cv2.warpAffine`` per eye straight into a
  preallocated (2, S, S, 3) buffer, then grey (the model is trained on grey, so colour and NIR cameras look alike).
* :class:`EyeStateModel` runs both eyes as one batch of 2 through any backend (opened by
  :func:`ims_runtime.stages.model.open_model`, like every stage's model) and returns the calibrated openness per
  eye (0.5 = the decision boundary between closed and open).

The crop geometry and input size are read from the model's ``metadata_props`` (``ims.eye_crop_iod_ratio``,
``ims.input_size_wh``), so a model and its crops cannot drift apart. Runtime only: numpy, OpenCV, a backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime.backends.base import BackendConfigBase
from ims_runtime.stages.model import ModelContract, OpenedModel, open_model

#: crop side as a multiple of the inter-ocular distance (eye centre to eye centre), when the model does not say
DEFAULT_IOD_RATIO = 0.7
#: the network's output: (N, 1) calibrated openness, 0 closed … 1 open
OUTPUT_NAME = "eye_open"


@dataclass(frozen=True)
class EyeCrops:
    """Both eye crops of one face.

    ``grey``: (2, S, S) uint8, row 0 the eye on the image's left (the subject's right eye), row 1 the image's
    right (the subject's left). ``matrices``: (2, 2, 3) float64 image → crop. ``iod_px``: inter-ocular distance in
    frame pixels. The arrays are views of the cropper's buffers: copy them to keep them past the next call.
    """

    grey: np.ndarray
    matrices: np.ndarray
    iod_px: float


def eye_crop_matrix(center_xy_px: tuple[float, float], side_px: float, eye_line_deg: float,
                    out_px: int) -> np.ndarray:
    """(2, 3) image → crop matrix: a square of ``side_px`` centred on ``center_xy_px``, turned by ``eye_line_deg``
    (the eye line's clockwise tilt in the image) so that the eye line is level in the (out, out) crop."""
    # getRotationMatrix2D turns content counter-clockwise for a positive angle: that levels a clockwise tilt
    matrix = cv2.getRotationMatrix2D(center_xy_px, eye_line_deg, out_px / side_px)
    matrix[:, 2] += np.array([out_px / 2, out_px / 2]) - np.asarray(center_xy_px, dtype=np.float64)
    return matrix


class EyeCropper:
    """Landmarks → two grey eye crops in preallocated buffers (no allocation per frame)."""

    def __init__(self, size_px: int, iod_ratio: float = DEFAULT_IOD_RATIO) -> None:
        if size_px < 8 or not 0.1 <= iod_ratio <= 3.0:
            raise ValueError(f"eye crop size {size_px} px / iod_ratio {iod_ratio} out of range")
        self.size_px = size_px
        self.iod_ratio = iod_ratio
        self._bgr = np.empty((2, size_px, size_px, 3), np.uint8)
        self._grey = np.empty((2, size_px, size_px), np.uint8)
        self._matrices = np.empty((2, 2, 3), np.float64)

    def crop(self, image: np.ndarray, landmarks_px: np.ndarray) -> EyeCrops:
        """``image``: (H, W, 3) uint8 BGR or (H, W) grey frame; ``landmarks_px``: (5, 2) RetinaFace landmarks
        (image-left eye, image-right eye, nose, mouth corners), frame pixels."""
        left_xy, right_xy = (np.asarray(landmarks_px[i], dtype=np.float64) for i in (0, 1))
        dx, dy = right_xy - left_xy
        iod_px = float(math.hypot(dx, dy))
        angle_deg = math.degrees(math.atan2(dy, dx))
        side_px = max(2.0, self.iod_ratio * iod_px)
        s = self.size_px
        for i, center in enumerate((left_xy, right_xy)):
            self._matrices[i] = eye_crop_matrix((float(center[0]), float(center[1])), side_px, angle_deg, s)
            if image.ndim == 2:
                cv2.warpAffine(image, self._matrices[i], (s, s), dst=self._grey[i], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            else:
                cv2.warpAffine(image, self._matrices[i], (s, s), dst=self._bgr[i], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
                cv2.cvtColor(self._bgr[i], cv2.COLOR_BGR2GRAY, dst=self._grey[i])
        return EyeCrops(grey=self._grey, matrices=self._matrices, iod_px=iod_px)


def grey_to_tensor(grey: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(N, S, S) uint8 grey → (N, 1, S, S) float32 ``(pixel - 127.5) / 127.5`` (the model's input contract)."""
    if out is None:
        out = np.empty((grey.shape[0], 1, *grey.shape[1:]), np.float32)
    # OpenCV converts and subtracts in one pass without a temporary (numpy's uint8 → float32 cast would allocate its
    # ~32 KiB buffer every frame); both arrays are contiguous with the same element order, viewed as 2-D
    n, h, w = grey.shape
    cv2.subtract(np.ascontiguousarray(grey).reshape(n * h, w), 127.5, dst=out.reshape(n * h, w), dtype=cv2.CV_32F)
    out *= 1 / 127.5
    return out


class EyeStateModel:
    """The eye-state network behind a backend: two grey eye crops in, per-eye openness out (one batched run)."""

    #: what the face-state stage needs from its eye model (checked at load by :func:`open_model`)
    CONTRACT = ModelContract("eye_state", (OUTPUT_NAME,), "stages.face_state.eye_model")

    def __init__(self, model: OpenedModel) -> None:
        self.model = model
        self.backend = model.backend
        shape = self.backend.inputs[0].shape
        if model.facts.family != "eye_state":
            raise model.contract_error(f"model family is {model.facts.family!r}, expected 'eye_state'",
                                       self.CONTRACT.spec_field)
        if len(shape) != 4 or shape[1] != 1 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise model.contract_error(f"input shape {shape} is not (N, 1, S, S)", self.CONTRACT.spec_field)
        if isinstance(shape[0], int) and shape[0] != 2:
            raise model.contract_error(f"input batch is fixed at {shape[0]}, the stage runs both eyes as a batch "
                                       "of 2", self.CONTRACT.spec_field)
        self.size_px = int(shape[2])
        self.iod_ratio = float(self.backend.metadata.get("ims.eye_crop_iod_ratio", DEFAULT_IOD_RATIO))
        self.cropper = EyeCropper(self.size_px, self.iod_ratio)
        self._input_name = self.backend.inputs[0].name
        self._output_index = [o.name for o in self.backend.outputs].index(OUTPUT_NAME)
        self._tensor = np.empty((2, 1, self.size_px, self.size_px), np.float32)

    @classmethod
    def open(cls, ref: str, sha256: str | None, backends: list[BackendConfigBase],
             spec_dir: Path | None = None) -> EyeStateModel:
        """Resolve ``ref`` (catalogue name, file name or path), check its sha256, open the first backend that
        works, check the contract (:func:`open_model`). The file's sha256 and skipped backends are in ``.model``."""
        opened = open_model(ref, sha256, backends, "eye_state", cls.CONTRACT, spec_dir)
        try:
            return cls(opened)
        except BaseException:
            opened.backend.close()
            raise

    def predict_crops(self, grey: np.ndarray) -> np.ndarray:
        """(2, S, S) uint8 grey crops → (2,) float32 openness 0..1."""
        out = self.backend.run({self._input_name: grey_to_tensor(grey, self._tensor)})
        # a copy: the backend's output array is reused by its next run (ort_cpu I/O binding), and callers collect
        # these per batch
        return np.array(out[self._output_index], np.float32).reshape(-1)

    def predict(self, image: np.ndarray, landmarks_px: np.ndarray) -> tuple[float, float]:
        """Openness of the subject's (left, right) eye, 0 closed … 1 open. The subject's left eye is the one on
        the image's right (RetinaFace landmark 1)."""
        crops = self.cropper.crop(image, landmarks_px)
        image_left, image_right = self.predict_crops(crops.grey)
        return float(image_right), float(image_left)

    def warmup(self, runs: int = 3) -> None:
        self.backend.warmup({self._input_name: np.zeros_like(self._tensor)}, runs)

    def close(self) -> None:
        self.backend.close()
