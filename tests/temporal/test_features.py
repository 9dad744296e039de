"""Fatigue features from per-frame signals: PERCLOS, blinks, microsleeps, yawns, nods, gaps, frame rates."""

from __future__ import annotations

import pytest

from ims_runtime.spec.schema import FatigueWindowSpec
from ims_runtime.temporal.features import TemporalFeatures

NS = 1_000_000_000


def drive(features: TemporalFeatures, duration_s: float, fps: float, start_s: float = 0.0, *, openness=None,
          mouth=None, pitch=None, face=lambda t: True, off_road=None):
    """Feed frames at ``fps``; each signal is a function of time in seconds (None = not measured)."""
    out = None
    n = round(duration_s * fps)
    for i in range(n):
        t_s = start_s + i / fps
        present = face(t_s)
        out = features.update(round(t_s * NS), face_present=present,
                              eye_openness=openness(t_s) if openness and present else None,
                              mouth_open=mouth(t_s) if mouth else None,
                              head_pitch_deg=pitch(t_s) if pitch else None,
                              off_road=off_road(t_s) if off_road else None)
    return out


def blinks(period_s: float, closed_s: float):
    # phase in whole milliseconds: float remainders would add a frame to some closures
    return lambda t: 0.05 if round(t * 1000) % round(period_s * 1000) < round(closed_s * 1000) else 0.9


@pytest.mark.parametrize("fps", [10.0, 15.0, 30.0, 60.0])
def test_perclos_blink_rate_and_duration_do_not_depend_on_frame_rate(fps):
    # 0.2 s blinks every 3 s: PERCLOS 0.067, 20 blinks per minute
    f = drive(TemporalFeatures(), 70, fps, openness=blinks(3.0, 0.2))
    assert f.perclos == pytest.approx(0.2 / 3.0, abs=0.01)
    assert f.blink_rate_per_min == pytest.approx(20.0, abs=1.1)
    assert f.mean_blink_ms == pytest.approx(200.0, abs=1000 / fps + 1)
    assert f.microsleeps == 0


def test_closures_of_500ms_and_more_are_microsleeps_not_blinks():
    f = drive(TemporalFeatures(), 61, 30, openness=blinks(4.0, 0.8))
    assert f.microsleeps == 15
    assert f.mean_blink_ms is None  # no ordinary blink in the window


def test_face_lost_gaps_are_not_filled_and_a_closure_spanning_a_gap_is_dropped():
    # eyes closed from 10 s; the face is lost 10.2–15 s; then eyes open again
    openness = lambda t: 0.05 if 10 <= t < 15.5 else 0.9
    face = lambda t: not (10.2 <= t < 15)
    f = drive(TemporalFeatures(FatigueWindowSpec(min_coverage_s=10)), 40, 30, openness=openness, face=face)
    assert f.eye_coverage_s == pytest.approx(40 - 4.8, abs=0.15)
    assert f.microsleeps == 1  # only the 15.0–15.5 closure after the gap, not a 5.5 s invented one
    assert f.perclos == pytest.approx((0.2 + 0.5) / (40 - 4.8), abs=0.01)


def test_nothing_is_reported_before_enough_eye_data():
    f = drive(TemporalFeatures(), 10, 30, openness=blinks(3.0, 0.2))
    assert f.perclos is None and f.blink_rate_per_min is None and f.eye_coverage_s == pytest.approx(10, abs=0.1)


def test_current_closure_duration_grows_while_the_eyes_stay_closed():
    features = TemporalFeatures()
    drive(features, 2, 30, openness=lambda t: 0.9)
    f = drive(features, 2.5, 30, start_s=2, openness=lambda t: 0.05)
    assert f.eyes_closed_s == pytest.approx(2.5 - 1 / 30, abs=0.01)


def test_yawns_need_the_mouth_open_for_2s():
    mouth = lambda t: 0.8 if (5 <= t < 8) or (20 <= t < 21) else 0.1
    f = drive(TemporalFeatures(), 30, 30, openness=lambda t: 0.9, mouth=mouth)
    assert f.yawns == 1


def test_head_nods_are_quick_drops_and_returns_of_pitch():
    def pitch(t):
        if 20 <= t % 30 < 21:  # a 1 s nod of 25° every 30 s
            return -25.0
        if 50 <= t < 55:  # a 5 s head drop: not a nod
            return -25.0
        return 0.0
    f = drive(TemporalFeatures(), 60, 30, openness=lambda t: 0.9, pitch=pitch)
    assert f.head_nods == 1


def test_eyes_off_road_share_over_the_window():
    f = drive(TemporalFeatures(), 60, 30, openness=lambda t: 0.9, off_road=lambda t: t % 10 < 2.5)
    assert f.eyes_off_road_share == pytest.approx(0.25, abs=0.01)


def test_timestamps_must_increase():
    features = TemporalFeatures()
    features.update(NS, face_present=True, eye_openness=0.9, mouth_open=None, head_pitch_deg=None, off_road=None)
    with pytest.raises(ValueError, match="increase"):
        features.update(NS, face_present=True, eye_openness=0.9, mouth_open=None, head_pitch_deg=None,
                        off_road=None)
