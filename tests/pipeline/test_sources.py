"""Frame sources: deterministic timestamps for files, sorted image folders, grey frames, camera reconnects."""

import cv2
import numpy as np
import pytest
from conftest import shared

from ims_runtime import errors
from ims_runtime.pipeline.sources import CameraSource, ImageFolderSource, VideoFileSource, open_source
from ims_runtime.spec.schema import SourceSpec


def test_video_timestamps_come_from_frame_index_and_fps(clip):
    source = VideoFileSource(clip, fps=25.0)
    frames = [f for _, f in zip(range(4), source.frames())]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    assert [f.t_capture_ns for f in frames] == [0, 40_000_000, 80_000_000, 120_000_000]
    assert frames[0].image_bgr.shape == (720, 1280, 3)
    source.close()
    source.close()  # safe twice


def test_looping_video_keeps_frame_ids_and_time_increasing(clip):
    source = VideoFileSource(clip, loop=True)
    n = source.frame_count
    frames = [f for _, f in zip(range(n + 3), source.frames())]
    assert frames[-1].frame_id == n + 2
    assert np.all(np.diff([f.t_capture_ns for f in frames]) > 0)
    # after the loop the pictures repeat
    assert np.array_equal(frames[n].image_bgr, frames[0].image_bgr)


def test_grey_source_gives_three_equal_channels(clip):
    frame = next(VideoFileSource(clip, grey=True).frames())
    assert frame.image_bgr.shape[2] == 3
    assert np.array_equal(frame.image_bgr[..., 0], frame.image_bgr[..., 2])


def test_image_folder_is_read_in_name_order(tmp_path):
    image = cv2.imread(str(shared("data", "videos", "image02.jpg")))
    for name in ["b.jpg", "a.png", "c.jpg", "notes.txt"]:
        if name.endswith("txt"):
            (tmp_path / name).write_text("not an image")
        else:
            cv2.imwrite(str(tmp_path / name), image)
    frames = list(ImageFolderSource(tmp_path, fps=5).frames())
    assert [f.source for f in frames] == ["a.png", "b.jpg", "c.jpg"]
    assert [f.t_capture_ns for f in frames] == [0, 200_000_000, 400_000_000]


@pytest.mark.parametrize("make, code", [
    (lambda p: p / "missing.mp4", errors.SOURCE_NOT_FOUND),
    (lambda p: (p / "junk.mp4").write_bytes(b"\x00" * 4096) and p / "junk.mp4", errors.SOURCE_UNREADABLE),
    (lambda p: (p / "empty").mkdir() or p / "empty", errors.SOURCE_UNREADABLE),
])
def test_unreadable_inputs_raise_source_errors(tmp_path, make, code):
    with pytest.raises(errors.IMSError) as info:
        open_source(SourceSpec(), str(make(tmp_path)))
    assert info.value.code is code


class FlakyCamera:
    """Stands in for a V4L2 device that cannot exist here: the ``cv2.VideoCapture`` interface over a real clip.

    The device delivers ``frames_before_unplug`` frames, then reads fail (unplugged); it can be reopened after
    ``failed_opens`` further attempts.
    """

    opens = 0

    def __init__(self, clip, frames_before_unplug, failed_opens_after_unplug):
        self.clip = clip
        self.frames_before_unplug = frames_before_unplug
        self.failed_opens = failed_opens_after_unplug
        self.unplugged = False

    def __call__(self, device):
        FlakyCamera.opens += 1
        fake = self

        class Capture:
            def __init__(self):
                self.cap = cv2.VideoCapture(str(fake.clip))
                self.reads = 0
                self.ok = not fake.unplugged or fake.failed_opens <= 0
                if fake.unplugged:
                    fake.failed_opens -= 1

            def isOpened(self):
                return self.ok

            def read(self):
                if not fake.unplugged and self.reads >= fake.frames_before_unplug:
                    fake.unplugged = True
                if fake.unplugged and self.reads >= fake.frames_before_unplug:
                    return False, None
                self.reads += 1
                return self.cap.read()

            def set(self, prop, value):
                return True

            def release(self):
                self.cap.release()

        return Capture()


def test_a_camera_that_disappears_is_reopened_with_backoff_and_the_outage_reported(clip):
    events = []
    camera = CameraSource("/dev/video0", backoff_s=(0.01, 0.04), on_outage=events.append,
                          open_capture=FlakyCamera(clip, frames_before_unplug=3, failed_opens_after_unplug=2))
    frames = [f for _, f in zip(range(6), camera.frames())]
    assert len(frames) == 6 and [f.frame_id for f in frames] == list(range(6))
    kinds = [e["event"] for e in events]
    assert kinds == ["camera_lost", "camera_lost", "camera_recovered"]
    assert [e["retry_in_s"] for e in events[:2]] == [0.01, 0.02]  # exponential backoff
    assert camera.outages == 1


def test_replay_of_a_camera_that_is_not_present_fails_at_once():
    camera = CameraSource("/dev/video99", fail_fast=True)
    with pytest.raises(errors.IMSError) as info:
        next(camera.frames())
    assert info.value.code is errors.SOURCE_CAMERA_NOT_PRESENT


def test_serve_keeps_retrying_a_missing_camera_until_stopped():
    events = []
    attempts = iter(range(100))
    camera = CameraSource("/dev/video99", backoff_s=(0.001, 0.002), on_outage=events.append,
                          should_stop=lambda: next(attempts) > 20)
    assert list(camera.frames()) == []
    assert len(events) >= 3 and all(e["event"] == "camera_lost" for e in events)
