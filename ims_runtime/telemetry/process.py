"""Process and host statistics. Every probe returns a number or None — never a string like "45%"."""

from __future__ import annotations

import psutil


class ProcessStats:
    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # first call primes the counter

    def rss_mb(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def cpu_percent(self) -> float:
        """CPU use of this process since the previous call, in percent of one core (can exceed 100)."""
        return float(self._proc.cpu_percent(None))


def temperatures_c() -> dict[str, float] | None:
    """Highest reading per thermal sensor group in °C, or None when the host exposes none."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        groups = reader()
    except OSError:
        return None
    out = {name: max(e.current for e in entries) for name, entries in groups.items() if entries}
    return out or None
