"""Aligned timelines of one run (matplotlib, PNG): gaze against the road zone, head pose, eye openness with closed
spans and blinks, PERCLOS and KSS-equivalent, distraction timers, alerts and availability as bands, per-stage
latency. All panels share one time axis, so the page can turn a click's x position into a video time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ims_runtime.atomic import atomic_output
from ims_runtime.report.run_data import RunSeries, Thresholds, alert_events, closures, spans

#: one colour per alert type seen in the policy (docs/policy.md); unknown types fall back to grey
ALERT_COLOURS = {"long_distraction": "#d62728", "vats_distraction": "#ff7f0e", "addw_distraction": "#e377c2",
                 "drowsiness": "#9467bd", "microsleep": "#8c564b", "driver_absent": "#7f7f7f",
                 "camera_blocked": "#17becf"}
AVAILABILITY_COLOURS = {"ok": "#2ca02c", "temporarily_unavailable": "#ff7f0e", "failed": "#d62728"}
FIG_WIDTH_IN = 12.0
PANEL_HEIGHT_IN = 1.55
DPI = 100
#: left / right edge of every panel's plotting area, as a fraction of the image width (fixed, not tight-fitted,
#: so the page can map a click to a time)
LEFT_FRAC, RIGHT_FRAC = 0.075, 0.925


@dataclass(frozen=True)
class TimelineImage:
    """Where the time axis lies in the PNG: x from ``left_frac`` to ``right_frac`` of its width spans
    ``t_min_s`` .. ``t_max_s``."""

    path: Path
    width_px: int
    height_px: int
    left_frac: float
    right_frac: float
    t_min_s: float
    t_max_s: float


def _deg(values_rad: np.ndarray) -> np.ndarray:
    return np.degrees(values_rad)


def _shade(ax, intervals: list[tuple[float, float]], colour: str, alpha: float, label: str | None = None) -> None:
    for i, (start, end) in enumerate(intervals):
        ax.axvspan(start, end, color=colour, alpha=alpha, lw=0, label=label if i == 0 else None)


def plot_timelines(series: RunSeries, thresholds: Thresholds, out_png: Path) -> TimelineImage:
    """Draw the panels to ``out_png`` (written atomically) and return where its time axis lies."""
    t = series.t_s
    period_s = series.frame_period_s
    policy = thresholds.policy
    zone = policy.road_zone
    panels = ["gaze", "head", "eyes", "fatigue", "distraction", "bands", "latency"]
    fig = Figure(figsize=(FIG_WIDTH_IN, PANEL_HEIGHT_IN * len(panels)), dpi=DPI)
    axes = dict(zip(panels, fig.subplots(len(panels), 1, sharex=True)))
    fig.subplots_adjust(left=LEFT_FRAC, right=RIGHT_FRAC, top=0.97, bottom=0.06, hspace=0.35)

    ax = axes["gaze"]
    ax.plot(t, _deg(series.gaze_yaw_rad), color="#1f77b4", lw=1.2, label="gaze yaw")
    ax.plot(t, _deg(series.gaze_pitch_rad), color="#2ca02c", lw=1.2, label="gaze pitch")
    for centre, limit, colour in ((zone.center_yaw_rad, zone.yaw_limit_rad, "#1f77b4"),
                                  (zone.center_pitch_rad, zone.pitch_limit_rad, "#2ca02c")):
        for edge in (centre - limit, centre + limit):
            ax.axhline(math.degrees(edge), color=colour, ls="--", lw=0.8)
    _shade(ax, spans(series.on_road == 0.0, t, period_s), "#ff7f0e", 0.15, "off the road zone")
    ax.set_ylabel("gaze (deg)")
    ax.set_title("Gaze against the road zone (dashed: zone limits, yaw blue / pitch green)", fontsize=9, loc="left")

    ax = axes["head"]
    for values, name, colour in ((series.head_yaw_deg, "yaw", "#1f77b4"), (series.head_pitch_deg, "pitch", "#2ca02c"),
                                 (series.head_roll_deg, "roll", "#9467bd")):
        ax.plot(t, values, color=colour, lw=1.2, label=f"head {name}")
    ax.set_ylabel("head pose (deg)")
    ax.set_title("Head pose", fontsize=9, loc="left")

    ax = axes["eyes"]
    ax.plot(t, series.left_open, color="#1f77b4", lw=1.0, label="left eye")
    ax.plot(t, series.right_open, color="#d62728", lw=1.0, label="right eye")
    ax.axhline(thresholds.eye_closed_below, color="k", ls=":", lw=0.8, label="closed below")
    blinks, long_closures = closures(series)
    _shade(ax, long_closures, "#7f7f7f", 0.35, "closed ≥ 0.5 s")
    _shade(ax, blinks, "#7f7f7f", 0.2, "blink")
    if blinks:
        ax.plot([(a + b) / 2 for a, b in blinks], [1.05] * len(blinks), "v", color="k", ms=4)
    ax.set_ylim(-0.05, 1.12)
    ax.set_ylabel("openness (0..1)")
    ax.set_title(f"Eye openness: {len(blinks)} blinks, {len(long_closures)} long closures", fontsize=9, loc="left")

    ax = axes["fatigue"]
    ax.plot(t, 100 * series.perclos, color="#8c564b", lw=1.2, label="PERCLOS")
    perclos_max = float(np.nanmax(series.perclos)) if np.isfinite(series.perclos).any() else 0.0
    ax.set_ylim(0, max(20.0, 120 * perclos_max))
    ax.set_ylabel("PERCLOS (%)")
    twin = ax.twinx()
    twin.plot(t, series.kss_equivalent, color="#9467bd", lw=1.2, label="KSS-equivalent")
    twin.axhline(policy.drowsiness_warn_kss, color="#9467bd", ls="--", lw=0.8)
    twin.set_ylim(0.5, 9.5)
    twin.set_ylabel("KSS-equivalent (1..9)")
    ax.set_title("Fatigue (null until 20 s of eye data: no line)", fontsize=9, loc="left")
    lines = ax.get_legend_handles_labels()
    twin_lines = twin.get_legend_handles_labels()
    ax.legend(lines[0] + twin_lines[0], lines[1] + twin_lines[1], loc="upper left", fontsize=7, framealpha=0.8)

    ax = axes["distraction"]
    ax.plot(t, series.eyes_off_road_s, color="#d62728", lw=1.2, label="current glance off road")
    ax.plot(t, series.vats_30s_s, color="#ff7f0e", lw=1.2, label=f"off road in last {policy.vats_window_s:g} s")
    ax.axhline(policy.long_distraction_s, color="#d62728", ls="--", lw=0.8, label="long-distraction limit")
    ax.axhline(policy.vats_limit_s, color="#ff7f0e", ls="--", lw=0.8, label="VATS limit")
    ax.set_ylabel("time (s)")
    ax.set_title("Distraction timers", fontsize=9, loc="left")

    ax = axes["bands"]
    rows: list[str] = ["availability"]
    for value, colour in AVAILABILITY_COLOURS.items():
        mask = np.array([a == value for a in series.availability])
        ax.broken_barh([(a, b - a) for a, b in spans(mask, t, period_s)], (0.1, 0.8), color=colour)
    events = alert_events(series)
    for kind in sorted({e.type for e in events}):
        rows.append(kind)
        ax.broken_barh([(e.onset_s, e.end_s - e.onset_s) for e in events if e.type == kind],
                       (len(rows) - 1 + 0.1, 0.8), color=ALERT_COLOURS.get(kind, "#7f7f7f"))
    ax.set_yticks([i + 0.5 for i in range(len(rows))], rows, fontsize=7)
    ax.set_ylim(0, len(rows))
    ax.set_ylabel("band (row)")
    ax.set_title("Availability (green ok, orange temporarily unavailable, red failed) and alerts", fontsize=9,
                 loc="left")

    ax = axes["latency"]
    for stage, values in series.latency_ms.items():
        if np.isfinite(values).any():
            ax.plot(t, values, lw=0.8, label=stage)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("Per-stage latency", fontsize=9, loc="left")
    ax.set_xlabel("time since the first frame (s)")

    t_max_s = float(t[-1] + period_s) if len(t) else 1.0
    for name, ax in axes.items():
        ax.set_xlim(0.0, t_max_s)
        ax.grid(True, alpha=0.3)
        if name not in ("fatigue", "bands") and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=7, ncol=4, framealpha=0.8)
    out_png = Path(out_png)
    with atomic_output(out_png, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    x0, x1 = axes["latency"].get_position().x0, axes["latency"].get_position().x1
    width_px, height_px = (round(v) for v in fig.get_size_inches() * DPI)
    return TimelineImage(out_png, width_px, height_px, float(x0), float(x1), 0.0, t_max_s)
