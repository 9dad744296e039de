"""``serve`` as a real process: a real ZeroMQ subscriber receives driver_state and telemetry; SIGTERM stops it
cleanly within 2 s with exit code 0; a busy endpoint is refused."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import zmq
from conftest import REPO

from ims_runtime import messages


def _start_serve(spec, clip, endpoint, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "ims_runtime.cli", "serve", "--spec", str(spec), "--source", str(clip), "--loop",
         "--set", f"publish.endpoint={endpoint}", "--set", "publish.telemetry_interval_s=0.5", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _subscribe(endpoint):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def _collect(sub, want_topics, timeout_s):
    got = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not want_topics <= set(got):
        if sub.poll(200):
            topic, message = messages.decode(sub.recv_multipart())
            got.setdefault(topic, []).append(message)
    return got


@pytest.fixture
def endpoint(tmp_path):
    return f"ipc://{tmp_path}/ims.sock"


def test_serve_publishes_driver_state_and_telemetry_and_stops_on_sigterm(dev_spec_path, clip, endpoint):
    proc = _start_serve(dev_spec_path, clip, endpoint)
    sub = _subscribe(endpoint)
    try:
        got = _collect(sub, {"driver_state", "telemetry"}, timeout_s=60)
        assert "driver_state" in got, proc.stderr.read() if proc.poll() is not None else "no driver_state"
        state = got["driver_state"][0]
        assert state["schema_version"] == 1 and state["face"]["present"] in (True, False)
        assert "telemetry" in got
        tele = got["telemetry"][0]
        assert tele["fps_out"] >= 0 and tele["rss_mb"] > 10
        assert tele["stages"]["face_detector"]["backend"] == "ort_cpu"
        assert tele["power_w"] is None and tele["power_unavailable_reason"]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - sent < 2.0
    finally:
        sub.close(0)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigint_also_stops_cleanly(dev_spec_path, clip, endpoint):
    proc = _start_serve(dev_spec_path, clip, endpoint)
    sub = _subscribe(endpoint)
    try:
        assert _collect(sub, {"driver_state"}, 60), "service never published"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=2) == 0
    finally:
        sub.close(0)
        if proc.poll() is None:
            proc.kill()


def test_a_second_service_on_the_same_endpoint_is_refused(dev_spec_path, clip, endpoint):
    first = _start_serve(dev_spec_path, clip, endpoint)
    sub = _subscribe(endpoint)
    try:
        assert _collect(sub, {"driver_state"}, 60)
        second = _start_serve(dev_spec_path, clip, endpoint)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 6 and "PUBLISH_ENDPOINT_IN_USE" in err
        # the first one is unaffected
        assert _collect(sub, {"driver_state"}, 10)
    finally:
        sub.close(0)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=5)


def test_listen_prints_json_lines(dev_spec_path, clip, endpoint):
    proc = _start_serve(dev_spec_path, clip, endpoint)
    try:
        listener = subprocess.run([sys.executable, "-m", "ims_runtime.cli", "listen", endpoint, "--topic",
                                   "driver_state", "--count", "3", "--timeout", "60"],
                                  capture_output=True, text=True, timeout=90, cwd=REPO, check=False)
        assert listener.returncode == 0, listener.stderr
        lines = [json.loads(line) for line in listener.stdout.splitlines()]
        assert len(lines) == 3 and {rec["topic"] for rec in lines} == {"driver_state"}
        ids = [rec["message"]["frame_id"] for rec in lines]
        assert ids == sorted(ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
