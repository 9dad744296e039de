"""Builds the periodic ``telemetry`` message from counters the service loop feeds it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ims_runtime.contract import Telemetry
from ims_runtime.telemetry.latency import LatencyWindow
from ims_runtime.telemetry.power import PowerProbe, detect_power_probe
from ims_runtime.telemetry.process import ProcessStats, temperatures_c
from ims_runtime.telemetry.thermal import thermal_zones_c


class TelemetryReporter:
    """Counts frames in/out/dropped and latencies; ``due(now)`` says when to publish, ``message(...)`` builds it.

    Power comes from the first power probe found under ``sysfs_root`` (Jetson INA3221, hwmon, power_supply,
    Intel RAPL — see :mod:`ims_runtime.telemetry.power`), or is ``null`` with the reason.
    """

    def __init__(self, interval_s: float, window_frames: int = 1000, sysfs_root: str | Path = "/sys",
                 power_probe: PowerProbe | None = None) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self.latency = LatencyWindow(window_frames)
        self.process = ProcessStats()
        self.sysfs_root = Path(sysfs_root)
        self.power_probe = power_probe or detect_power_probe(self.sysfs_root)
        self.power_probe.read()  # energy-counter probes need a first sample to difference against
        self.started_ns = time.monotonic_ns()
        self._last_ns = self.started_ns
        self._in = self._out = 0
        self.frames_in_total = self.frames_out_total = self.frames_dropped_total = 0

    def frame_in(self, count: int = 1) -> None:
        self._in += count
        self.frames_in_total += count

    def frame_out(self, latency_ms: dict[str, float]) -> None:
        self._out += 1
        self.frames_out_total += 1
        self.latency.add(latency_ms)

    def frame_dropped(self, count: int = 1) -> None:
        self.frames_dropped_total += count

    def set_interval(self, interval_s: float) -> None:
        self.interval_ns = int(interval_s * 1e9)

    def due(self, now_ns: int | None = None) -> bool:
        return (now_ns or time.monotonic_ns()) - self._last_ns >= self.interval_ns

    def message(self, *, spec_name: str, stages: dict[str, Any], publish_dropped: int,
                now_ns: int | None = None, **service: Any) -> Telemetry:
        """The telemetry of the interval since the last call. ``service``: the serve-only parts (``state``,
        ``spec_sha256``, ``reload``, ``scheduler``, ``budget``), see :class:`~ims_runtime.contract.Telemetry`."""
        now_ns = now_ns or time.monotonic_ns()
        elapsed_s = max((now_ns - self._last_ns) / 1e9, 1e-9)
        telemetry = Telemetry(
            t_ns=time.time_ns(), spec=spec_name, uptime_s=(now_ns - self.started_ns) / 1e9,
            fps_in=self._in / elapsed_s, fps_out=self._out / elapsed_s, frames_in_total=self.frames_in_total,
            frames_out_total=self.frames_out_total, frames_dropped_total=self.frames_dropped_total,
            publish_dropped_total=publish_dropped, latency_ms=self.latency.percentiles(),
            rss_mb=self.process.rss_mb(), cpu_percent=self.process.cpu_percent(),
            temperature_c=thermal_zones_c(self.sysfs_root) or temperatures_c(),
            **self.power_probe.read().as_telemetry(), stages=stages, **service)
        self._last_ns = now_ns
        self._in = self._out = 0
        return telemetry
