"""Static INT8 QDQ quantisation for Qualcomm HTP with ONNX Runtime's QNN recipe.

``get_qnn_qdq_config`` + ``quantize`` (onnxruntime.quantization) produce a QDQ model whose every node the QNN HTP
backend accepts: uint8 activations, int8 symmetric per-channel weights. We use the library instead of writing
our own QDQ insertion because it knows HTP's constraints (e.g. which ops need shared input/output scales).
HTP needs static shapes, so the float model must have a fixed input size (``ims-opt export retinaface
--input-size W H``). Calibration uses a handful of real frames, preprocessed exactly as the runtime's detector
stage does (its :class:`~ims_runtime.stages.face_detector.Letterboxer`), from clips that are *not* the ones the
backend comparison tests on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

from ims_runtime.stages.face_detector import Letterboxer
from ims_runtime.toolchain.export import set_metadata
from ims_runtime.toolchain.manifest import atomic_write_bytes

#: clips the detector is calibrated on; the QNN-vs-CPU comparison uses video02 and video04
CALIBRATION_CLIPS = ("video00.mp4", "video01.mp4")


def shared_dir() -> Path:
    """The project's shared data folder: ``IMS_SHARED_DIR``, else ``../shared`` next to the source checkout."""
    env = os.environ.get("IMS_SHARED_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2].parent / "shared"


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def sample_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` BGR frames spread evenly over a clip."""
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
        raise ValueError(f"no frames could be read from {video}")
    return frames


def retinaface_feeds(videos: Iterable[Path], input_wh_px: tuple[int, int], per_video: int = 6,
                     input_name: str = "input") -> list[dict[str, np.ndarray]]:
    """Calibration feeds: letterboxed, mean-subtracted NCHW tensors as the detector stage makes them."""
    letterbox = Letterboxer(input_wh_px)
    return [{input_name: letterbox(frame)[0].copy()} for video in videos for frame in sample_frames(video, per_video)]


def quantize_for_qnn(float_model: Path, out_path: Path, feeds: list[dict[str, np.ndarray]],
                     activation_type: QuantType = QuantType.QUInt8, weight_type: QuantType = QuantType.QInt8,
                     per_channel: bool = True) -> Path:
    """Float ONNX (static shapes) → QDQ ONNX for QNN HTP, written atomically with ``ims.*`` metadata updated."""
    config = get_qnn_qdq_config(str(float_model), _Feeds(feeds), activation_type=activation_type,
                                weight_type=weight_type, per_channel=per_channel)
    tmp = out_path.with_name(f".{out_path.name}.quant.onnx")
    try:
        quantize(str(float_model), str(tmp), config)
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    set_metadata(proto, {
        "ims.precision": "int8",
        "ims.quantization": f"QDQ for QNN HTP: activations {activation_type.name}, weights {weight_type.name}"
                            f"{' per-channel' if per_channel else ''}, MinMax over {len(feeds)} calibration inputs",
    })
    atomic_write_bytes(out_path, proto.SerializeToString())
    return out_path
