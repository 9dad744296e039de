"""``serve``: build the pipeline, warm up, then process → publish → telemetry → watchdog until told to stop.

Signal handlers only set flags; the loop checks them between frames (a frame takes milliseconds), so SIGTERM
stops the service well within 2 s. SIGHUP reloads the spec (:mod:`ims_runtime.service.reload`) without closing
the publisher socket. Frames come through :class:`~ims_runtime.pipeline.scheduler.FrameScheduler` (newest frame
wins when processing is slower than the camera). systemd hears ``READY=1`` after warm-up, ``WATCHDOG=1`` only
while frames are really processed (or a camera outage is being handled), ``STATUS=`` with fps and state at each
telemetry tick, ``RELOADING=1``…``READY=1`` around a reload, ``STOPPING=1`` on the way out. Teardown is safe to
run twice.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog
import zmq

from ims_runtime import messages
from ims_runtime.logs import RateLimited
from ims_runtime.pipeline.factory import build_pipeline
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.pipeline.scheduler import FrameScheduler, ScheduledFrame
from ims_runtime.pipeline.sources import FrameSource, open_source
from ims_runtime.publish.security import CurveServer
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.service.notify import Notifier
from ims_runtime.service.reload import Reloader, ReloadResult, spec_sha256
from ims_runtime.spec import LoadedSpec
from ims_runtime.telemetry.budget import check_budget
from ims_runtime.telemetry.reporter import TelemetryReporter

log = structlog.get_logger("ims_runtime.service")


@dataclass
class ServeOptions:
    source: str | None = None
    loop: bool | None = None
    #: pace file sources at their frame rate, as a camera would deliver them
    pace: bool = True
    max_frames: int | None = None
    #: the ``--set`` overrides, re-applied on every reload
    overrides: list[str] = field(default_factory=list)
    #: where power and thermal probes look (tests point it at recorded trees)
    sysfs_root: str = "/sys"


class Service:
    def __init__(self, loaded: LoadedSpec, options: ServeOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.stop_requested = False
        self.reload_requested = False
        self.notifier = Notifier()
        self.frame_warnings = RateLimited(log, interval_s=5.0)
        self.budget_warnings = RateLimited(log, interval_s=30.0)
        self.reloader = Reloader(str(loaded.path), options.overrides)
        self.pipeline: Pipeline | None = None
        self.publisher: Publisher | None = None
        self.source: FrameSource | None = None
        self.scheduler: FrameScheduler | None = None
        self.telemetry: TelemetryReporter | None = None
        self.state = "starting"
        self.spec_sha256 = spec_sha256(loaded.path)
        self._last_outage_event_s: float | None = None  # set while a camera outage is being handled
        self._seen_captured = self._seen_dropped = 0
        self._last_budget: dict[str, Any] | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stop_requested = True

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def start(self) -> None:
        spec = self.loaded.spec
        # Bind first: a busy endpoint or bad keys fail start-up before the (slower) model load.
        context = zmq.Context.instance()
        curve = CurveServer.from_spec(spec.publish.curve, self.loaded.path.parent, context) \
            if spec.publish.curve else None
        self.publisher = Publisher(spec.publish.endpoint, spec.publish.send_hwm_msgs, context, curve)
        self.pipeline = build_pipeline(self.loaded, live_speed=True)
        self.pipeline.warmup()
        self.source = open_source(spec.source, self.options.source, loop=self.options.loop,
                                  on_outage=self._on_outage, should_stop=lambda: self.stop_requested)
        self.scheduler = FrameScheduler(self.source, queue_frames=spec.service.queue_frames,
                                        pace=self.options.pace, max_fps=spec.service.max_fps).start()
        self.telemetry = TelemetryReporter(spec.publish.telemetry_interval_s, sysfs_root=self.options.sysfs_root)
        self.state = "running"
        log.info("ready", spec=spec.name, source=self.source.name, endpoint=spec.publish.endpoint,
                 curve=curve is not None, stages=self.pipeline.describe(),
                 power_source=self.telemetry.power_probe.source)
        self.notifier.ready(f"running {spec.name}")

    def _on_outage(self, event: dict) -> None:
        # called from the capture thread; the frame loop reads the timestamp to keep the watchdog fed
        self._last_outage_event_s = None if event["event"] == "camera_recovered" else time.monotonic()
        self.frame_warnings.warning(event.pop("event"), **event)

    def run(self) -> int:
        """The frame loop. Returns the exit code (0 on a requested stop or the end of a file source)."""
        assert self.pipeline and self.publisher and self.scheduler and self.telemetry
        processed = 0
        while not self.stop_requested:
            self._handle_reload()
            item = self.scheduler.next(timeout_s=0.1)
            if item is None:
                if self.scheduler.exhausted:
                    break
                self._idle()
            else:
                self._process(item)
                processed += 1
            self._tick()
            if self.options.max_frames is not None and processed >= self.options.max_frames:
                break
        if self.scheduler.error is not None and not self.stop_requested:
            raise self.scheduler.error
        return 0

    def _process(self, item: ScheduledFrame) -> None:
        assert self.pipeline and self.publisher and self.telemetry
        t_taken_ns = time.monotonic_ns()
        state = self.pipeline.process(item.frame)
        # capture-to-publish: from the capture thread getting the frame to the message leaving (queue included)
        state = state.with_latency(queue_wait=(t_taken_ns - item.t_grab_ns) / 1e6,
                                   capture_to_publish=(time.monotonic_ns() - item.t_grab_ns) / 1e6)
        self.publisher.publish("driver_state", messages.encode_driver_state(state))
        self.telemetry.frame_out(state.latency_ms)
        self.notifier.watchdog()  # only a frame that went all the way through feeds the watchdog

    def _idle(self) -> None:
        """No frame within 100 ms. During a camera outage the capture thread keeps reporting reconnect attempts
        (at most ``reconnect_backoff_s[1]`` apart); as long as it does, the service is healthy and says so."""
        backoff_max_s = self.loaded.spec.source.reconnect_backoff_s[1]
        last = self._last_outage_event_s
        if last is not None and time.monotonic() - last < backoff_max_s + 2.0:
            self.state = "camera_outage"
            self.notifier.watchdog()

    def _tick(self) -> None:
        """Counters from the capture thread, then telemetry + STATUS when due."""
        assert self.scheduler and self.telemetry and self.publisher and self.pipeline
        captured, dropped = self.scheduler.captured, self.scheduler.dropped
        self.telemetry.frame_in(captured - self._seen_captured)
        self.telemetry.frame_dropped(dropped - self._seen_dropped)
        self._seen_captured, self._seen_dropped = captured, dropped
        if not self.telemetry.due():
            return
        if self.state == "camera_outage" and self._last_outage_event_s is None:
            self.state = "running"
        spec = self.loaded.spec
        telemetry = self.telemetry.message(
            spec_name=spec.name, stages=self.pipeline.describe(), publish_dropped=self.publisher.dropped,
            state=self.state, spec_sha256=self.spec_sha256,
            reload=self.reloader.last.as_telemetry(self.reloader.count) if self.reloader.last else None,
            scheduler={"queue_frames": spec.service.queue_frames, "max_fps": spec.service.max_fps,
                       "paced": self.scheduler.pace_fps is not None},
            speed_input=self.pipeline.speed.stats() if hasattr(self.pipeline.speed, "stats") else None,
            notify_dropped_total=self.notifier.dropped)
        telemetry = dataclasses.replace(telemetry, budget=check_budget(spec.budget, telemetry))
        for violation in (telemetry.budget or {}).get("violations", []):
            self.budget_warnings.warning(f"budget_violated.{violation['metric']}", **violation)
        message = messages.encode_telemetry(telemetry)
        self.publisher.publish("telemetry", message)
        self.notifier.status(status_line(message))

    def _handle_reload(self) -> None:
        if self.reload_requested and not self.reloader.busy:
            self.reload_requested = False
            log.info("reload_started", spec=self.reloader.spec_path)
            self.notifier.reloading()
            self.state = "reloading"
            self.reloader.start(self.loaded)
        result = self.reloader.poll()
        if result is not None:
            self._finish_reload(result)

    def _finish_reload(self, result: ReloadResult) -> None:
        assert self.publisher and self.telemetry
        self.state = "running"
        if not result.ok or result.pipeline is None or result.loaded is None:
            log.error("reload_failed", keeping=self.loaded.spec.name, error=result.error)
            self.notifier.ready(f"running {self.loaded.spec.name}; reload failed: "
                                f"{(result.error or {}).get('code')}")
            return
        old, self.pipeline, self.loaded = self.pipeline, result.pipeline, result.loaded
        if old is not None:
            old.close()
        self.spec_sha256 = spec_sha256(self.loaded.path)
        self.telemetry.set_interval(self.loaded.spec.publish.telemetry_interval_s)
        if self.publisher.curve is not None:
            self.publisher.curve.reload_clients()
        log.info("reload_applied", spec=self.loaded.spec.name, needs_restart=result.needs_restart,
                 duration_s=round(result.duration_s, 3), stages=self.pipeline.describe())
        self.notifier.ready(f"running {self.loaded.spec.name} (reloaded)")

    def close(self) -> None:
        self.notifier.stopping()
        self.state = "stopping"
        self.reloader.close()
        if self.scheduler is not None:
            self.scheduler.close()  # the capture thread stops before its source is released
        for part in (self.source, self.pipeline, self.publisher):
            if part is not None:
                part.close()
        self.scheduler = None
        self.source = self.pipeline = self.publisher = None


def status_line(telemetry: dict[str, Any]) -> str:
    """The one-line ``STATUS=`` systemd shows in ``systemctl status``."""
    total = (telemetry.get("latency_ms") or {}).get("total") or {}
    power = telemetry.get("power_w")
    budget = telemetry.get("budget")
    parts = [f"{telemetry.get('state', 'running')} {telemetry['spec']}",
             f"{telemetry['fps_out']:.1f}/{telemetry['fps_in']:.1f} fps out/in",
             f"p95 {total['p95']:.1f} ms" if "p95" in total else "no frames yet",
             f"dropped {telemetry['frames_dropped_total']}",
             f"rss {telemetry['rss_mb']:.0f} MiB",
             f"power {power:.2f} W" if power is not None else "power n/a"]
    if budget and not budget["ok"]:
        parts.append("BUDGET: " + ",".join(v["metric"] for v in budget["violations"]))
    return "; ".join(parts)
