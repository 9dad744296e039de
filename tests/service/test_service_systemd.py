"""``serve`` under a systemd stand-in: a real datagram socket as ``NOTIFY_SOCKET`` receives what systemd would.

READY=1 within the unit's start timeout, WATCHDOG=1 at least twice per watchdog period while frames flow and
none while the pipeline is stalled, STATUS= with fps, RELOADING=1 … READY=1 around SIGHUP (a broken spec keeps
the old pipeline publishing; a valid one shows in telemetry), STOPPING=1 and exit 0 within 2 s of SIGTERM, and a
subscriber that never reads does not slow the frame loop.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import zmq
from conftest import REPO
from test_serve import _collect, _subscribe

from ims_runtime import messages

UNIT = REPO / "systemd" / "ims-runtime.service"
WATCHDOG_PERIOD_S = 1.0


def unit_seconds(key: str) -> float:
    return float(re.search(rf"^{key}=(\d+)s$", UNIT.read_text(), re.MULTILINE).group(1))


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; each datagram is newline-separated KEY=VALUE."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []  # (monotonic time, line)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            now = time.monotonic()
            self.received.extend((now, line) for line in data.decode().splitlines())

    def times(self, line: str, after: float = 0.0) -> list[float]:
        return [t for t, got in list(self.received) if got == line and t >= after]

    def wait_for(self, line: str, timeout_s: float, after: float = 0.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = self.times(line, after)
            if hits:
                return hits[0]
            time.sleep(0.05)
        return None

    def close(self):
        self._stop = True
        self._thread.join(1)
        self.sock.close()


def serve(spec, endpoint, notify=None, *extra, source=None):
    env = {**os.environ, "WATCHDOG_USEC": str(int(WATCHDOG_PERIOD_S * 1e6))}
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
    return subprocess.Popen(
        [sys.executable, "-m", "ims_runtime.cli", "serve", "--spec", str(spec), "--source", str(source), "--loop",
         "--set", f"publish.endpoint={endpoint}", "--set", "publish.telemetry_interval_s=0.5", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stderr.read()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def endpoint(tmp_path):
    return f"ipc://{tmp_path}/ims.sock"


def next_telemetry(sub, timeout_s=5):
    """The next telemetry published from now on (what queued up before is discarded)."""
    while sub.poll(0):
        sub.recv_multipart()
    return telemetry_where(sub, lambda m: True, timeout_s)


def telemetry_where(sub, predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sub.poll(200):
            topic, message = messages.decode(sub.recv_multipart())
            if topic == "telemetry" and predicate(message):
                return message
    return None


@pytest.mark.slow
def test_ready_watchdog_status_stopping_under_a_real_notify_socket(dev_spec_path, detector_model, clip,
                                                                   notify, endpoint):
    started = time.monotonic()
    # a budget no process can meet (1 MiB RSS): the violation must reach STATUS= and the log
    proc = serve(dev_spec_path, endpoint, notify, "--set", "budget.rss_mb_max=1", source=clip)
    try:
        ready = notify.wait_for("READY=1", unit_seconds("TimeoutStartSec"))
        assert ready is not None, f"no READY=1 within TimeoutStartSec: {stop(proc)[-2000:]}"
        assert ready - started < unit_seconds("TimeoutStartSec")
        time.sleep(4 * WATCHDOG_PERIOD_S)
        pings = notify.times("WATCHDOG=1", after=ready)
        for window in range(3):  # every watchdog period after READY holds at least two pings
            lo = ready + 0.5 + window * WATCHDOG_PERIOD_S
            assert sum(lo <= t < lo + WATCHDOG_PERIOD_S for t in pings) >= 2, pings
        statuses = [line for _, line in notify.received if line.startswith("STATUS=")]
        assert any("fps out/in" in line and "running" in line for line in statuses), statuses
        assert any("BUDGET: rss_mb" in line for line in statuses), statuses
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - sent < 2.0
        assert notify.wait_for("STOPPING=1", 1.0, after=sent) is not None
        assert proc.stderr.read().count("budget_violated.rss_mb") == 1  # rate-limited: once per 30 s
    finally:
        stop(proc)


def test_a_stalled_pipeline_stops_the_watchdog(dev_spec_path, detector_model, clip, tmp_path, monkeypatch):
    """A hung inference (the pipeline blocks) must starve systemd's watchdog so that it restarts the service."""
    from ims_runtime.service.daemon import ServeOptions, Service
    from ims_runtime.spec import load_spec

    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    loaded = load_spec(dev_spec_path, [f"publish.endpoint=ipc://{tmp_path}/ims.sock"])
    service = Service(loaded, ServeOptions(source=str(clip), loop=True))
    service.start()
    unblock = threading.Event()
    real_process = service.pipeline.process
    stall = threading.Event()

    def process(frame):
        if stall.is_set():
            unblock.wait(10)  # a backend that hangs until released
        return real_process(frame)

    service.pipeline.process = process
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        time.sleep(1.0)
        assert len(notify.times("WATCHDOG=1")) >= 3
        stall.set()
        time.sleep(0.3)  # let the frame in flight finish
        stalled_at = time.monotonic()
        time.sleep(1.5)
        assert notify.times("WATCHDOG=1", after=stalled_at) == []
        unblock.set()
        stall.clear()
        time.sleep(1.0)
        assert notify.times("WATCHDOG=1", after=stalled_at + 1.5)  # pings resume with frames
    finally:
        unblock.set()
        service.stop_requested = True
        runner.join(5)
        service.close()
        notify.close()


