"""Augmentation of grey eye crops, imitating a cabin camera and the deployed detector's landmark error.

Geometry: the stored wide crop (2S x 2S, its centre S x S is the runtime crop) → S x S through one similarity
with scale, rotation and shift jitter (the INT8 detector moves eye landmarks by a few pixels, heads roll) and a
horizontal flip (a left eye looks like a mirrored right eye). Photometric: NIR look (gamma, flattened or
stretched contrast, brightness), low resolution (down to a few pixels and back: small or distant faces), blur
(Gaussian or motion), sensor noise, and glasses-like occlusion (a dark frame bar across the crop and/or a
bright lens reflection). Randomness only from the ``numpy.random.Generator`` passed in (seeded epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentRecipe:
    scale_jitter: float = 0.15       # ± relative crop side
    rotation_deg: float = 15.0       # ± degrees
    shift_frac: float = 0.12         # ± fraction of the crop side
    flip_p: float = 0.5
    nir_p: float = 0.5               # gamma / contrast / brightness
    low_res_p: float = 0.25
    min_res_px: int = 8
    blur_p: float = 0.3
    noise_p: float = 0.3
    glasses_p: float = 0.2
    reflection_p: float = 0.1


def geometric(wide: np.ndarray, size_px: int, recipe: AugmentRecipe, rng: np.random.Generator | None) -> np.ndarray:
    """(2S, 2S) wide grey crop → (S, S) network crop; ``rng=None`` gives exactly the runtime crop (the centre)."""
    c = wide.shape[0] / 2
    if rng is None:
        lo = int(c - size_px / 2)
        return wide[lo:lo + size_px, lo:lo + size_px]
    scale = 1 + rng.uniform(-recipe.scale_jitter, recipe.scale_jitter)
    matrix = cv2.getRotationMatrix2D((c, c), rng.uniform(-recipe.rotation_deg, recipe.rotation_deg), scale)
    matrix[:, 2] += rng.uniform(-recipe.shift_frac, recipe.shift_frac, size=2) * size_px - (c - size_px / 2)
    crop = cv2.warpAffine(wide, matrix, (size_px, size_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < recipe.flip_p:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def photometric(crop: np.ndarray, recipe: AugmentRecipe, rng: np.random.Generator) -> np.ndarray:
    """Cabin-camera look on an (S, S) uint8 grey crop."""
    size = crop.shape[0]
    img = crop.astype(np.float32)
    if rng.random() < recipe.nir_p:
        img = 255 * (img / 255) ** rng.uniform(0.5, 1.6)
        mean = img.mean()
        img = (img - mean) * rng.uniform(0.5, 1.4) + mean + rng.uniform(-40, 40)
    if rng.random() < recipe.glasses_p:
        # a frame bar across the crop near the brow or under the eye, slightly tilted
        y = int(rng.choice([rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)]) * size)
        thickness = int(rng.integers(1, max(2, size // 10)))
        tilt = int(rng.uniform(-0.1, 0.1) * size)
        cv2.line(img, (0, y - tilt), (size - 1, y + tilt), float(rng.uniform(0, 80)), thickness)
    if rng.random() < recipe.reflection_p:
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        axes = (int(rng.integers(2, size // 3)), int(rng.integers(1, size // 5)))
        overlay = np.zeros_like(img)
        cv2.ellipse(overlay, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(60, 200)), -1)
        img = img + cv2.GaussianBlur(overlay, (0, 0), 1.5)
    if rng.random() < recipe.low_res_p:
        small = int(rng.integers(recipe.min_res_px, size))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < recipe.blur_p:
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
        else:
            length = int(rng.integers(3, 7))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1 / length
            turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
            kernel = cv2.warpAffine(kernel, turn, (length, length))
            img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    if rng.random() < recipe.noise_p:
        img = img + rng.normal(0, rng.uniform(2, 10), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
