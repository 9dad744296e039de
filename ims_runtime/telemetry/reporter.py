"""Builds the periodic ``telemetry`` message from counters the service loop feeds it."""

from __future__ import annotations

import time
from typing import Any

from ims_runtime import messages
from ims_runtime.telemetry.latency import LatencyWindow
from ims_runtime.telemetry.process import ProcessStats, temperatures_c


class TelemetryReporter:
    """Counts frames in/out and latencies; ``due(now)`` says when to publish, ``message(...)`` builds it.

    Power is ``null`` with a reason until a power probe is configured (Jetson INA3221, Qualcomm, RAPL).
    """

    def __init__(self, interval_s: float, window_frames: int = 1000) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self.latency = LatencyWindow(window_frames)
        self.process = ProcessStats()
        self.started_ns = time.monotonic_ns()
        self._last_ns = self.started_ns
        self._in = self._out = 0
        self.frames_in_total = self.frames_out_total = self.frames_dropped_total = 0

    def frame_in(self) -> None:
        self._in += 1
        self.frames_in_total += 1

    def frame_out(self, latency_ms: dict[str, float]) -> None:
        self._out += 1
        self.frames_out_total += 1
        self.latency.add(latency_ms)

    def frame_dropped(self, count: int = 1) -> None:
        self.frames_dropped_total += count

    def due(self, now_ns: int | None = None) -> bool:
        return (now_ns or time.monotonic_ns()) - self._last_ns >= self.interval_ns

    def message(self, *, spec_name: str, stages: dict[str, Any], publish_dropped: int,
                extra: dict[str, Any] | None = None, now_ns: int | None = None) -> dict[str, Any]:
        now_ns = now_ns or time.monotonic_ns()
        elapsed_s = max((now_ns - self._last_ns) / 1e9, 1e-9)
        msg = {
            "schema_version": messages.SCHEMA_VERSION,
            "t_ns": time.time_ns(),
            "spec": spec_name,
            "uptime_s": (now_ns - self.started_ns) / 1e9,
            "fps_in": self._in / elapsed_s,
            "fps_out": self._out / elapsed_s,
            "frames_in_total": self.frames_in_total,
            "frames_out_total": self.frames_out_total,
            "frames_dropped_total": self.frames_dropped_total,
            "publish_dropped_total": publish_dropped,
            "latency_ms": self.latency.percentiles(),
            "rss_mb": self.process.rss_mb(),
            "cpu_percent": self.process.cpu_percent(),
            "temperature_c": temperatures_c(),
            "power_w": None,
            "power_source": None,
            "power_unavailable_reason": "no power probe configured",
            "stages": stages,
            **(extra or {}),
        }
        self._last_ns = now_ns
        self._in = self._out = 0
        return msg
