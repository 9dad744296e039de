"""Face alignment: a similarity transform from the detector's 5 landmarks to a canonical template, one warpAffine.

The template is the widely used 112x112 five-point face template (eyes, nose, mouth corners in RetinaFace's order:
image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner), made exactly
left/right symmetric so that a horizontally flipped crop is again an aligned crop (the face-state network is
trained with flips). The transform is the least-squares similarity over all five points (closed form in 2-D;
the same as Umeyama 1991 without reflection): written out here (a few lines of numpy) because it is deterministic,
whereas ``cv2.estimateAffinePartial2D`` runs RANSAC on five points and can drop some of them.

Because the crop is de-rotated, angles the network predicts are in the *crop* frame; :func:`crop_to_image_angles`
puts the rotation back (roll adds, the gaze direction turns about the optical axis). Head yaw and pitch are
treated as independent of in-plane rotation (roll is the last rotation, about the camera axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: the five-point template for a 112x112 crop, (5, 2) x, y pixels (before symmetrisation)
_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                          [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def _symmetric(template: np.ndarray, width: float) -> np.ndarray:
    """Average each point with the mirror image of its partner so that the template is exactly symmetric."""
    mirror = template[[1, 0, 2, 4, 3]].copy()
    mirror[:, 0] = width - mirror[:, 0]
    return (template + mirror) / 2


TEMPLATE_112 = _symmetric(_TEMPLATE_112, 112.0)


def template_px(crop_size_px: int, margin_px: int = 0) -> np.ndarray:
    """The (5, 2) template scaled to a ``crop_size_px`` square, shifted by ``margin_px`` (a wider canvas)."""
    return TEMPLATE_112 * (crop_size_px / 112.0) + margin_px


def similarity_lstsq(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation, no reflection) mapping src → dst.

    ``src_xy``, ``dst_xy``: (N, 2) points, N ≥ 2. Returns the (2, 3) float64 matrix M with ``dst ≈ M @ [x, y, 1]``.

    In 2-D the proper similarity is ``[[a, -b], [b, a]]`` plus a translation, linear in (a, b), so the least-squares
    fit is closed-form (Umeyama's SVD solution with the reflection excluded gives the same matrix, to 1e-13,
    at twice the cost — it runs every frame): on centred points ``a = Σ s·d / Σ|s|²`` and
    ``b = Σ (s_x d_y − s_y d_x) / Σ|s|²``. A reflection cannot be expressed, so none is ever returned.
    """
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    var_src = float((src_c * src_c).sum())
    if var_src > 0:
        a = float((src_c * dst_c).sum()) / var_src
        b = float((src_c[:, 0] * dst_c[:, 1] - src_c[:, 1] * dst_c[:, 0]).sum()) / var_src
    else:  # all source points coincide: no rotation or scale can be read from them
        a, b = 1.0, 0.0
    matrix = np.empty((2, 3))
    matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1] = a, -b, b, a
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and how it was made.

    ``crop_bgr``: (S, S, 3) uint8. ``matrix``: (2, 3) image → crop. ``roll_deg``: the face's in-plane rotation in
    the image that the crop removed (> 0 = tilted clockwise in the image). ``scale``: crop pixels per image pixel.
    """

    crop_bgr: np.ndarray
    matrix: np.ndarray
    roll_deg: float
    scale: float


def matrix_roll_deg(matrix: np.ndarray) -> float:
    """In-plane rotation (degrees, clockwise in the image > 0) that ``matrix`` (image → crop) undoes."""
    return -math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))


def align_face(image_bgr: np.ndarray, landmarks_px: np.ndarray, crop_size_px: int = 112,
               margin_px: int = 0, out: np.ndarray | None = None) -> AlignedFace:
    """Warp the face to the canonical template: one ``cv2.warpAffine`` to a (S+2m, S+2m) crop.

    ``out``: a (S+2m, S+2m, 3) uint8 array to warp into (the stage reuses one: no per-frame allocation); the
    returned ``crop_bgr`` is then ``out`` itself.

    Grey / NIR frames arrive as three equal channels (see :class:`ims_runtime.types.Frame`); a 2-D grey image is
    accepted too and replicated. Borders are replicated so that faces at the frame edge do not get black bars the
    network never saw in training.
    """
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    matrix = similarity_lstsq(landmarks_px, template_px(crop_size_px, margin_px))
    side = crop_size_px + 2 * margin_px
    if out is not None and (out.shape != (side, side, 3) or out.dtype != np.uint8):
        raise ValueError(f"out must be a ({side}, {side}, 3) uint8 array, got {out.shape} {out.dtype}")
    crop = cv2.warpAffine(image_bgr, matrix, (side, side), dst=out, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    scale = float(math.hypot(matrix[0, 0], matrix[1, 0]))
    return AlignedFace(crop_bgr=crop, matrix=matrix, roll_deg=matrix_roll_deg(matrix), scale=scale)


def rotate_gaze(pitch_rad: float, yaw_rad: float, angle_deg: float) -> tuple[float, float]:
    """Turn a gaze direction about the camera's optical axis by ``angle_deg`` (clockwise in the image > 0).

    Gaze angles follow the project convention (yaw > 0 toward the image's right, pitch > 0 up, (0, 0) = into
    the camera). Returns (pitch_rad, yaw_rad).
    """
    x = math.cos(pitch_rad) * math.sin(yaw_rad)    # toward the image's right
    y_down = -math.sin(pitch_rad)                  # toward the image's bottom
    z = math.cos(pitch_rad) * math.cos(yaw_rad)    # toward the camera
    a = math.radians(angle_deg)
    # in y-down image coordinates the standard rotation matrix turns clockwise on screen
    xr = math.cos(a) * x - math.sin(a) * y_down
    yr = math.sin(a) * x + math.cos(a) * y_down
    return math.asin(max(-1.0, min(1.0, -yr))), math.atan2(xr, z)


def crop_to_image_angles(gaze_pitch_yaw_rad: tuple[float, float], head_yaw_pitch_roll_deg: tuple[float, float, float],
                         roll_deg: float) -> tuple[tuple[float, float], tuple[float, float, float]]:
    """Angles predicted in the aligned crop → angles in the camera image (undo the alignment's de-rotation)."""
    pitch, yaw = rotate_gaze(gaze_pitch_yaw_rad[0], gaze_pitch_yaw_rad[1], roll_deg)
    h_yaw, h_pitch, h_roll = head_yaw_pitch_roll_deg
    return (pitch, yaw), (h_yaw, h_pitch, h_roll + roll_deg)


def image_to_crop_angles(gaze_pitch_yaw_rad: tuple[float, float], head_yaw_pitch_roll_deg: tuple[float, float, float],
                         roll_deg: float) -> tuple[tuple[float, float], tuple[float, float, float]]:
    """The inverse of :func:`crop_to_image_angles` (used to make training targets in the crop frame)."""
    return crop_to_image_angles(gaze_pitch_yaw_rad, head_yaw_pitch_roll_deg, -roll_deg)
