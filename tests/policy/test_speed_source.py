"""Vehicle speed over a real ZeroMQ PUB/SUB pair, staleness by t_ns, and the replay time series."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from ims_runtime import errors
from ims_runtime.pipeline.vehicle_speed import SpeedSeries, SpeedSubscriber

NS = 1_000_000_000


@pytest.fixture
def gateway(vehicle_gateway):
    return vehicle_gateway


def _speed(speed_kmh, t_ns, topic=b"vehicle"):
    return [topic, json.dumps({"speed_kmh": speed_kmh, "t_ns": t_ns}).encode()]


def _wait_for(sub: SpeedSubscriber, pub: zmq.Socket, speed_kmh: float) -> tuple[float | None, int]:
    """Publish (stamped now) until the subscription is live (slow joiner); return what the subscriber reads at
    the message's own time, and that time."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        t_ns = time.monotonic_ns()
        pub.send_multipart(_speed(speed_kmh, t_ns))
        time.sleep(0.02)
        value = sub.speed_at(t_ns)
        if value is not None:
            return value, t_ns
    return None, 0


def test_subscriber_reads_the_newest_speed_and_treats_old_speed_as_unknown(gateway):
    endpoint, pub = gateway
    sub = SpeedSubscriber(endpoint, "vehicle", stale_after_s=1.0)
    try:
        assert _wait_for(sub, pub, 87.5)[0] == 87.5
        t1 = time.monotonic_ns()
        pub.send_multipart(_speed(40.0, t1))
        pub.send_multipart(_speed(99.0, t1 - NS // 2))  # older than the one before: ignored
        time.sleep(0.1)
        assert sub.speed_at(t1 + NS // 2) == 40.0
        assert sub.speed_at(t1 + 3 * NS // 2) is None  # 1.5 s old: stale
    finally:
        sub.close()


def test_subscriber_ignores_other_topics_and_counts_malformed_messages(gateway):
    endpoint, pub = gateway
    sub = SpeedSubscriber(endpoint, "vehicle", stale_after_s=1.0)
    try:
        _, t0 = _wait_for(sub, pub, 12.0)
        pub.send_multipart(_speed(50.0, t0 + 2, topic=b"vehicle_other"))
        pub.send_multipart([b"vehicle", b"not json"])
        pub.send(b"vehicle " + json.dumps({"speed_kmh": 20.0, "t_ns": t0 + 1}).encode())  # one-frame form
        time.sleep(0.1)
        assert sub.speed_at(t0 + 2) == 20.0
        # the prefix-matching other topic and the broken body
        assert sub.rejected["wrong_topic"] == 1 and sub.rejected["malformed"] == 1
    finally:
        sub.close()


def test_speed_series_is_sample_and_hold_until_stale(tmp_path):
    path = tmp_path / "speed.jsonl"
    path.write_text('{"t_ns": 0, "speed_kmh": 30}\n{"t_ns": 2000000000, "speed_kmh": 80}\n')
    series = SpeedSeries.from_file(path, stale_after_s=1.0)
    assert series.speed_at(500_000_000) == 30.0
    assert series.speed_at(1_500_000_000) is None
    assert series.speed_at(2_100_000_000) == 80.0
    assert series.speed_at(-1) is None


def test_speed_series_names_the_bad_line(tmp_path):
    path = tmp_path / "speed.csv"
    path.write_text("t_ns,speed_kmh\n0,30\nzero,40\n")
    with pytest.raises(errors.IMSError, match="speed.csv:3"):
        SpeedSeries.from_file(path, stale_after_s=1.0)
