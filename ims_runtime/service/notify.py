"""systemd notification through the maintained ``sdnotify`` package (a no-op without ``NOTIFY_SOCKET``).

``sdnotify`` is a small pure-Python client of the sd_notify datagram protocol; we use it instead of binding
libsystemd (not present in slim containers, and a C dependency for five message types). The watchdog period
comes from ``WATCHDOG_USEC``, which systemd sets when the unit has ``WatchdogSec=``.

Sending never blocks: the socket is switched to non-blocking mode. A datagram socket whose reader is slow or
gone fills up (Linux queues ``net.unix.max_dgram_qlen`` = 10 datagrams by default) and a blocking ``send`` would
then stall the frame loop — and shutdown — until it drains. A notification that cannot be sent at once is
dropped, counted in :attr:`Notifier.dropped` and logged at most every 30 s (``sd_notify_dropped``); the next
``WATCHDOG=1`` (four per period) or ``STATUS=`` goes out as soon as there is room.
"""

from __future__ import annotations

import os
import time

import sdnotify
import structlog

from ims_runtime.logs import RateLimited

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier: sdnotify.SystemdNotifier | None = None
        if self.enabled:
            try:
                # sdnotify connects the socket (abstract "@" names included); debug=True: it raises on failure
                self._notifier = sdnotify.SystemdNotifier(debug=True)
                self._notifier.socket.setblocking(False)
            except OSError as exc:
                log.warning("sd_notify_unavailable", socket=os.environ.get("NOTIFY_SOCKET"), error=str(exc))
                self.enabled = False
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        #: systemd's watchdog period in seconds (None when the watchdog is off)
        self.watchdog_period_s = watchdog_usec / 1e6 if watchdog_usec > 0 else None
        # ping four times per period: twice is systemd's advice, twice more absorbs a slow frame
        self._ping_interval_s = self.watchdog_period_s / 4 if self.watchdog_period_s else 0.5
        self._last_ping = float("-inf")
        #: notifications sent, and dropped because the socket was full or gone
        self.sent = 0
        self.dropped = 0
        self._warnings = RateLimited(log, interval_s=30.0)

    def send(self, *lines: str) -> bool:
        """Send one notification without blocking; False (and counted) when it had to be dropped."""
        if self._notifier is None:
            return False
        try:
            # UTF-8 as systemd reads it (sdnotify's notify() encodes Latin-1 and fails on a spec name like "Fahrer→")
            self._notifier.socket.send("\n".join(lines).encode("utf-8", "replace"))
        except OSError as exc:  # BlockingIOError (queue full), ConnectionRefusedError (systemd gone), ...
            self.dropped += 1
            self._warnings.warning("sd_notify_dropped", dropped=self.dropped, error=type(exc).__name__,
                                   message=lines[0].split("=", 1)[0] if lines else "")
            return False
        self.sent += 1
        return True

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
