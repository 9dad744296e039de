"""systemd notification through the maintained ``sdnotify`` package (a no-op without ``NOTIFY_SOCKET``).

``sdnotify`` is a small pure-Python client of the sd_notify datagram protocol; we use it instead of binding
libsystemd (not present in slim containers, and a C dependency for five message types). The watchdog period
comes from ``WATCHDOG_USEC``, which systemd sets when the unit has ``WatchdogSec=``.
"""

from __future__ import annotations

import os
import time

import sdnotify


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        #: systemd's watchdog period in seconds (None when the watchdog is off)
        self.watchdog_period_s = watchdog_usec / 1e6 if watchdog_usec > 0 else None
        # ping four times per period: twice is systemd's advice, twice more absorbs a slow frame
        self._ping_interval_s = self.watchdog_period_s / 4 if self.watchdog_period_s else 0.5
        self._last_ping = float("-inf")

    def send(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        # systemd ≥ 253 wants the CLOCK_MONOTONIC time (µs) of the reload start along with RELOADING=1
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def watchdog(self) -> None:
        """Ping the watchdog, at most four times per watchdog period (the frame loop calls it every frame)."""
        now = time.monotonic()
        if now - self._last_ping >= self._ping_interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")
