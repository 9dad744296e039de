"""Fault injection against a real ``serve`` process (issue 12): everything at once, on real sockets.

* a live vehicle gateway (ZeroMQ PUB on ipc://) sending every bad speed message of the issue — infinite and huge
  timestamps, NaN / boolean / string / negative speeds, a message stamped decades ahead, non-JSON, non-UTF-8,
  wrong frame counts — interleaved with valid ones;
* a subscriber that connects and never reads;
* a full notify socket: ``NOTIFY_SOCKET`` names a real AF_UNIX datagram socket that nobody reads (Linux queues
  10 datagrams, then a blocking ``send`` would stall the frame loop);
* SIGHUP with a broken spec on disk;
* then SIGTERM.

The service must keep publishing ``driver_state`` at the rate it had before the faults, report the failed
reload in telemetry, log the rejected speed messages and the dropped notifications, and exit 0 on SIGTERM with
no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import zmq
from conftest import REPO

from ims_runtime import messages

NS = 1_000_000_000
PACE_FPS = 10  # the clip is released at this rate: the 2 CI cores keep up with it, so drops mean a stall

#: (name, frames) of the bad speed messages; ``{now}`` is replaced by the receiver-clock time in ns
BAD_SPEED_MESSAGES = [
    ("t_ns overflows", [b"vehicle", b'{"speed_kmh": 80, "t_ns": 1e400}']),
    ("NaN speed", [b"vehicle", b'{"speed_kmh": NaN, "t_ns": {now}}']),
    ("boolean speed", [b"vehicle", b'{"speed_kmh": true, "t_ns": {now}}']),
    ("string speed", [b"vehicle", b'{"speed_kmh": "80", "t_ns": {now}}']),
    ("negative speed", [b"vehicle", b'{"speed_kmh": -20, "t_ns": {now}}']),
    ("impossible speed", [b"vehicle", b'{"speed_kmh": 1e300, "t_ns": {now}}']),
    ("stamped 30 years ahead", [b"vehicle", b'{"speed_kmh": 5, "t_ns": 1000000000000000000}']),
    ("not JSON", [b"vehicle", b"{speed: fast"]),
    ("not UTF-8", [b"vehicle", b'{"speed_kmh": "\xff\xfe", "t_ns": 1}']),
    ("not an object", [b"vehicle", b"[80, 1]"]),
    ("missing t_ns", [b"vehicle", b'{"speed_kmh": 80}']),
    ("deeply nested", [b"vehicle", b"[" * 100000]),
    ("prefix topic", [b"vehicle_other", b'{"speed_kmh": 80, "t_ns": {now}}']),
    ("topic only", [b"vehicle"]),
]


def _stamp(frames: list[bytes]) -> list[bytes]:
    now = str(time.monotonic_ns()).encode()
    return [frame.replace(b"{now}", now) if len(frame) < 1000 else frame for frame in frames]


def _count_states(sub: zmq.Socket, seconds: float, telemetry: list[dict]) -> int:
    """driver_state messages received in ``seconds``; telemetry messages are appended to ``telemetry``."""
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sub.poll(50):
            topic, message = messages.decode(sub.recv_multipart())
            if topic == "driver_state":
                count += 1
            else:
                telemetry.append(message)
    return count


def _log_events(path) -> list[dict]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


@pytest.mark.slow
def test_serve_survives_bad_speed_a_stuck_subscriber_a_full_notify_socket_and_a_broken_reload(
        tmp_path, dev_spec_path, detector_model, clip):
    spec = tmp_path / "spec.yaml"
    spec.write_text(dev_spec_path.read_text())
    endpoint, vehicle = f"ipc://{tmp_path}/ims.sock", f"ipc://{tmp_path}/vehicle.sock"
    context = zmq.Context.instance()
    gateway = context.socket(zmq.PUB)
    gateway.setsockopt(zmq.LINGER, 0)
    gateway.bind(vehicle)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd stand-in that never reads
    notify.bind(str(tmp_path / "notify.sock"))
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ims_runtime.cli", "serve", "--spec", str(spec), "--source", str(clip), "--loop",
             "--set", f"publish.endpoint={endpoint}", "--set", "publish.telemetry_interval_s=0.5",
             "--set", f"policy.speed.endpoint={vehicle}", "--set", f"source.fps={PACE_FPS}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    reader, stuck = context.socket(zmq.SUB), context.socket(zmq.SUB)
    for sub in (reader, stuck):
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVHWM, 10)
        sub.connect(endpoint)
    telemetry: list[dict] = []
    try:
        assert _count_states(reader, 0, telemetry) == 0
        deadline = time.monotonic() + 90
        while not _count_states(reader, 0.5, telemetry) and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
        before = _count_states(reader, 3.0, telemetry) / 3.0
        assert before > 0.5 * PACE_FPS, f"{before:.1f} fps before any fault"

        # faults: bad speed interleaved with good at 50 Hz for 8 s (the rejection log is limited to one line per
        # 5 s: the second line shows the counts); SIGHUP with a broken spec
        spec.write_text("schema_version: 1\nname: [broken\n")
        received = 0
        started = time.monotonic()
        sent_bad = 0
        hup_sent = False
        while time.monotonic() - started < 8.0:
            _, frames = BAD_SPEED_MESSAGES[sent_bad % len(BAD_SPEED_MESSAGES)]
            gateway.send_multipart(_stamp(frames))
            gateway.send_multipart([b"vehicle", json.dumps({"speed_kmh": 60.0,
                                                            "t_ns": time.monotonic_ns()}).encode()])
            sent_bad += 1
            if not hup_sent and time.monotonic() - started > 1.0:
                proc.send_signal(signal.SIGHUP)
                hup_sent = True
            received += _count_states(reader, 0.02, telemetry)
        during = received / (time.monotonic() - started)
        received_after = _count_states(reader, 2.0, telemetry) / 2.0
        assert proc.poll() is None, log_path.read_text()[-3000:]
        # the frame rate holds through the faults (the notify socket has been full since the first seconds)
        assert during > 0.7 * before and received_after > 0.7 * before, (before, during, received_after)
        reloads = [t["reload"] for t in telemetry if t.get("reload")]
        assert reloads and reloads[-1]["last_ok"] is False and reloads[-1]["last_error"]["code"].startswith("SPEC")

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - sent < 2.0 + 1.0  # the unit's 2 s, with a second for a loaded CI machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for sock in (reader, stuck, gateway):
            sock.close(0)
        notify.close()
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]
    events = _log_events(log_path)
    rejected = [e for e in events if e.get("event") == "speed_message_rejected"]
    assert rejected, log_text[-3000:]
    last = rejected[-1]
    # valid messages kept being accepted between the bad ones, and each class of bad message was counted
    assert last["accepted"] > 0
    assert {"non_finite", "wrong_type", "out_of_range", "implausible_time", "malformed", "missing_field",
            "wrong_topic"} <= set(last["rejected"]), last
    assert any(e.get("event") == "sd_notify_dropped" for e in events), log_text[-3000:]
    assert any(e.get("event") == "reload_failed" for e in events)
    # the same counts reach the HMI / fleet monitoring through telemetry, not only the log
    speed_input = telemetry[-1]["speed_input"]
    assert speed_input["accepted"] > 0 and {"non_finite", "out_of_range", "implausible_time"} <= set(
        speed_input["rejected"]), speed_input
    assert telemetry[-1]["notify_dropped_total"] > 0
