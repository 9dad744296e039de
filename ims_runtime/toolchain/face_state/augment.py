"""Augmentation that imitates a cabin camera, applied to the stored wide aligned crops.

Geometry: landmark jitter (the 5 landmarks moved by the deployed INT8 detector's measured offset plus random noise,
then re-aligned exactly as the runtime aligns: the crop a noisier detector would give), one similarity (scale,
rotation, shift jitter — imitating head roll and framing) and an optional
horizontal flip, folded into a single warpAffine from the wide crop to the S x S network input; the labels move
with it (roll and the gaze direction turn with the rotation; a flip negates yaw and roll and swaps the eyes).
Photometric: grey / NIR look (grey, flattened contrast, gamma), low light (dark gamma + sensor noise), motion blur
(a random line kernel), partial occlusion (a random rectangle of flat or noise fill: a hand, a cup, sunglasses).
All randomness comes from the ``numpy.random.Generator`` passed in, so a seed reproduces an epoch exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ims_runtime.stages.alignment import rotate_gaze, similarity_lstsq, template_px


@dataclass(frozen=True)
class AugmentRecipe:
    scale_jitter: float = 0.08      # ± relative scale
    rotation_deg: float = 12.0      # ± degrees
    shift_px: float = 4.0           # ± pixels at the network input size
    flip_p: float = 0.5
    grey_p: float = 0.4             # grey / NIR look
    low_light_p: float = 0.25
    blur_p: float = 0.2
    occlusion_p: float = 0.2
    max_occlusion_frac: float = 0.35  # of the crop side
    #: landmark noise, template pixels at 112x112: per sample a standard deviation drawn from U(0, 2x this), so
    #: the errors have the heavier tail of a real detector's (0 = off)
    landmark_jitter_px: float = 0.0
    #: mean (5, 2) offset of the deployed detector's landmarks from the labelling detector's, template pixels
    #: (left eye, right eye, nose, left mouth, right mouth as the image shows them); () = none
    landmark_offset_px: tuple[tuple[float, float], ...] = ()


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the horizontally mirrored crop (crop frame): yaw and roll negate, eyes swap. (9,) → (9,)."""
    out = labels.copy()
    out[1] = -labels[1]        # gaze yaw
    out[2] = -labels[2]        # head yaw
    out[4] = -labels[4]        # head roll
    out[5], out[6] = labels[6], labels[5]
    return out


def rotate_labels(labels: np.ndarray, angle_deg: float) -> np.ndarray:
    """Labels after the crop's content turned ``angle_deg`` clockwise (crop frame)."""
    out = labels.copy()
    if not np.isnan(labels[0]):
        out[0], out[1] = rotate_gaze(float(labels[0]), float(labels[1]), angle_deg)
    out[4] = labels[4] + angle_deg
    return out


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def landmark_jitter_matrix(size_px: int, margin_px: int, recipe: AugmentRecipe,
                           rng: np.random.Generator) -> np.ndarray:
    """(2, 3) wide crop → S x S crop: the runtime's alignment of the landmarks the deployed detector would give.

    The stored wide crop has the labelling detector's landmarks exactly on the template (shifted by the margin);
    they are moved by the recipe's mean offset and random noise, and the similarity that aligns the moved points
    to the template is the crop the runtime would cut from them. Without jitter: a plain shift by the margin."""
    template = template_px(size_px)
    moved = template + margin_px
    scale = size_px / 112.0
    if recipe.landmark_offset_px:
        moved = moved + np.asarray(recipe.landmark_offset_px, np.float64) * scale
    if recipe.landmark_jitter_px > 0:
        sigma = rng.uniform(0, 2 * recipe.landmark_jitter_px) * scale
        moved = moved + rng.normal(0, sigma, size=moved.shape)
    return similarity_lstsq(moved, template)


def geometric(wide_crop: np.ndarray, labels: np.ndarray, size_px: int, margin_px: int, recipe: AugmentRecipe,
              rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Wide crop (S+2m, S+2m, 3) → (S, S, 3) network crop and its labels. ``rng=None``: the centre, no jitter."""
    if rng is None:
        return wide_crop[margin_px:margin_px + size_px, margin_px:margin_px + size_px], labels
    align = landmark_jitter_matrix(size_px, margin_px, recipe, rng)
    scale = 1 + rng.uniform(-recipe.scale_jitter, recipe.scale_jitter)
    angle = rng.uniform(-recipe.rotation_deg, recipe.rotation_deg)   # clockwise on screen
    shift = rng.uniform(-recipe.shift_px, recipe.shift_px, size=2)
    # getRotationMatrix2D turns counter-clockwise for positive angles: pass -angle for a clockwise turn
    frame = cv2.getRotationMatrix2D((size_px / 2, size_px / 2), -angle, scale)
    frame[:, 2] += shift
    matrix = (_homogeneous(frame) @ _homogeneous(align))[:2]
    crop = cv2.warpAffine(wide_crop, matrix, (size_px, size_px), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    # in y-down pixels a matrix [[c, -s], [s, c]] turns content clockwise by atan2(s, c)
    labels = rotate_labels(labels, float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))))
    if rng.random() < recipe.flip_p:
        crop = crop[:, ::-1]
        labels = flip_labels(labels)
    return np.ascontiguousarray(crop), labels


def photometric(crop: np.ndarray, recipe: AugmentRecipe, rng: np.random.Generator) -> np.ndarray:
    """Cabin-camera look on a (S, S, 3) uint8 BGR crop."""
    img = crop.astype(np.float32)
    if rng.random() < recipe.grey_p:
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        # NIR: skin looks brighter and flatter than in visible light
        grey = 255 * (grey / 255) ** rng.uniform(0.6, 1.1)
        grey = grey * rng.uniform(0.7, 1.1) + rng.uniform(0, 30)
        img = np.repeat(grey[..., None], 3, axis=2)
    if rng.random() < recipe.low_light_p:
        img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(1.5, 3.0)
        img += rng.normal(0, rng.uniform(2, 10), size=img.shape[:2])[..., None]
    else:
        img = img * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
    if rng.random() < recipe.blur_p:
        length = int(rng.integers(3, 9))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1 / length
        turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < recipe.occlusion_p:
        size = img.shape[0]
        w = int(size * rng.uniform(0.1, recipe.max_occlusion_frac))
        h = int(size * rng.uniform(0.1, recipe.max_occlusion_frac))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        img[y:y + h, x:x + w] = rng.uniform(0, 255) if rng.random() < 0.5 else rng.uniform(0, 255, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def to_tensor_layout(crop_bgr: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 BGR → (3, S, S) float32 ``(pixel - 127.5) / 127.5`` (the network's input contract)."""
    return (crop_bgr.astype(np.float32).transpose(2, 0, 1) - 127.5) / 127.5

