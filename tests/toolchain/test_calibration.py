"""Calibration data: real frames through the runtime's Letterboxer, fixed order, never overlapping evaluation."""

import numpy as np
import pytest
from conftest import shared

from ims_runtime import errors
from ims_runtime.pipeline.sources import VideoFileSource
from ims_runtime.toolchain.calibration import (
    FrameSample,
    TensorCalibrationReader,
    check_disjoint,
    fixed_rate_frames,
    letterboxed_tensors,
)


def test_sampling_takes_one_frame_every_interval_in_a_fixed_order():
    clip = shared("data", "videos", "video01.mp4")
    sample = FrameSample((clip,), every_s=2.0, max_per_clip=3)
    first = [(name, index) for name, index, _ in fixed_rate_frames(sample)]
    again = [(name, index) for name, index, _ in fixed_rate_frames(sample)]
    assert first == again
    source = VideoFileSource(clip)
    fps = source.nominal_fps
    source.close()
    step = round(2.0 * fps)  # one frame every 2 s of video
    assert first == [(clip.name, 0), (clip.name, step), (clip.name, 2 * step)] and step > 1


def test_tensors_are_the_runtime_preprocessing_with_mean_padding():
    clip = shared("data", "videos", "video01.mp4")
    tensors = letterboxed_tensors(FrameSample((clip,), every_s=5.0, max_per_clip=2), (640, 384))
    assert tensors.shape == (2, 3, 384, 640) and tensors.dtype == np.float32
    # 1280x720 at scale 0.5 is 640x360: the bottom 24 rows are padding = mean colour = 0 after subtraction
    assert np.all(tensors[:, :, 360:, :] == 0) and np.abs(tensors[:, :, :360, :]).mean() > 10


def test_calibration_and_evaluation_clips_must_not_overlap():
    videos = shared("data", "videos")
    with pytest.raises(errors.IMSError) as info:
        check_disjoint([videos / "video00.mp4", videos / "video04.mp4"], [videos / "video04.mp4"])
    assert "video04.mp4" in info.value.message
    check_disjoint([videos / "video00.mp4"], [videos / "video04.mp4"])


def test_reader_feeds_every_tensor_once_then_rewinds():
    tensors = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    reader = TensorCalibrationReader("input", tensors)
    feeds = []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed["input"])
    assert [f.shape for f in feeds] == [(1, 2)] * 3
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["input"], tensors[:1])


def test_qnn_calibration_takes_count_frames_from_first_to_last(tmp_path):
    import cv2

    from ims_runtime.toolchain.quantize_qnn import qnn_calibration_frames

    clip = shared("data", "videos", "video01.mp4")
    capture = cv2.VideoCapture(str(clip))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.set(cv2.CAP_PROP_POS_FRAMES, total - 1)
    ok_last, last = capture.read()
    capture.release()
    assert ok and ok_last
    frames = qnn_calibration_frames(clip, 4)
    assert len(frames) == 4 and frames[0].shape == first.shape
    np.testing.assert_array_equal(frames[0], first)
    np.testing.assert_array_equal(frames[-1], last)
    assert not np.array_equal(frames[1], frames[2])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(errors.IMSError) as info:
        qnn_calibration_frames(broken, 2)
    assert info.value.code is errors.SOURCE_UNREADABLE and "broken.mp4" in info.value.message
