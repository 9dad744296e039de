"""RetinaFace anchors (priors), box/landmark decoding and non-maximum suppression, in numpy.

Kept separate from the stage so that the maths can be tested against hand-computed cases. Conventions follow
biubug6/Pytorch_Retinaface (``layers/functions/prior_box.py``, ``utils/box_utils.py``): priors are
``(cx, cy, w, h)`` normalised by the network input size, ordered feature map by feature map (stride 8, 16, 32),
row-major over the map, then anchor size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: anchor side lengths in input pixels per feature map, and the feature maps' strides
MIN_SIZES_PX: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
STEPS_PX: tuple[int, ...] = (8, 16, 32)
#: the variances the network was trained with: centre offsets x0.1, log-size offsets x0.2
VARIANCE: tuple[float, float] = (0.1, 0.2)


def make_priors(input_w_px: int, input_h_px: int, min_sizes_px: tuple[tuple[int, ...], ...] = MIN_SIZES_PX,
                steps_px: tuple[int, ...] = STEPS_PX) -> np.ndarray:
    """Anchors for one input size: (N, 4) float32 ``cx, cy, w, h`` normalised to the input (0..1).

    N = sum over maps of ceil(H/step) * ceil(W/step) * len(sizes); 10080 for 640x384.
    """
    blocks = []
    for sizes, step in zip(min_sizes_px, steps_px):
        rows, cols = math.ceil(input_h_px / step), math.ceil(input_w_px / step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / input_h_px,
                             (np.arange(cols) + 0.5) * step / input_w_px, indexing="ij")
        per_size = [np.stack([cx, cy, np.full_like(cx, s / input_w_px), np.full_like(cy, s / input_h_px)], -1)
                    for s in sizes]
        # (rows, cols, n_sizes, 4): anchor size varies fastest, as in the reference implementation
        blocks.append(np.stack(per_size, axis=2).reshape(-1, 4))
    return np.concatenate(blocks).astype(np.float32)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variance: tuple[float, float] = VARIANCE) -> np.ndarray:
    """(N, 4) offsets + (N, 4) priors → (N, 4) ``x0, y0, x1, y1`` normalised to the input."""
    centres = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * variance[1])
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


def decode_landmarks(landms: np.ndarray, priors: np.ndarray, variance: tuple[float, float] = VARIANCE) -> np.ndarray:
    """(N, 10) offsets + (N, 4) priors → (N, 5, 2) landmark ``x, y`` normalised to the input."""
    offsets = landms.reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * variance[0] * priors[:, None, 2:]


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first (OpenCV's ``dnn.NMSBoxes``).

    OpenCV wants ``x, y, w, h`` boxes; the score threshold has already been applied by the caller.
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([boxes_xyxy[:, :2], boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, float(iou_threshold),
                            top_k=int(max_keep))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) ``x0, y0, x1, y1`` boxes → (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
