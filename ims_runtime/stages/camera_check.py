"""Camera-blocked detection: is the lens covered, black or saturated? Decided from the frames themselves.

A driver-monitoring system must say when it cannot see (Euro NCAP: availability; the policy's ``camera_blocked``
alert). A frame *looks blocked* when the detector found no face and the image has no usable content: almost no
texture (grey standard deviation below ``max_std``) or almost black / white. The decision has time hysteresis
(``blocked_after_s`` / ``clear_after_s``, from the frames' capture times) so that a hand passing the lens or one
dark frame does not flip it. Pure apart from its small state; thresholds and their measured basis are in
:class:`~ims_runtime.spec.schema.CameraCheckSpec`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ims_runtime.spec.schema import CameraCheckSpec


def image_stats(image_bgr: np.ndarray, stride_px: int) -> tuple[float, float]:
    """(mean, standard deviation) of the grey image sampled every ``stride_px`` pixels, 0..255 scale."""
    sample = image_bgr[::stride_px, ::stride_px]
    grey = cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY) if sample.ndim == 3 else sample
    mean, std = cv2.meanStdDev(grey)
    return float(mean[0, 0]), float(std[0, 0])


class CameraBlockedCheck:
    """Per-frame ``update(t_ns, image, face_found) -> bool``: the camera is blocked at this frame."""

    name = "camera_check"

    def __init__(self, spec: CameraCheckSpec) -> None:
        self.spec = spec
        self.blocked = False
        self._since_ns: int | None = None  # when the frames started to disagree with the current decision

    def looks_blocked(self, image_bgr: np.ndarray, face_found: bool) -> bool:
        if face_found:
            return False
        mean, std = image_stats(image_bgr, self.spec.stride_px)
        return std < self.spec.max_std or mean < self.spec.min_mean or mean > self.spec.max_mean

    def update(self, t_ns: int, image_bgr: np.ndarray, face_found: bool) -> bool:
        looks = self.looks_blocked(image_bgr, face_found)
        if looks == self.blocked:
            self._since_ns = None
            return self.blocked
        if self._since_ns is None:
            self._since_ns = t_ns
        needed_s = self.spec.blocked_after_s if looks else self.spec.clear_after_s
        if (t_ns - self._since_ns) / 1e9 >= needed_s:
            self.blocked, self._since_ns = looks, None
        return self.blocked

    def reset(self) -> None:
        self.blocked = False
        self._since_ns = None
