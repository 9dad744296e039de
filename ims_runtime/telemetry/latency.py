"""Latency percentiles over a sliding window of recent frames, per stage."""

from __future__ import annotations

from collections import deque

import numpy as np


class LatencyWindow:
    """The last ``size`` latencies (ms) of each named stage; percentiles on demand."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._samples: dict[str, deque[float]] = {}

    def add(self, latencies_ms: dict[str, float]) -> None:
        for stage, value in latencies_ms.items():
            self._samples.setdefault(stage, deque(maxlen=self.size)).append(float(value))

    def percentiles(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p95": ms, "p99": ms, "n": count}}`` (stages with no samples omitted)."""
        out: dict[str, dict[str, float]] = {}
        for stage, values in self._samples.items():
            if not values:
                continue
            arr = np.fromiter(values, dtype=np.float64)
            row = {f"p{int(q)}": float(np.percentile(arr, q)) for q in qs}
            row["n"] = len(arr)
            out[stage] = row
        return out

    def clear(self) -> None:
        self._samples.clear()
