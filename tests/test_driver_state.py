"""The driver-state contract: real replay output round-trips through the typed objects and the one encoder, and
the types refuse values outside their documented ranges."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from conftest import cli

from ims_runtime import messages
from ims_runtime.contract import (
    ActiveAlert,
    Distraction,
    FaceObservation,
    FaceState,
    FatigueState,
    PolicyState,
)
from ims_runtime.temporal.features import FatigueFeatures


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, detector_model) -> list[dict]:
    """90 frames of a real clip through the shipped dev-cpu spec (detector, face-state, fatigue, policy)."""
    from conftest import shared

    out = tmp_path_factory.mktemp("replay") / "run.jsonl"
    run = cli("replay", "--spec", "deploy/specs/dev-cpu.yaml", str(shared("data", "videos", "video04.mp4")),
              "--out", str(out), "--max-frames", "90", "--no-progress")
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_real_replay_output_round_trips_through_the_types(replayed):
    assert len(replayed) == 90
    for line in replayed:
        state = messages.decode_driver_state(line)
        again = json.loads(messages.to_json(messages.encode_driver_state(state)))
        assert again == line
    # the parts really were decoded (not skipped as null): every stage of dev-cpu is on and a face is in view
    states = [messages.decode_driver_state(line) for line in replayed]
    assert all(s.face.present and s.face_state is not None and s.fatigue is not None and s.policy is not None
               for s in states)
    assert {s.policy.availability for s in states} == {"ok"}


def test_a_reader_refuses_an_unknown_schema_version(replayed):
    with pytest.raises(ValueError, match="schema_version"):
        messages.decode_driver_state({**replayed[0], "schema_version": messages.SCHEMA_VERSION + 1})


def _face_state(**changes) -> FaceState:
    base = FaceState(gaze_pitch_rad=0.1, gaze_yaw_rad=-0.2, on_road=True, head_yaw_deg=10.0, head_pitch_deg=-5.0,
                     head_roll_deg=2.0, left_eye_open=0.8, right_eye_open=0.7, eyes_closed=False, mouth_open=0.1,
                     confidence=0.9, reliable=True)
    return dataclasses.replace(base, **changes)


def _features() -> FatigueFeatures:
    return FatigueFeatures(t_ns=0, eye_coverage_s=10.0, perclos=0.05, blink_rate_per_min=12.0, mean_blink_ms=150.0,
                           p95_blink_ms=200.0, microsleeps=0, yawns=0, head_nods=0, eyes_off_road_share=0.1,
                           eyes_closed_s=0.0, eyes_measured=True)


@pytest.mark.parametrize("make", [
    lambda: _face_state(left_eye_open=1.5),                      # openness is 0..1
    lambda: _face_state(right_eye_open=float("nan")),            # a NaN from a broken backend
    lambda: _face_state(confidence=-0.1),
    lambda: _face_state(gaze_yaw_rad=4.0),                       # beyond ±π
    lambda: _face_state(head_pitch_deg=200.0),
    lambda: FaceObservation(present=True, count_in_frame=1),     # a present face without its box
    lambda: FaceObservation(present=True, count_in_frame=1, box_xyxy_px=(10, 10, 5, 20), score=0.9,
                            landmarks_px=np.zeros((5, 2))),     # x1 < x0
    lambda: FaceObservation(present=True, count_in_frame=1, box_xyxy_px=(0, 0, 5, 5), score=0.9,
                            landmarks_px=np.zeros((4, 2))),     # landmarks are 5 points
    lambda: FaceObservation(present=False, count_in_frame=-1),
    lambda: FatigueState(valid=True, level="alert", kss_equivalent=None, source="rules", rules_kss_equivalent=None,
                         level_probs=None, features=_features()),  # valid without an estimate
    lambda: FatigueState(valid=True, level="sleepy", kss_equivalent=5.0, source="rules", rules_kss_equivalent=5.0,
                         level_probs=None, features=_features()),  # unknown level name
    lambda: FatigueState(valid=True, level="alert", kss_equivalent=12.0, source="model", rules_kss_equivalent=5.0,
                         level_probs=(0.9, 0.05, 0.05), features=_features()),  # KSS is 1..9
    lambda: Distraction(state="attentive", on_road=True, eyes_off_road_s=-1.0, vats_30s_s=0.0),
    lambda: Distraction(state="bored", on_road=True, eyes_off_road_s=0.0, vats_30s_s=0.0),
    lambda: ActiveAlert("microsleep", 4, 0),                     # levels are 1..3
    lambda: PolicyState(Distraction("unknown", None, 0.0, 0.0), (), "maybe"),
], ids=["openness>1", "openness_nan", "confidence<0", "gaze_yaw>pi", "head_pitch>180", "face_without_box",
        "inverted_box", "four_landmarks", "negative_count", "valid_without_kss", "unknown_level", "kss>9",
        "negative_glance", "unknown_distraction_state", "alert_level_4", "unknown_availability"])
def test_the_contract_refuses_values_outside_its_ranges(make):
    with pytest.raises(ValueError):
        make()


def test_in_range_values_are_accepted_and_encoded_with_units():
    state = _face_state()
    parts = messages.encode_face_state(state)
    assert parts["gaze"] == {"pitch_rad": 0.1, "yaw_rad": -0.2, "on_road": True}
    assert parts["head_pose"]["pitch_deg"] == -5.0 and parts["eyes"]["closed"] is False
    assert math.isclose(parts["face_state"]["confidence"], 0.9)
