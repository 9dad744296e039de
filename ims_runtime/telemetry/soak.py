"""Soak analysis: from the telemetry of a long run, is memory flat after warm-up and latency free of drift?

Pure (takes the telemetry messages); ``ims-runtime soak`` runs ``serve`` on a looped recording and feeds it.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

#: RSS may grow by at most this much between the start and the end of the measured part (after warm-up)
RSS_GROWTH_MAX_MB = 5.0
#: the median per-frame latency at the end may be at most this many times the one at the start
LATENCY_DRIFT_MAX_RATIO = 1.5


@dataclass
class SoakReport:
    duration_s: float
    frames_out: int
    frames_dropped: int
    rss_start_mb: float
    rss_end_mb: float
    rss_growth_mb: float
    latency_p50_start_ms: float
    latency_p50_end_ms: float
    latency_drift_ratio: float
    ok: bool
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyse(telemetry: list[dict[str, Any]], warmup_s: float = 20.0, edge_s: float = 15.0) -> SoakReport:
    """Compare the first ``edge_s`` after ``warmup_s`` with the last ``edge_s`` of the run (medians, so a single
    noisy telemetry interval does not decide)."""
    measured = [m for m in telemetry if m["uptime_s"] >= warmup_s and (m.get("latency_ms") or {}).get("total")]
    if len(measured) < 4:
        raise ValueError(f"too little telemetry after the {warmup_s:.0f} s warm-up ({len(measured)} messages)")
    t0, t1 = measured[0]["uptime_s"], measured[-1]["uptime_s"]
    edge_s = min(edge_s, (t1 - t0) / 3)
    head = [m for m in measured if m["uptime_s"] <= t0 + edge_s]
    tail = [m for m in measured if m["uptime_s"] >= t1 - edge_s]
    rss_start = statistics.median(m["rss_mb"] for m in head)
    rss_end = statistics.median(m["rss_mb"] for m in tail)
    lat_start = statistics.median(m["latency_ms"]["total"]["p50"] for m in head)
    lat_end = statistics.median(m["latency_ms"]["total"]["p50"] for m in tail)
    problems = []
    if rss_end - rss_start >= RSS_GROWTH_MAX_MB:
        problems.append(f"RSS grew {rss_end - rss_start:.1f} MiB (limit {RSS_GROWTH_MAX_MB})")
    if lat_end / lat_start > LATENCY_DRIFT_MAX_RATIO:
        problems.append(f"median latency drifted ×{lat_end / lat_start:.2f} (limit ×{LATENCY_DRIFT_MAX_RATIO})")
    last = telemetry[-1]
    return SoakReport(duration_s=last["uptime_s"], frames_out=last["frames_out_total"],
                      frames_dropped=last["frames_dropped_total"], rss_start_mb=rss_start, rss_end_mb=rss_end,
                      rss_growth_mb=rss_end - rss_start, latency_p50_start_ms=lat_start,
                      latency_p50_end_ms=lat_end, latency_drift_ratio=lat_end / lat_start, ok=not problems,
                      problems=problems)
