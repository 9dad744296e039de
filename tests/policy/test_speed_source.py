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
def gateway(tmp_path):
    endpoint = f"ipc://{tmp_path}/vehicle.sock"
    socket = zmq.Context.instance().socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    yield endpoint, socket
    socket.close(linger=0)


def _wait_for(sub: SpeedSubscriber, pub: zmq.Socket, t_ns: int, message: list[bytes]) -> float | None:
    """Publish until the subscription is live (slow joiner), then return what the subscriber reads."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.send_multipart(message)
        time.sleep(0.02)
        value = sub.speed_at(t_ns)
        if value is not None:
            return value
    return None


def test_subscriber_reads_the_newest_speed_and_treats_old_speed_as_unknown(gateway):
    endpoint, pub = gateway
    sub = SpeedSubscriber(endpoint, "vehicle", stale_after_s=1.0)
    try:
        msg = [b"vehicle", json.dumps({"speed_kmh": 87.5, "t_ns": 10 * NS}).encode()]
        assert _wait_for(sub, pub, 10 * NS + NS // 2, msg) == 87.5
        pub.send_multipart([b"vehicle", json.dumps({"speed_kmh": 40.0, "t_ns": 11 * NS}).encode()])
        pub.send_multipart([b"vehicle", json.dumps({"speed_kmh": 99.0, "t_ns": 9 * NS}).encode()])  # older
        time.sleep(0.1)
        assert sub.speed_at(11 * NS + NS // 2) == 40.0
        assert sub.speed_at(12 * NS + NS // 2) is None  # 1.5 s old: stale
    finally:
        sub.close()


def test_subscriber_ignores_other_topics_and_counts_malformed_messages(gateway):
    endpoint, pub = gateway
    sub = SpeedSubscriber(endpoint, "vehicle", stale_after_s=1.0)
    try:
        good = [b"vehicle", json.dumps({"speed_kmh": 12.0, "t_ns": NS}).encode()]
        assert _wait_for(sub, pub, NS, good) == 12.0
        pub.send_multipart([b"vehicle_other", json.dumps({"speed_kmh": 50.0, "t_ns": 2 * NS}).encode()])
        pub.send_multipart([b"vehicle", b"not json"])
        pub.send(b"vehicle " + json.dumps({"speed_kmh": 20.0, "t_ns": NS + 1}).encode())  # one-frame form
        time.sleep(0.1)
        assert sub.speed_at(NS + 2) == 20.0
        assert sub.malformed >= 2  # the prefix-matching other topic and the broken body
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
