"""Per-recording and fleet KPIs: alerts per hour by type, availability, face present, reliable face state, latency
percentiles, throughput.

Fleet latency percentiles are exact only up to a histogram bin: each recording keeps per-stage counts in
log-spaced bins (100 per decade, 0.01 ms .. 100 s: a bin is 2.3 % wide), which add up across thousands of
recordings where raw per-frame latencies would not.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ims_runtime.report.run_data import RunSeries, summarize

S_PER_HOUR = 3600.0
BIN_EDGES_MS = np.logspace(-2, 5, 701)


def latency_histogram(values_ms: np.ndarray) -> dict[str, int]:
    """``{bin index: count}`` of the finite values (JSON keys are strings)."""
    finite = values_ms[np.isfinite(values_ms)]
    counts = np.bincount(np.clip(np.searchsorted(BIN_EDGES_MS, finite) - 1, 0, len(BIN_EDGES_MS) - 2))
    return {str(i): int(c) for i, c in enumerate(counts) if c}


def histogram_percentiles(histogram: dict[str, int], qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """Percentiles (ms, each bin's geometric centre) and ``n`` of a :func:`latency_histogram`."""
    if not histogram:
        return {}
    bins = np.array(sorted(int(k) for k in histogram))
    counts = np.array([histogram[str(b)] for b in bins])
    cumulative = np.cumsum(counts)
    centres = np.sqrt(BIN_EDGES_MS[bins] * BIN_EDGES_MS[bins + 1])
    out = {f"p{int(q)}": round(float(centres[np.searchsorted(cumulative, q / 100 * cumulative[-1])]), 3)
           for q in qs}
    out["n"] = int(cumulative[-1])
    return out


def recording_kpis(series: RunSeries, wall_s: float) -> dict[str, Any]:
    """What the fleet adds up, for one recording: counts (so fleet percentages are frame-weighted), alert
    episodes, latency histograms, and the replay's throughput."""
    summary = summarize(series)
    with_state = ~np.isnan(series.reliable)
    known = [a for a in series.availability if a is not None]
    return {
        **{k: summary[k] for k in ("frames", "duration_s", "face_present_pct", "face_state_reliable_pct",
                                   "availability_ok_pct", "alerts_by_type", "alerts", "latency_ms",
                                   "stage_backends")},
        "counts": {"frames": series.frames, "face_present": int(series.face_present.sum()),
                   "face_state": int(with_state.sum()), "face_state_reliable": int(np.nansum(series.reliable)),
                   "availability_known": len(known), "availability_ok": sum(a == "ok" for a in known)},
        "latency_histogram": {stage: latency_histogram(v) for stage, v in series.latency_ms.items()},
        "wall_s": round(wall_s, 3),
        "frames_per_s": round(series.frames / wall_s, 2) if wall_s > 0 else None,
    }


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def fleet_kpis(results: list[dict[str, Any]], fleet_wall_s: float) -> dict[str, Any]:
    """Aggregate the ``kpis`` of the recordings that completed (this run or a skipped earlier one).

    Throughput counts only the recordings replayed in this run: frames over the fleet's wall time (what the
    cluster achieved) and the mean of the per-task rates (what one worker achieves)."""
    done = [r for r in results if r["status"] in ("ok", "skipped")]
    counts: Counter = Counter()
    alerts: Counter = Counter()
    histograms: dict[str, Counter] = {}
    duration_s = 0.0
    for r in done:
        counts.update(r["kpis"]["counts"])
        alerts.update(r["kpis"]["alerts_by_type"])
        duration_s += r["kpis"]["duration_s"]
        for stage, hist in r["kpis"]["latency_histogram"].items():
            histograms.setdefault(stage, Counter()).update(hist)
    hours = duration_s / S_PER_HOUR
    replayed = [r for r in done if r["status"] == "ok"]
    replayed_frames = sum(r["kpis"]["frames"] for r in replayed)
    return {
        "recordings": len(results),
        "recordings_ok": len(replayed),
        "recordings_skipped": sum(r["status"] == "skipped" for r in results),
        "recordings_failed": sum(r["status"] == "failed" for r in results),
        "frames": counts["frames"],
        "hours": round(hours, 6),
        "alerts_by_type": dict(sorted(alerts.items())),
        "alerts_per_hour": {k: round(v / hours, 2) for k, v in sorted(alerts.items())} if hours else {},
        "face_present_pct": _pct(counts["face_present"], counts["frames"]),
        "face_state_reliable_pct": _pct(counts["face_state_reliable"], counts["face_state"]),
        "availability_ok_pct": _pct(counts["availability_ok"], counts["availability_known"]),
        "latency_ms": {stage: histogram_percentiles(dict(h)) for stage, h in sorted(histograms.items())},
        "throughput": {
            "frames_replayed": replayed_frames,
            "wall_s": round(fleet_wall_s, 3),
            "fleet_frames_per_s": round(replayed_frames / fleet_wall_s, 2) if fleet_wall_s > 0 and replayed
            else None,
            "mean_task_frames_per_s": round(float(np.mean([r["kpis"]["frames_per_s"] for r in replayed])), 2)
            if replayed else None,
        },
        "alert_episodes": sum(len(r["kpis"]["alerts"]) for r in done),
    }
