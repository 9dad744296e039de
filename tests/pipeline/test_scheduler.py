"""Frame scheduling on real footage: when processing is slower than the camera, the newest frame wins."""

import time

from ims_runtime.pipeline.scheduler import FrameScheduler
from ims_runtime.pipeline.sources import VideoFileSource

SLOW_PROCESSING_S = 0.05  # a frame loop that needs 50 ms per frame, fed at 100 fps


def _drain(scheduler, frames, work_s):
    taken = []
    while len(taken) < frames:
        item = scheduler.next(timeout_s=1.0)
        assert item is not None, "the capture thread stopped delivering"
        taken.append((item, time.monotonic_ns()))
        time.sleep(work_s)
    return taken


def test_slow_processing_gets_the_newest_frame_and_drops_are_counted(clip):
    source = VideoFileSource(clip, fps=100.0, loop=True)
    scheduler = FrameScheduler(source, queue_frames=1, pace=True).start()
    try:
        taken = _drain(scheduler, 25, SLOW_PROCESSING_S)
        ids = [item.frame.frame_id for item, _ in taken]
        waits_ms = [(t - item.t_grab_ns) / 1e6 for item, t in taken]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # ~5 frames arrive per processed one: most are skipped, never queued up
        assert (ids[-1] - ids[0]) / (len(ids) - 1) > 2
        assert scheduler.dropped >= ids[-1] - ids[0] - (len(ids) - 1) - 1
        # a FIFO would have the last frame wait ~25 × 40 ms = 1 s; newest-wins keeps it under one processing time
        assert max(waits_ms[5:]) < 1000 * SLOW_PROCESSING_S * 3
        assert sum(waits_ms[-5:]) / 5 < sum(waits_ms[5:10]) / 5 + 50  # no drift
    finally:
        scheduler.close()
        source.close()


def test_unpaced_file_loses_nothing(clip):
    source = VideoFileSource(clip, loop=False)
    scheduler = FrameScheduler(source, queue_frames=2, pace=False).start()
    try:
        taken = _drain(scheduler, 20, 0.01)
        assert [item.frame.frame_id for item, _ in taken] == list(range(20))
        assert scheduler.dropped == 0
    finally:
        scheduler.close()
        source.close()


def test_rate_cap_limits_the_frames_taken(clip):
    source = VideoFileSource(clip, fps=100.0, loop=True)
    scheduler = FrameScheduler(source, queue_frames=1, pace=True, max_fps=10.0).start()
    try:
        assert scheduler.next(timeout_s=2.0) is not None
        started = time.monotonic()
        taken = 0
        while time.monotonic() - started < 1.0:
            taken += scheduler.next(timeout_s=0.2) is not None
        assert 7 <= taken <= 11  # 10 fps cap over 1 s
        assert scheduler.dropped > 40  # the other ~90 frames of that second were replaced by newer ones
    finally:
        scheduler.close()
        source.close()


def test_end_of_file_is_reported_once_every_frame_was_taken(tmp_path, clip):
    source = VideoFileSource(clip, loop=False)
    scheduler = FrameScheduler(source, queue_frames=4, pace=False).start()
    try:
        count = 0
        while not scheduler.exhausted:
            count += scheduler.next(timeout_s=1.0) is not None
        assert count == source.frame_count and scheduler.error is None
    finally:
        scheduler.close()
        source.close()
