"""Eye-region crops placed from the detector's 5 landmarks, and the OMZ open/closed-eye teacher that reads them.

Two crops, both levelled by the eye line (the in-plane tilt removed):

* :func:`eye_strip` — one wide rectangle around *both* eyes, for looking at (blink contact sheets);
* :func:`eye_patch` — a square around one eye, the input of Intel OMZ ``open-closed-eye-0001``.

RetinaFace's landmarks are eye *centres* (index 0 on the image's left, 1 on its right), not corners, so sizes are
set from the inter-ocular distance (IOD, centre to centre): an adult eye is about 0.45 IOD wide, and Intel's own
demos crop an eye box about 1.8x the corner distance, i.e. about 0.8 IOD.

Toolchain only; the runtime never imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors, paths

#: eye patch side as a multiple of the inter-ocular distance (1.8x an eye's corner distance of ~0.45 IOD)
EYE_PATCH_IOD = 0.8
#: both-eyes strip: width as a multiple of the IOD
STRIP_WIDTH_IOD = 2.2
OMZ_EYE_STATE = "omz/open-closed-eye-0001/open-closed-eye.onnx"
OMZ_EYE_INPUT_PX = 32


def eye_line(landmarks5_px: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Midpoint of the eye centres (2,) px, inter-ocular distance px, eye-line angle in degrees (> 0 = the line
    falls toward the image's right, i.e. the face is tilted clockwise)."""
    left, right = np.asarray(landmarks5_px[0], np.float64), np.asarray(landmarks5_px[1], np.float64)
    vec = right - left
    return (left + right) / 2, float(np.hypot(*vec)), math.degrees(math.atan2(vec[1], vec[0]))


def _levelled_crop(image_bgr: np.ndarray, center_xy: np.ndarray, width_px: float, angle_deg: float,
                   out_wh: tuple[int, int]) -> np.ndarray:
    """A rectangle ``width_px`` wide (its height follows ``out_wh``'s aspect) centred at ``center_xy``, turned by
    ``angle_deg`` so the content is level, resampled to ``out_wh``. Outside the image: replicated border."""
    out_w, out_h = out_wh
    matrix = cv2.getRotationMatrix2D((float(center_xy[0]), float(center_xy[1])), angle_deg, out_w / max(width_px, 1.0))
    matrix[:, 2] += np.array([out_w / 2, out_h / 2]) - center_xy
    return cv2.warpAffine(image_bgr, matrix, out_wh, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def eye_strip(image_bgr: np.ndarray, landmarks5_px: np.ndarray, box_xyxy_px: np.ndarray,
              out_wh: tuple[int, int] = (176, 64), zoom_out: float = 1.0) -> np.ndarray:
    """(out_h, out_w, 3) uint8 levelled strip centred between the eyes. Its width is the larger of 2.2 IOD and 0.9
    of the face box width (a turned face has a small IOD but still eyes to show), times ``zoom_out``; its height
    follows ``out_wh``'s aspect (a square ``out_wh`` shows brows to mouth)."""
    center, iod, angle = eye_line(landmarks5_px)
    width = zoom_out * max(STRIP_WIDTH_IOD * iod, 0.9 * float(box_xyxy_px[2] - box_xyxy_px[0]))
    return _levelled_crop(image_bgr, center, width, angle, out_wh)


def eye_patch(image_bgr: np.ndarray, landmarks5_px: np.ndarray, which: int,
              size_px: int = OMZ_EYE_INPUT_PX) -> np.ndarray:
    """(size, size, 3) uint8 levelled square around eye ``which`` (0 = image-left, 1 = image-right landmark)."""
    _, iod, angle = eye_line(landmarks5_px)
    return _levelled_crop(image_bgr, np.asarray(landmarks5_px[which], np.float64), EYE_PATCH_IOD * iod, angle,
                          (size_px, size_px))


@dataclass
class OmzEyeState:
    """Intel OMZ ``open-closed-eye-0001`` (Apache-2.0) on ONNX Runtime CPU, one thread.

    Input (1, 3, 32, 32) BGR ``(pixel - 127) / 255``; output (1, 2, 1, 1) softmax, **index 0 = closed**."""

    model_path: Path

    def __post_init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def find(cls) -> OmzEyeState:
        found = paths.find_file(OMZ_EYE_STATE)
        if found is None:
            raise errors.IMSError(errors.MODEL_NOT_FOUND, f"{OMZ_EYE_STATE} not found on IMS_MODEL_PATH",
                                  "add ../shared/models to IMS_MODEL_PATH")
        return cls(found)

    def closed_probability(self, patches_bgr: np.ndarray) -> np.ndarray:
        """(N, 32, 32, 3) uint8 BGR eye patches → (N,) probability the eye is closed."""
        blob = (np.asarray(patches_bgr, np.float32).transpose(0, 3, 1, 2) - 127.0) / 255.0
        out = [self._session.run(None, {self._input: b[None]})[0].reshape(-1) for b in blob]
        return np.array([o[0] for o in out], np.float32)

    def face_closed_probability(self, image_bgr: np.ndarray, landmarks5_px: np.ndarray) -> float:
        """Closed probability of a face: the smaller of its two eyes' (closed only when both look closed; on a
        turned face the far eye's patch shows the nose or hair and reads "closed" by itself)."""
        patches = np.stack([eye_patch(image_bgr, landmarks5_px, i) for i in (0, 1)])
        return float(self.closed_probability(patches).min())