@pytest.mark.slow
def test_sighup_broken_spec_keeps_publishing_valid_spec_shows_in_telemetry(dev_spec_path, detector_model, clip,
                                                                          notify, endpoint, tmp_path):
    spec = tmp_path / "spec.yaml"
    original = dev_spec_path.read_text()
    spec.write_text(original)
    proc = serve(spec, endpoint, notify, source=clip)
    sub = _subscribe(endpoint)
    try:
        assert notify.wait_for("READY=1", 60), stop(proc)[-2000:]
        assert telemetry_where(sub, lambda m: m["spec"] == "dev-cpu", 10)

        spec.write_text(original + "\nnot_a_key: 1\n")  # invalid: unknown key
        hup = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        failed = telemetry_where(sub, lambda m: (m.get("reload") or {}).get("last_ok") is False, 30)
        assert failed is not None, "no telemetry reported the failed reload"
        assert failed["reload"]["last_error"]["code"] == "SPEC_INVALID" and failed["spec"] == "dev-cpu"
        reloading = notify.wait_for("RELOADING=1", 5, after=hup)
        assert reloading is not None and notify.wait_for("READY=1", 5, after=reloading) is not None
        before = _collect(sub, {"driver_state"}, 5)["driver_state"][-1]["frame_id"]
        after = _collect(sub, {"driver_state"}, 5)["driver_state"][-1]["frame_id"]
        assert after > before, "the old pipeline stopped publishing after a broken reload"

        spec.write_text(original.replace("name: dev-cpu", "name: dev-cpu-reloaded")
                        .replace("score_threshold: 0.6", "score_threshold: 0.7"))
        proc.send_signal(signal.SIGHUP)
        changed = telemetry_where(sub, lambda m: m["spec"] == "dev-cpu-reloaded", 30)
        assert changed is not None, "the valid reload never showed in telemetry"
        assert changed["reload"]["last_ok"] is True and changed["reload"]["count"] == 2
        assert changed["reload"]["needs_restart"] == []
        # the same subscriber socket, never reconnected, still receives frames from the new pipeline
        assert _collect(sub, {"driver_state"}, 5).get("driver_state")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert "reload_failed" in proc.stderr.read()
    finally:
        sub.close(0)
        stop(proc)


@pytest.mark.slow
def test_a_subscriber_that_never_reads_does_not_slow_the_frame_loop(dev_spec_path, detector_model, clip, endpoint):
    proc = serve(dev_spec_path, endpoint, None, "--no-pace", source=clip)
    fast = _subscribe(endpoint)
    slow = zmq.Context.instance().socket(zmq.SUB)
    try:
        first = telemetry_where(fast, lambda m: m["frames_out_total"] > 20, 60)
        assert first is not None, stop(proc)[-2000:]
        baseline_fps = next_telemetry(fast)["fps_out"]
        slow.setsockopt(zmq.LINGER, 0)
        slow.setsockopt(zmq.RCVHWM, 1)
        slow.setsockopt(zmq.RCVBUF, 4096)  # a tiny kernel buffer: it fills after a few messages
        slow.setsockopt(zmq.SUBSCRIBE, b"")
        slow.connect(endpoint)
        time.sleep(1.0)
        start = next_telemetry(fast)
        time.sleep(5.0)
        end = next_telemetry(fast)
        with_slow_fps = end["fps_out"]
        # the loop keeps its pace (same-run ratio, not an absolute figure) ...
        assert with_slow_fps >= 0.6 * baseline_fps, (baseline_fps, with_slow_fps)
        assert end["frames_out_total"] > start["frames_out_total"]
        # the slow subscriber really was connected and being sent to (its queues hold what it never read);
        # once its queues are full, ZeroMQ drops for it alone and the publisher never waits (NOBLOCK)
        assert slow.poll(1000), "the slow subscriber was never sent anything"
    finally:
        fast.close(0)
        slow.close(0)
        stop(proc)


def test_publisher_drops_for_a_full_subscriber_instead_of_waiting(tmp_path):
    """50 MB to a subscriber that never reads: every publish returns at once, the subscriber gets only a part."""
    from ims_runtime.publish.zmq_pub import Publisher

    publisher = Publisher(f"ipc://{tmp_path}/bp.sock", send_hwm_msgs=4)
    slow = zmq.Context.instance().socket(zmq.SUB)
    slow.setsockopt(zmq.LINGER, 0)
    slow.setsockopt(zmq.RCVHWM, 1)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.connect(f"ipc://{tmp_path}/bp.sock")
    try:
        time.sleep(0.3)  # connected
        payload = {"schema_version": 1, "blob": "x" * 10_000}
        for _ in range(5000):
            publisher.publish("telemetry", payload)
        received = 0
        while slow.poll(200):
            slow.recv_multipart()
            received += 1
        assert 0 < received < 5000
    finally:
        slow.close(0)
        publisher.close()
