"""Property tests (hypothesis) for every parser of external input: any bytes or JSON value gets a typed value, a
coded error or a fail-safe reading (speed unknown) — never a traceback — and an invalid input never silences or
raises an alert.

Kept fast for CI's 2 cores: a few hundred examples per property, no shrinking-heavy strategies, a deadline.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims_runtime import errors, inputs, messages
from ims_runtime.commands.policy_replay import read_signals
from ims_runtime.pipeline.monitor import DriverMonitor
from ims_runtime.pipeline.vehicle_speed import SpeedInbox
from ims_runtime.spec import load_spec
from ims_runtime.spec.schema import PolicySpec
from ims_runtime.temporal.signals import BOOLEANS, FrameSignals

NS = 1_000_000_000
FAST = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])

#: any JSON value Python's json module can write, NaN and ±Infinity included (it writes those by default)
json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
#: the values that broke parsers before issue 12, drawn often so that 200 examples always meet them
edge_values = st.sampled_from([math.nan, math.inf, -math.inf, 1e18, 2**63, 2**64, -1, 0, 0.5, 1.5, -0.0, True,
                               False, None, "false", "true", "80", "", [], {}, 10**400])
field_values = edge_values | json_values


# ---------------------------------------------------------------------------------------------- vehicle speed

def _inbox() -> SpeedInbox:
    return SpeedInbox("vehicle", stale_after_s=1.0, log_interval_s=3600)


def _assert_fail_safe(inbox: SpeedInbox, t_ns: int) -> None:
    speed = inbox.speed_at(t_ns)
    assert speed is None or (type(speed) is float and math.isfinite(speed) and 0 <= speed <= inputs.SPEED_KMH_MAX)


@FAST
@given(frames=st.lists(st.binary(max_size=64), max_size=4))
def test_any_frames_on_the_speed_socket_give_a_valid_speed_or_unknown(frames):
    inbox = _inbox()
    inbox.offer(frames)  # never raises
    assert inbox.accepted + inbox.rejected_total == 1
    assert inbox.rejected["internal"] == 0  # the safety net for unforeseen errors never had to catch one
    _assert_fail_safe(inbox, time.monotonic_ns())


@FAST
@given(speed=field_values, t_ns=field_values | st.integers(min_value=-NS, max_value=NS).map(
    lambda dt: time.monotonic_ns() + dt), extra=st.dictionaries(st.text(max_size=6), json_values, max_size=2))
def test_any_json_speed_message_gives_a_valid_speed_or_unknown(speed, t_ns, extra):
    inbox = _inbox()
    body = json.dumps({**extra, "speed_kmh": speed, "t_ns": t_ns}).encode()
    inbox.offer([b"vehicle", body])
    assert inbox.rejected["internal"] == 0
    _assert_fail_safe(inbox, time.monotonic_ns())
    if inbox.accepted:  # accepted only when both values were what the boundary allows
        assert type(speed) in (int, float) and 0 <= speed <= inputs.SPEED_KMH_MAX
        assert type(t_ns) is int or (type(t_ns) is float and t_ns.is_integer())


#: speeds the boundary must refuse (each would have been read as a number, or as NaN, before issue 12)
invalid_speeds = (st.sampled_from(["NaN", "Infinity", "-Infinity", "true", "false", "null", '"80"', "[]", "{}"])
                  | st.floats(max_value=-1e-6, allow_nan=False).map(repr)
                  | st.floats(min_value=inputs.SPEED_KMH_MAX + 1, allow_infinity=False).map(repr))


@SLOW
@given(bad=st.lists(invalid_speeds, min_size=1, max_size=20), future_s=st.floats(min_value=2, max_value=1e9))
def test_an_invalid_speed_never_silences_a_distraction_alert(bad, future_s):
    """A driver looking away for 4 s while the gateway sends only invalid speeds (or valid ones stamped far in
    the future): the speed stays unknown, the policy assumes the car moves, long_distraction goes off."""
    inbox = _inbox()
    monitor = DriverMonitor(None, PolicySpec())
    t0 = time.monotonic_ns()
    alerts: set[str] = set()
    for i in range(121):
        t_ns = t0 + i * NS // 30
        inbox.offer([b"vehicle", f'{{"speed_kmh": {bad[i % len(bad)]}, "t_ns": {t_ns}}}'.encode()])
        inbox.offer([b"vehicle", json.dumps({"speed_kmh": 0.0, "t_ns": t_ns + int(future_s * NS)}).encode()])
        speed = inbox.speed_at(t_ns)
        assert speed is None
        frame = FrameSignals(t_ns=t_ns, face_present=True, gaze_yaw_rad=1.0, gaze_pitch_rad=0.0,
                             face_confidence=0.9, left_open=0.9, right_open=0.9)
        alerts |= {alert.type for alert in monitor.update(frame, speed).policy.alerts}
    assert "long_distraction" in alerts


# ---------------------------------------------------------------------------------------------- signals reader

signal_dicts = st.fixed_dictionaries(
    {"t_ns": field_values, "face_present": field_values},
    optional={name: field_values for name in ("on_road", "camera_blocked", "gaze_yaw_rad", "left_open",
                                             "speed_kmh", "face_confidence", "head_pitch_deg")})


@FAST
@given(data=json_values | signal_dicts)
def test_any_json_value_is_a_frame_or_a_rejection(data):
    try:
        frame = FrameSignals.from_dict(data)
    except inputs.InputRejected:
        return
    # accepted: the booleans are exactly the JSON booleans given ("false" never becomes True)
    for name in BOOLEANS:
        assert getattr(frame, name) is (data.get(name) if name != "face_present" else data[name])
    for name, value in frame.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value)


@FAST
@given(content=st.binary(max_size=200) | st.lists(signal_dicts | json_values, max_size=3).map(
    lambda values: "\n".join(json.dumps(v) for v in values).encode()))
def test_any_signals_file_reads_or_is_a_coded_error_naming_the_line(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signals.jsonl"
        path.write_bytes(content)
        try:
            frames = list(read_signals(path))
        except errors.IMSError as exc:
            assert exc.code is errors.SOURCE_UNREADABLE and f"{path}:" in exc.message
            return
    assert all(isinstance(frame, FrameSignals) for frame in frames)


# ---------------------------------------------------------------------------------------------- spec loader

SPEC_HEAD = "schema_version: 1\nname: fuzz\n"
#: dotted paths across the schema (sizes, counts, periods, thresholds, endpoints, tuples)
SPEC_PATHS = ["stages.face_detector.input_size_px", "stages.face_detector.score_threshold",
              "stages.face_detector.max_faces", "stages.face_detector.tracking", "stages.face_detector.backends",
              "stages.fatigue.window.bin_s", "stages.fatigue.window", "publish.endpoint",
              "publish.telemetry_interval_s", "publish.send_hwm_msgs", "policy.escalation_s",
              "policy.addw_band_kmh", "policy.speed.endpoint", "source.reconnect_backoff_s", "service.max_fps",
              "budget", "name", "source.fps"]


def _load(tmp: str, text: bytes, overrides: list[str]) -> None:
    path = Path(tmp) / "spec.yaml"
    path.write_bytes(text)
    try:
        load_spec(path, overrides)
    except errors.IMSError as exc:
        assert exc.code.kind is errors.ErrorKind.SPEC
        assert exc.one_line().startswith("error[SPEC_")


@FAST
@given(text=st.binary(max_size=300))
def test_any_bytes_as_a_spec_file_load_or_give_a_spec_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        _load(tmp, text, [])


@FAST
@given(path=st.sampled_from(SPEC_PATHS), value=st.text(max_size=30))
def test_any_set_value_loads_or_gives_a_spec_error(path, value):
    with tempfile.TemporaryDirectory() as tmp:
        _load(tmp, SPEC_HEAD.encode(), [f"{path}={value}"])


@FAST
@given(path=st.sampled_from(SPEC_PATHS), value=field_values)
def test_any_json_value_at_any_spec_field_loads_or_gives_a_spec_error(path, value):
    with tempfile.TemporaryDirectory() as tmp:
        _load(tmp, SPEC_HEAD.encode(), [f"{path}={json.dumps(value)}"])


# ---------------------------------------------------------------------------------------------- message encoder

numpy_scalars = (st.floats(allow_nan=True, allow_infinity=True, width=32).map(np.float32)
                 | st.floats(allow_nan=True, allow_infinity=True).map(np.float64)
                 | st.integers(min_value=-(2**62), max_value=2**62).map(np.int64)
                 | st.booleans().map(np.bool_))
arrays = st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6).map(np.array)
message_values = st.recursive(json_scalars | numpy_scalars | arrays,
                              lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                              | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)


def _strict(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} in the output: not JSON")
    return json.loads(text, parse_constant=refuse)


@FAST
@given(message=st.dictionaries(st.text(max_size=8), message_values, max_size=5))
def test_the_encoder_writes_strict_json_for_any_message(message):
    text = messages.to_json(message)
    decoded = _strict(text)
    assert set(decoded) == {str(k) for k in message}
    topic, again = messages.decode(messages.encode("driver_state", message))
    assert topic == "driver_state" and again == decoded


@FAST
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_the_encoder_maps_non_finite_floats_to_null_and_keeps_finite_ones(value):
    decoded = _strict(messages.to_json({"v": value, "a": np.array([value])}))
    if math.isfinite(value):
        assert decoded["v"] == pytest.approx(value, rel=1e-6, abs=1e-6) and decoded["a"] == [decoded["v"]]
    else:
        assert decoded == {"v": None, "a": [None]}
