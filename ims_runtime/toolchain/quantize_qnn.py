"""Calibration inputs for the QNN HTP detector model (static input size; ``ims-opt quantize-qnn retinaface``).

The quantisation itself is :func:`ims_runtime.toolchain.quantize.quantize_qnn` (ONNX Runtime's
``get_qnn_qdq_config`` + ``quantize``: uint8 activations, int8 symmetric per-channel weights — the library knows
HTP's constraints, e.g. which ops need shared input/output scales). HTP needs static shapes, so the float model
must have a fixed input size (``ims-opt export retinaface --input-size W H``). Calibration uses a handful of real
frames, preprocessed exactly as the runtime's detector stage does (its
:class:`~ims_runtime.stages.face_detector.Letterboxer`), from clips that are *not* the ones the backend comparison
tests on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors
from ims_runtime.stages.face_detector import Letterboxer

#: clips the detector is calibrated on; the QNN-vs-CPU comparison uses video02 and video04
CALIBRATION_CLIPS = ("video00.mp4", "video01.mp4")


def qnn_calibration_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` BGR frames spread evenly over the whole clip (first to last), for the QNN detector's calibration.

    A fixed count per clip rather than the recipes' fixed rate (:func:`ims_runtime.toolchain.calibration.
    fixed_rate_frames`): a handful of frames is enough for MinMax ranges, spread so that they sample all of the
    clip. Raises ``SOURCE_UNREADABLE`` when no frame can be read."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(frame)
    capture.release()
    if not frames:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"no frames could be read from {video}",
                              "pass a video file OpenCV can decode (e.g. the shared data/videos/*.mp4)")
    return frames


def qnn_calibration_tensors(videos: Iterable[Path], input_wh_px: tuple[int, int], per_video: int = 6) -> np.ndarray:
    """The QNN detector's calibration inputs (N, 3, H, W), N = ``per_video`` x clips: :func:`qnn_calibration_frames`
    letterboxed and mean-subtracted as the detector stage does it.

    Quantise them with :func:`ims_runtime.toolchain.quantize.quantize_qnn` (ONNX Runtime's QNN recipe).
    """
    letterbox = Letterboxer(input_wh_px)
    return np.concatenate([letterbox(frame)[0].copy() for video in videos
                           for frame in qnn_calibration_frames(video, per_video)])
