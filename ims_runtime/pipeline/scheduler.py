"""Frame scheduling for ``serve``: a capture thread feeds a small bounded queue where the newest frame wins.

When processing is slower than the camera, waiting frames go stale; processing them in order would make the
service fall further and further behind the road. So the capture thread never waits for the frame loop: when the
queue (``queue_frames``, default 1) is full, the *oldest* waiting frame is dropped and counted. The frame loop
then always gets the most recent frame, and capture-to-publish latency stays bounded by one processing time.

File sources are paced here at their frame rate (``pace=True``), so a recording behaves like a camera, drops
included. With ``pace=False`` (benchmarks, soak) the capture thread instead waits for room: nothing is dropped
and the loop runs as fast as it can.

An optional rate cap (``max_fps``) makes the frame loop take at most that many frames per second; frames that
arrive in between are overwritten in the queue and counted as dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ims_runtime.pipeline.sources import CameraSource, FrameSource
from ims_runtime.types import Frame

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ScheduledFrame:
    frame: Frame
    #: ``time.monotonic_ns()`` when the capture thread got the frame (start of capture-to-publish latency)
    t_grab_ns: int


class FrameScheduler:
    """Runs ``source.frames()`` on a thread; ``next(timeout_s)`` returns the newest waiting frame.

    Counters (read by telemetry): ``captured`` frames taken from the source, ``dropped`` frames discarded
    because a newer one arrived before the loop took them.
    """

    def __init__(self, source: FrameSource, *, queue_frames: int = 1, pace: bool = True,
                 max_fps: float | None = None, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.source = source
        self.queue_frames = queue_frames
        live = isinstance(source, CameraSource)
        self.pace_fps = source.nominal_fps if pace and not live else None
        self.drop_when_full = pace or live  # a camera cannot be paused: its frames are taken or lost
        self.min_period_ns = int(1e9 / max_fps) if max_fps else 0
        self._clock_ns = clock_ns
        self._queue: deque[ScheduledFrame] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.finished = False  # the source ended (file without loop) or failed
        self.error: BaseException | None = None
        self.captured = 0
        self.dropped = 0
        self._last_taken_ns: int | None = None
        self._thread = threading.Thread(target=self._capture, name="ims-capture", daemon=True)

    def start(self) -> FrameScheduler:
        self._thread.start()
        return self

    # -- capture thread ---------------------------------------------------------------------------------------
    def _capture(self) -> None:
        started_ns = self._clock_ns()
        first_capture_ns: int | None = None
        try:
            for frame in self.source.frames():
                if self._stop:
                    break
                if self.pace_fps:
                    # a recording is released at its own frame rate, like a camera would deliver it
                    first_capture_ns = frame.t_capture_ns if first_capture_ns is None else first_capture_ns
                    due_ns = started_ns + (frame.t_capture_ns - first_capture_ns)
                    while not self._stop and (wait_ns := due_ns - self._clock_ns()) > 0:
                        time.sleep(min(wait_ns / 1e9, 0.05))
                self._put(ScheduledFrame(frame, self._clock_ns()))
        except BaseException as exc:  # noqa: BLE001 — reported to the frame loop, which decides
            self.error = exc
            log.error("capture_failed", error=repr(exc))
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def _put(self, item: ScheduledFrame) -> None:
        with self._cond:
            if not self.drop_when_full:
                while len(self._queue) >= self.queue_frames and not self._stop:
                    self._cond.wait(0.1)
            while len(self._queue) >= self.queue_frames:
                self._queue.popleft()  # newest wins: the oldest waiting frame is stale
                self.dropped += 1
            self._queue.append(item)
            self.captured += 1
            self._cond.notify_all()

    # -- frame loop side --------------------------------------------------------------------------------------
    def next(self, timeout_s: float = 0.1) -> ScheduledFrame | None:
        """The newest waiting frame (older waiting ones are dropped), or None after ``timeout_s`` without one.

        With a rate cap, waits until ``1/max_fps`` has passed since the previous frame was taken (frames arriving
        meanwhile replace each other in the queue).
        """
        if self.min_period_ns and self._last_taken_ns is not None:
            wait_ns = self._last_taken_ns + self.min_period_ns - self._clock_ns()
            if wait_ns > 0:
                time.sleep(min(wait_ns / 1e9, timeout_s))
                if self._clock_ns() < self._last_taken_ns + self.min_period_ns:
                    return None
        with self._cond:
            if not self._queue and not self.finished:
                self._cond.wait(timeout_s)
            if not self._queue:
                return None
            while len(self._queue) > 1 and self.drop_when_full:
                self._queue.popleft()
                self.dropped += 1
            item = self._queue.popleft()
            self._cond.notify_all()
        self._last_taken_ns = self._clock_ns()
        return item

    @property
    def exhausted(self) -> bool:
        """The source ended and every frame was taken."""
        with self._cond:
            return self.finished and not self._queue

    def close(self, timeout_s: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
