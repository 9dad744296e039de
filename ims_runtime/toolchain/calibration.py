"""Calibration and evaluation frames: real footage through the runtime's own preprocessing.

Quantisation parameters are only as good as the data they were measured on, so calibration sees exactly what the
vehicle sees: frames decoded by the runtime's :class:`~ims_runtime.pipeline.sources.VideoFileSource` and
letterboxed by the detector stage's :class:`~ims_runtime.stages.face_detector.Letterboxer` (BGR minus mean, NCHW,
padding = mean colour). Clips are sampled at a fixed rate (``every_s``) so the same recipe always gives the same
frames, and the calibration and evaluation clip lists are checked to be disjoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from ims_runtime import errors
from ims_runtime.pipeline.sources import VideoFileSource
from ims_runtime.stages.face_detector import Letterboxer


@dataclass(frozen=True)
class FrameSample:
    """Which frames of which clips: one frame every ``every_s`` seconds, at most ``max_per_clip`` per clip."""

    clips: tuple[Path, ...]
    every_s: float = 0.5
    max_per_clip: int = 1000

    def describe(self) -> dict[str, object]:
        return {"clips": [c.name for c in self.clips], "every_s": self.every_s, "max_per_clip": self.max_per_clip}


def check_disjoint(calibration: Sequence[Path], evaluation: Sequence[Path]) -> None:
    """Raise if a clip is used both to calibrate and to evaluate (accuracy must come from held-apart data)."""
    overlap = {p.resolve() for p in calibration} & {p.resolve() for p in evaluation}
    if overlap:
        raise errors.IMSError(errors.SPEC_INVALID, f"clips used for both calibration and evaluation: "
                              f"{sorted(p.name for p in overlap)}",
                              "calibration and evaluation data must never overlap; fix the recipe")


def fixed_rate_frames(sample: FrameSample) -> Iterator[tuple[str, int, np.ndarray]]:
    """One frame every ``sample.every_s`` seconds of each clip (at most ``max_per_clip``), decoded by the runtime's
    own video source: the frames a recipe calibrates, evaluates, distils and runs QAT on.

    Yields ``(clip name, frame index, HxWx3 uint8 BGR image)`` in a fixed order (clips in order, frames ascending).
    (The QNN detector's calibration picks a fixed count per clip instead:
    :func:`ims_runtime.toolchain.quantize_qnn.qnn_calibration_frames`.)"""
    for clip in sample.clips:
        source = VideoFileSource(clip)
        try:
            step = max(1, round(sample.every_s * source.nominal_fps))
            taken = 0
            for frame in source.frames():
                if frame.frame_id % step:
                    continue
                yield clip.name, frame.frame_id, frame.image_bgr
                taken += 1
                if taken >= sample.max_per_clip:
                    break
        finally:
            source.close()


def letterboxed_tensors(sample: FrameSample, input_wh_px: tuple[int, int]) -> np.ndarray:
    """All sampled frames as one (N, 3, H, W) float32 array, preprocessed exactly as the runtime does."""
    letterbox = Letterboxer(input_wh_px)
    tensors = [letterbox(image)[0].copy() for _, _, image in fixed_rate_frames(sample)]
    if not tensors:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"no frames sampled from {sample.describe()}",
                              "check the recipe's clips")
    return np.concatenate(tensors, axis=0)


class TensorCalibrationReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over a fixed (N, ...) array, one batch-of-one feed per call.

    ``rewind`` lets the same reader serve several calibration passes (e.g. one per calibration method).
    """

    def __init__(self, input_name: str, tensors: np.ndarray) -> None:
        self.input_name = input_name
        self.tensors = tensors
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.tensors):
            return None
        feed = {self.input_name: self.tensors[self._next:self._next + 1]}
        self._next += 1
        return feed

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.tensors)
