"""Fatigue features computed incrementally from per-frame signals, driven by timestamps.

Per frame, :meth:`TemporalFeatures.update` costs O(1) plus one pass over the 60 s bin window (1200 bins by
default) when features are read. Events (blinks, microsleeps, yawns, nods) are detected by small state machines
on the sample stream and kept with their end times; samples further apart than ``max_gap_s`` break an event in
progress, which is then dropped rather than completed with invented values.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from ims_runtime.spec.schema import FatigueWindowSpec
from ims_runtime.temporal.ring import TimeBinRing

#: ring channels of the eye ring: mean openness (0..1) and closed fraction (0..1) per bin
EYE_CHANNELS = ("openness", "closed")


@dataclass(frozen=True)
class FatigueFeatures:
    """Features over the last ``window_s`` seconds at ``t_ns``. Rates and shares are None without enough data."""

    t_ns: int
    #: seconds of the window with eye measurements
    eye_coverage_s: float
    #: share of measured time with eyes ≥ 80 % closed (P80), 0..1
    perclos: float | None
    blink_rate_per_min: float | None
    mean_blink_ms: float | None
    p95_blink_ms: float | None
    #: closures ≥ microsleep_min_s that ended in the window (count)
    microsleeps: int
    yawns: int
    head_nods: int
    #: share of the window with gaze off the road zone, over the time the road zone was known, 0..1
    eyes_off_road_share: float | None
    #: the current closure has lasted this long (0 when the eyes are open or unknown), seconds
    eyes_closed_s: float
    #: the eyes were measured in this frame
    eyes_measured: bool

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("t_ns")
        for key in ("perclos", "blink_rate_per_min", "mean_blink_ms", "p95_blink_ms", "eyes_off_road_share"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        out["eye_coverage_s"] = round(out["eye_coverage_s"], 2)
        out["eyes_closed_s"] = round(out["eyes_closed_s"], 3)
        return out


class TemporalFeatures:
    """Feed :meth:`update` one frame at a time (timestamps increasing); it returns the features at that frame."""

    def __init__(self, settings: FatigueWindowSpec | None = None) -> None:
        self.settings = settings or FatigueWindowSpec()
        s = self.settings
        self.eye_ring = TimeBinRing(s.window_s, s.bin_s, channels=len(EYE_CHANNELS))
        self.road_ring = TimeBinRing(s.window_s, s.bin_s, channels=1)
        #: measured seconds and closed seconds per bin (sample-and-hold between samples ≤ max_gap_s apart), so
        #: coverage and PERCLOS are shares of *time* whatever the frame rate
        self.eye_time_ring = TimeBinRing(s.window_s, s.bin_s, channels=2)
        self._last_closed = False
        self._window_ns = int(s.window_s * 1e9)
        self._max_gap_ns = int(s.max_gap_s * 1e9)
        #: (end_t_ns, duration_s) of every closure that ended inside the window
        self._closures: deque[tuple[int, float]] = deque()
        self._yawns: deque[int] = deque()
        self._nods: deque[int] = deque()
        self._last_t_ns: int | None = None
        self._last_eye_t_ns: int | None = None
        self._closure_start_ns: int | None = None
        self._last_mouth_t_ns: int | None = None
        self._mouth_open_since_ns: int | None = None
        self._yawn_counted = False
        self._last_pitch_t_ns: int | None = None
        self._pitch_baseline_deg: float | None = None
        self._nod_start_ns: int | None = None

    # -- per-frame input ---------------------------------------------------------------------------------------
    def update(self, t_ns: int, *, face_present: bool, eye_openness: float | None, mouth_open: float | None,
               head_pitch_deg: float | None, off_road: bool | None) -> FatigueFeatures:
        """Add one frame and return the features at it (see :meth:`add`)."""
        measured = self.add(t_ns, face_present=face_present, eye_openness=eye_openness, mouth_open=mouth_open,
                            head_pitch_deg=head_pitch_deg, off_road=off_road)
        return self.features(t_ns, eyes_measured=measured)

    def add(self, t_ns: int, *, face_present: bool, eye_openness: float | None, mouth_open: float | None,
            head_pitch_deg: float | None, off_road: bool | None) -> bool:
        """Add one frame. ``eye_openness`` 0..1 (mean of the measured eyes), ``mouth_open`` 0..1,
        ``head_pitch_deg`` (> 0 up), ``off_road`` None when unknown. Returns whether the eyes were measured."""
        if self._last_t_ns is not None and t_ns <= self._last_t_ns:
            raise ValueError(f"timestamps must increase: {t_ns} after {self._last_t_ns}")
        self._last_t_ns = t_ns
        s = self.settings
        if not face_present:
            eye_openness = mouth_open = head_pitch_deg = None
            off_road = None
        if eye_openness is not None:
            closed = eye_openness < s.closed_below
            self.eye_ring.add(t_ns, (eye_openness, 1.0 if closed else 0.0))
            if not self._gap(self._last_eye_t_ns, t_ns):
                dt_s = (t_ns - self._last_eye_t_ns) / 1e9  # type: ignore[operator]
                self.eye_time_ring.add(t_ns, (dt_s, dt_s if self._last_closed else 0.0))
            self._last_closed = closed
            self._track_closure(t_ns, closed)
            self._last_eye_t_ns = t_ns
        if off_road is not None:
            self.road_ring.add(t_ns, (1.0 if off_road else 0.0,))
        if mouth_open is not None:
            self._track_yawn(t_ns, mouth_open)
        if head_pitch_deg is not None:
            self._track_nod(t_ns, head_pitch_deg)
        return eye_openness is not None

    def _gap(self, last_ns: int | None, t_ns: int) -> bool:
        return last_ns is None or t_ns - last_ns > self._max_gap_ns

    def _track_closure(self, t_ns: int, closed: bool) -> None:
        if self._gap(self._last_eye_t_ns, t_ns):
            self._closure_start_ns = None  # a closure spanning a gap has no known length: drop it
        if closed and self._closure_start_ns is None:
            self._closure_start_ns = t_ns
        elif not closed and self._closure_start_ns is not None:
            self._closures.append((t_ns, (t_ns - self._closure_start_ns) / 1e9))
            self._closure_start_ns = None

    def _track_yawn(self, t_ns: int, mouth_open: float) -> None:
        s = self.settings
        if self._gap(self._last_mouth_t_ns, t_ns):
            self._mouth_open_since_ns, self._yawn_counted = None, False
        self._last_mouth_t_ns = t_ns
        if mouth_open >= s.yawn_mouth_open:
            if self._mouth_open_since_ns is None:
                self._mouth_open_since_ns, self._yawn_counted = t_ns, False
            elif not self._yawn_counted and t_ns - self._mouth_open_since_ns >= s.yawn_min_s * 1e9:
                self._yawns.append(t_ns)
                self._yawn_counted = True
        else:
            self._mouth_open_since_ns, self._yawn_counted = None, False

    def _track_nod(self, t_ns: int, pitch_deg: float) -> None:
        s = self.settings
        gap = self._gap(self._last_pitch_t_ns, t_ns)
        dt_s = 0.0 if gap else (t_ns - self._last_pitch_t_ns) / 1e9  # type: ignore[operator]
        self._last_pitch_t_ns = t_ns
        if gap:
            self._nod_start_ns = None
        if self._pitch_baseline_deg is None:
            self._pitch_baseline_deg = pitch_deg
            return
        drop_deg = self._pitch_baseline_deg - pitch_deg  # pitch > 0 is up: a nod drops the pitch
        if self._nod_start_ns is None:
            if drop_deg >= s.nod_drop_deg:
                self._nod_start_ns = t_ns
            else:  # the baseline follows the head only outside nods
                alpha = min(1.0, dt_s / s.nod_baseline_tau_s)
                self._pitch_baseline_deg += alpha * (pitch_deg - self._pitch_baseline_deg)
        elif drop_deg < s.nod_drop_deg / 2:
            if t_ns - self._nod_start_ns <= s.nod_max_s * 1e9:
                self._nods.append(t_ns)
            self._nod_start_ns = None

    # -- features ----------------------------------------------------------------------------------------------
    def _prune(self, t_ns: int) -> None:
        oldest = t_ns - self._window_ns
        for events in (self._yawns, self._nods):
            while events and events[0] <= oldest:
                events.popleft()
        while self._closures and self._closures[0][0] <= oldest:
            self._closures.popleft()

    def eye_window(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's input: eye bins ``(n_bins, 2)`` (openness, closed fraction) and ``valid (n_bins,)``."""
        return self.eye_ring.window(t_ns)

    def features(self, t_ns: int, eyes_measured: bool = False) -> FatigueFeatures:
        s = self.settings
        self._prune(t_ns)
        coverage_s, closed_s_total = (float(v) for v in self.eye_time_ring.window_sums(t_ns))
        enough = coverage_s >= max(s.min_coverage_s, s.bin_s)
        perclos = closed_s_total / coverage_s if enough else None
        blinks_s = np.array([d for _, d in self._closures if d < s.microsleep_min_s])
        microsleeps = sum(1 for _, d in self._closures if d >= s.microsleep_min_s)
        rate = len(self._closures) / (coverage_s / 60.0) if enough else None
        mean_ms = float(blinks_s.mean() * 1000) if enough and blinks_s.size else None
        p95_ms = float(np.percentile(blinks_s, 95) * 1000) if enough and blinks_s.size else None
        road, road_valid = self.road_ring.window(t_ns)  # share of samples: fine for a share of time
        off_share = float(road[road_valid, 0].mean()) if road_valid.any() else None
        closed_s = 0.0
        if self._closure_start_ns is not None and self._last_eye_t_ns == t_ns:
            closed_s = (t_ns - self._closure_start_ns) / 1e9
        return FatigueFeatures(
            t_ns=t_ns, eye_coverage_s=coverage_s, perclos=perclos, blink_rate_per_min=rate,
            mean_blink_ms=mean_ms, p95_blink_ms=p95_ms, microsleeps=microsleeps, yawns=len(self._yawns),
            head_nods=len(self._nods), eyes_off_road_share=off_share, eyes_closed_s=closed_s,
            eyes_measured=eyes_measured)
