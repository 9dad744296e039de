"""``serve``: build the pipeline, warm up, then process → publish → telemetry → watchdog until told to stop.

Signal handlers only set flags; the loop checks them between frames (a frame takes milliseconds), so SIGTERM
stops the service well within 2 s. Teardown is safe to run twice.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from types import FrameType

import structlog

from ims_runtime.commands._common import build_pipeline
from ims_runtime.logs import RateLimited
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.pipeline.sources import FrameSource, open_source
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.service.notify import Notifier
from ims_runtime.spec import LoadedSpec
from ims_runtime.telemetry.reporter import TelemetryReporter

log = structlog.get_logger("ims_runtime.service")


@dataclass
class ServeOptions:
    source: str | None = None
    loop: bool | None = None
    #: pace file sources at their frame rate, as a camera would deliver them
    pace: bool = True
    max_frames: int | None = None


class Service:
    def __init__(self, loaded: LoadedSpec, options: ServeOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.stop_requested = False
        self.notifier = Notifier()
        self.frame_warnings = RateLimited(log, interval_s=5.0)
        self.pipeline: Pipeline | None = None
        self.publisher: Publisher | None = None
        self.source: FrameSource | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def start(self) -> None:
        spec = self.loaded.spec
        # Bind first: a busy endpoint fails start-up before the (slower) model load.
        self.publisher = Publisher(spec.publish.endpoint, spec.publish.send_hwm_msgs)
        self.pipeline = build_pipeline(self.loaded)
        self.pipeline.warmup()
        self.source = open_source(spec.source, self.options.source, loop=self.options.loop,
                                  on_outage=self._on_outage, should_stop=lambda: self.stop_requested)
        log.info("ready", spec=spec.name, source=self.source.name, endpoint=spec.publish.endpoint,
                 stages=self.pipeline.describe())
        self.notifier.ready(f"running {spec.name}")

    def _on_outage(self, event: dict) -> None:
        self.frame_warnings.warning(event.pop("event"), **event)

    def run(self) -> int:
        """The frame loop. Returns the exit code (0 on a requested stop or the end of a file source)."""
        assert self.pipeline and self.publisher and self.source
        telemetry = TelemetryReporter(self.loaded.spec.publish.telemetry_interval_s)
        fps = self.source.nominal_fps if self.options.pace else None
        started = time.monotonic()
        first_ns: int | None = None
        for processed, frame in enumerate(self.source.frames(), start=1):
            if self.stop_requested:
                break
            telemetry.frame_in()
            if fps:
                first_ns = frame.t_capture_ns if first_ns is None else first_ns
                delay = (frame.t_capture_ns - first_ns) / 1e9 - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            message = self.pipeline.process(frame)
            self.publisher.publish("driver_state", message)
            telemetry.frame_out(message["latency_ms"])
            self.notifier.watchdog()
            if telemetry.due():
                self.publisher.publish("telemetry", telemetry.message(
                    spec_name=self.loaded.spec.name, stages=self.pipeline.describe(),
                    publish_dropped=self.publisher.dropped))
            if self.options.max_frames is not None and processed >= self.options.max_frames:
                break
        return 0

    def close(self) -> None:
        self.notifier.stopping()
        for part in (self.source, self.pipeline, self.publisher):
            if part is not None:
                part.close()
        self.source = self.pipeline = self.publisher = None
