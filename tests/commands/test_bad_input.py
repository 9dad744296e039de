"""Issue 12, case by case: each external value or fault the issue lists gets a coded error or a fail-safe reading,
never a traceback, a silenced alert or a half-written file. Test names carry the issue's case number.

Speed cases run over a real ZeroMQ PUB/SUB pair; file and option cases run the real ``ims-runtime`` entry point.
The permission cases run the command as ``nobody`` when the tests run as root (root reads any file).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, cli

from ims_runtime import errors
from ims_runtime.pipeline.monitor import DriverMonitor
from ims_runtime.pipeline.vehicle_speed import SpeedSubscriber
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.service.notify import Notifier
from ims_runtime.spec.schema import PolicySpec
from ims_runtime.temporal.signals import FrameSignals

NS = 1_000_000_000

DETECTOR_SPEC = """\
schema_version: 1
name: t
stages:
  face_detector:
    model: {model}
"""


def assert_coded(result: subprocess.CompletedProcess, code: str, exit_code: int) -> str:
    """One ``error[CODE]`` line, the code's exit status, no traceback; returns the error line."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error[")]
    assert len(lines) == 1 and lines[0].startswith(f"error[{code}]"), result.stderr[-2000:]
    assert result.returncode == exit_code, result.stderr[-2000:]
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess, option: str) -> None:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"argument {option}:" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------- live vehicle speed


@pytest.fixture
def gateway(vehicle_gateway):
    """The gateway's PUB and a SpeedSubscriber that has already read one valid message (1 km/h)."""
    endpoint, pub = vehicle_gateway
    sub = SpeedSubscriber(endpoint, "vehicle", stale_after_s=1.0)
    # wait for the subscription (slow joiner): valid messages until one is read
    deadline = time.monotonic() + 5
    while sub.speed_at(time.monotonic_ns()) is None and time.monotonic() < deadline:
        pub.send_multipart([b"vehicle", json.dumps({"speed_kmh": 1.0, "t_ns": time.monotonic_ns()}).encode()])
        time.sleep(0.02)
    assert sub.speed_at(time.monotonic_ns()) == 1.0
    yield pub, sub
    sub.close()


def _send(pub, body: bytes | str) -> None:
    pub.send_multipart([b"vehicle", body.encode() if isinstance(body, str) else body])


def _settle(sub) -> None:
    time.sleep(0.1)
    sub.poll()


def test_case01_an_overflowing_speed_timestamp_is_rejected_and_the_next_message_is_read(gateway):
    pub, sub = gateway
    _send(pub, '{"speed_kmh": 80, "t_ns": 1e400}')  # valid JSON: t_ns parses as inf; int(inf) overflowed
    _settle(sub)  # on main this raised OverflowError, which killed serve
    t_ns = time.monotonic_ns()
    _send(pub, json.dumps({"speed_kmh": 55.0, "t_ns": t_ns}))
    _settle(sub)
    assert sub.speed_at(t_ns) == 55.0
    assert sub.rejected["non_finite"] == 1


@pytest.mark.parametrize("bad", ["NaN", "true", '"80"', "-5", "1e9", "Infinity"])
def test_case02_a_nan_boolean_or_impossible_speed_is_unknown_not_a_speed(gateway, bad):
    pub, sub = gateway
    t_ns = time.monotonic_ns()
    _send(pub, f'{{"speed_kmh": {bad}, "t_ns": {t_ns}}}')
    _settle(sub)
    # the last valid speed (1 km/h) is older than t_ns + 1.5 s: unknown, never NaN (NaN >= limit is false)
    assert sub.speed_at(t_ns + 3 * NS // 2) is None
    assert sum(sub.rejected.values()) == 1


def test_case02_an_invalid_live_speed_never_silences_a_distraction_alert(gateway):
    """A driver looking away for 4 s at 30 fps while the gateway sends NaN speeds: the speed is unknown, the
    policy assumes the car moves (``unknown_speed: assume_moving``) and long_distraction goes off. On main the NaN
    reached the policy and every speed-gated alert stayed silent."""
    pub, sub = gateway
    monitor = DriverMonitor(None, PolicySpec())
    t0 = time.monotonic_ns()
    alerts: set[str] = set()
    for i in range(120):
        t_ns = t0 + i * NS // 30
        _send(pub, f'{{"speed_kmh": NaN, "t_ns": {t_ns}}}')
        sub.poll()
        frame = FrameSignals(t_ns=t_ns, face_present=True, gaze_yaw_rad=1.0, gaze_pitch_rad=0.0,
                             face_confidence=0.9, left_open=0.9, right_open=0.9)
        alerts |= {alert.type for alert in monitor.update(frame, sub.speed_at(t_ns)).policy.alerts}
    assert "long_distraction" in alerts
    assert sub.rejected["non_finite"] >= 100


def test_case03_a_future_stamped_speed_does_not_poison_later_valid_messages(gateway):
    pub, sub = gateway
    _send(pub, json.dumps({"speed_kmh": 30.0, "t_ns": 10**18}))  # ~32 years ahead of the receiver's clock
    _settle(sub)
    t_ns = time.monotonic_ns()
    _send(pub, json.dumps({"speed_kmh": 42.0, "t_ns": t_ns}))
    _settle(sub)
    assert sub.speed_at(t_ns) == 42.0  # on main: None for the rest of the run
    assert sub.rejected["implausible_time"] == 1


# ------------------------------------------------------------------------------------------- policy-replay files


def _signals(path: Path, lines: list[dict | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _attentive(n: int, **extra) -> list[dict]:
    return [{"t_ns": i * NS // 10, "face_present": True, "on_road": True, "left_open": 0.9, "right_open": 0.9,
             "face_confidence": 0.9, **extra} for i in range(n)]


def test_case02_policy_replay_refuses_a_nan_constant_speed(tmp_path):
    signals = _signals(tmp_path / "s.jsonl", _attentive(5))
    assert_usage_error(cli("policy-replay", str(signals), "--speed-kmh", "nan"), "--speed-kmh")


def test_case02_a_nan_speed_in_a_speed_file_is_a_coded_error_naming_the_line(tmp_path):
    signals = _signals(tmp_path / "s.jsonl", _attentive(5))
    speed = tmp_path / "speed.csv"
    speed.write_text("t_ns,speed_kmh\n0,80\n100000000,nan\n")
    line = assert_coded(cli("policy-replay", str(signals), "--speed-file", str(speed)), "SOURCE_UNREADABLE", 5)
    assert "speed.csv:3:" in line


def test_case04_the_string_false_is_not_true(tmp_path):
    signals = _signals(tmp_path / "s.jsonl", _attentive(40, camera_blocked="false"))
    out = tmp_path / "out.jsonl"
    line = assert_coded(cli("policy-replay", str(signals), "--out", str(out)), "SOURCE_UNREADABLE", 5)
    assert "s.jsonl:1:" in line and "camera_blocked must be true or false" in line
    assert not out.exists()


def test_case05_a_bad_line_51_leaves_no_partial_output(tmp_path):
    lines: list[dict | str] = [*_attentive(50), "{not json"]
    out = tmp_path / "out.jsonl"
    line = assert_coded(cli("policy-replay", str(_signals(tmp_path / "s.jsonl", lines)), "--out", str(out)),
                        "SOURCE_UNREADABLE", 5)
    assert "s.jsonl:51:" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "s.jsonl"]  # no out.jsonl, no temporary file


@pytest.mark.parametrize("t_ns", ["1e400", "Infinity", "1e30", "-1", "1.5"])
def test_case05_infinite_or_huge_timestamps_are_coded_errors_not_overflow(tmp_path, t_ns):
    good = json.dumps(_attentive(1)[0])
    bad = good.replace('"t_ns": 0', f'"t_ns": {t_ns}')
    out = tmp_path / "out.jsonl"
    signals = _signals(tmp_path / "s.jsonl", [json.dumps(x) for x in _attentive(3)] + [bad])
    line = assert_coded(cli("policy-replay", str(signals), "--out", str(out)), "SOURCE_UNREADABLE", 5)
    assert "s.jsonl:4:" in line and "t_ns" in line
    assert not out.exists()


def test_case05_replay_removes_its_temporary_file_on_sigterm(tmp_path, dev_spec_path, detector_model, clip):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "ims_runtime.cli", "replay", "--spec", str(dev_spec_path),
                             str(clip), "--out", str(out_dir / "states.jsonl"), "--no-progress"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not list(out_dir.glob(".states.jsonl.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(out_dir.glob(".states.jsonl.*.tmp")), "replay never started writing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr[-2000:]
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------------------------------------------- case 6: tracebacks

NOT_UTF8 = b"name: caf\xe9\n"  # Latin-1, as an editor on another system may save it


def test_case06_a_non_utf8_spec_is_a_coded_error(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"schema_version: 1\n" + NOT_UTF8)
    line = assert_coded(cli("validate", str(spec)), "SPEC_UNREADABLE", 2)
    assert "spec.yaml:2:" in line and "UTF-8" in line


def test_case06_a_non_utf8_signals_file_is_a_coded_error(tmp_path):
    signals = tmp_path / "s.jsonl"
    signals.write_bytes(json.dumps(_attentive(1)[0]).encode() + b"\n" + b'{"t_ns": 1, "x": "\xff"}\n')
    line = assert_coded(cli("policy-replay", str(signals)), "SOURCE_UNREADABLE", 5)
    assert "s.jsonl:2:" in line


def test_case06_a_non_utf8_ground_truth_is_a_coded_error(tmp_path, dev_spec_path):
    gt = tmp_path / "gt.txt"
    gt.write_bytes(b"a.jpg\n1\n1 2 3 4 0 0 0 easy\n\xe9t\xe9.jpg\n0\n")
    line = assert_coded(cli("eval-detector", "--spec", str(dev_spec_path), "--images", str(tmp_path), "--gt",
                            str(gt)), "SOURCE_UNREADABLE", 5)
    assert "gt.txt:4:" in line


def cli_unprivileged(*args: str) -> subprocess.CompletedProcess:
    """``cli`` where file permissions apply: as root, without the capabilities that bypass them
    (``setpriv`` from util-linux drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return cli(*args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be tested")
    caps = "-dac_override,-dac_read_search"
    return subprocess.run([setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", sys.executable, "-m",
                           "ims_runtime.cli", *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          check=False)


def test_case06_an_unreadable_spec_is_a_coded_error(tmp_path, dev_spec_path):
    spec = tmp_path / "spec.yaml"
    shutil.copy(dev_spec_path, spec)
    spec.chmod(0o000)
    line = assert_coded(cli_unprivileged("validate", str(spec)), "SPEC_UNREADABLE", 2)
    assert "Permission denied" in line


def test_case06_an_unreadable_model_is_a_coded_error(tmp_path, detector_model, clip):
    model = tmp_path / "detector.onnx"
    shutil.copy(detector_model, model)
    model.chmod(0o000)
    spec = tmp_path / "spec.yaml"
    spec.write_text(DETECTOR_SPEC.format(model=model))
    line = assert_coded(cli_unprivileged("replay", "--spec", str(spec), str(clip), "--max-frames", "1"),
                        "MODEL_UNREADABLE", 3)
    assert "Permission denied" in line


@pytest.mark.parametrize("value", ["[1,", "!!python/object/apply:os.system ['true']", "!custom x", "'open"])
def test_case06_a_set_value_that_is_not_plain_yaml_is_a_coded_error(tmp_path, dev_spec_path, value):
    result = cli("validate", str(dev_spec_path), "--set", f"name={value}")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "[SPEC_INVALID]" in result.stderr and "name: (--set): value" in result.stderr, result.stderr
    signals = _signals(tmp_path / "s.jsonl", _attentive(3))  # the same through a command that runs
    line = assert_coded(cli("policy-replay", str(signals), "--spec", str(dev_spec_path), "--set",
                            f"name={value}"), "SPEC_INVALID", 2)
    assert "name: (--set)" in line


def test_case06_replay_out_onto_a_directory_fails_before_any_frame(tmp_path, dev_spec_path, detector_model, clip):
    result = cli("replay", "--spec", str(dev_spec_path), str(clip), "--out", str(tmp_path), "--max-frames", "3")
    line = assert_coded(result, "OUTPUT_UNWRITABLE", 7)
    assert "is a directory" in line and "frames:" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_case06_replay_out_into_an_unwritable_place_fails_before_any_frame(dev_spec_path, detector_model, clip):
    result = cli("replay", "--spec", str(dev_spec_path), str(clip), "--out", "/proc/ims-nope/out.jsonl",
                 "--max-frames", "3")
    assert_coded(result, "OUTPUT_UNWRITABLE", 7)
    assert "frames:" not in result.stderr


def test_case06_policy_replay_out_into_a_missing_directory_creates_it(tmp_path):
    signals = _signals(tmp_path / "s.jsonl", _attentive(5))
    out = tmp_path / "new" / "dir" / "out.jsonl"
    result = cli("policy-replay", str(signals), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 5


def test_case06_a_ground_truth_path_that_is_a_directory_is_a_coded_error(tmp_path, dev_spec_path):
    line = assert_coded(cli("eval-detector", "--spec", str(dev_spec_path), "--images", str(tmp_path), "--gt",
                            str(tmp_path)), "SOURCE_UNREADABLE", 5)
    assert "is a directory" in line


# ------------------------------------------------------------------------------------------- cases 7 and 8: spec


@pytest.mark.parametrize("override, field", [
    ("stages.face_detector.input_size_px=[32000,32000]", "stages.face_detector.input_size_px"),
    ("stages.fatigue.window.bin_s=1e-9", "stages.fatigue.window.bin_s"),
])
def test_case07_specs_that_would_exhaust_memory_are_refused_at_validation(dev_spec_path, override, field):
    result = cli("validate", str(dev_spec_path), "--set", override)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{field}: (--set)" in result.stderr, result.stderr


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "tcp://127.0.0.1:*",
                                      "tcp://127.0.0.1", "ipc://"])
def test_case08_an_endpoint_zeromq_would_bind_differently_is_refused(dev_spec_path, endpoint):
    result = cli("validate", str(dev_spec_path), "--set", f"publish.endpoint={endpoint}")
    assert result.returncode == 2 and "publish.endpoint: (--set)" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------- case 9: empty work


def test_case09_an_image_folder_where_nothing_decodes_is_an_error(tmp_path, dev_spec_path, detector_model):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:03d}.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out.jsonl"
    line = assert_coded(cli("replay", "--spec", str(dev_spec_path), str(folder), "--out", str(out)),
                        "SOURCE_UNREADABLE", 5)
    assert "can be decoded" in line and not out.exists()


@pytest.mark.parametrize("command", ["replay", "serve"])
def test_case09_max_frames_must_be_positive(dev_spec_path, clip, command):
    extra = ["--source", str(clip)] if command == "serve" else [str(clip)]
    assert_usage_error(cli(command, "--spec", str(dev_spec_path), *extra, "--max-frames", "-5"), "--max-frames")


@pytest.mark.parametrize("content, where", [("", "lists no image"), ("\n\n", "lists no image"),
                                            ("a.jpg\n-3\n", "gt.txt:2:"), ("a.jpg\n1\n1 2 -3 4\n", "gt.txt:3:")])
def test_case09_an_empty_or_negative_ground_truth_is_an_error_not_ap_zero(tmp_path, dev_spec_path, content,
                                                                          where):
    gt = tmp_path / "gt.txt"
    gt.write_text(content)
    out = tmp_path / "scores.json"
    result = cli("eval-detector", "--spec", str(dev_spec_path), "--images", str(tmp_path), "--gt", str(gt),
                 "--json", str(out))
    assert where in assert_coded(result, "SOURCE_UNREADABLE", 5)
    assert not out.exists()


@pytest.mark.parametrize("what", ["signals", "speed"])
def test_case09_an_empty_signals_or_speed_file_is_an_error_not_an_empty_result(tmp_path, what):
    signals = _signals(tmp_path / "s.jsonl", [] if what == "signals" else _attentive(3))
    speed = tmp_path / "speed.csv"
    speed.write_text("t_ns,speed_kmh\n" + ("0,50\n" if what == "signals" else ""))
    out = tmp_path / "out.jsonl"
    line = assert_coded(cli("policy-replay", str(signals), "--speed-file", str(speed), "--out", str(out)),
                        "SOURCE_UNREADABLE", 5)
    assert ("no signal lines" if what == "signals" else "holds no sample") in line
    assert not out.exists()


# ------------------------------------------------------------------------------------------- case 10: messages


def test_case10_a_spec_path_that_is_a_directory_says_so(tmp_path):
    line = assert_coded(cli("validate", str(tmp_path)), "SPEC_UNREADABLE", 2)
    assert "is a directory" in line and "does not exist" not in line


def test_case10_an_ipc_endpoint_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(errors.IMSError) as info:
        Publisher(f"ipc://{tmp_path}")
    assert info.value.code is errors.PUBLISH_ENDPOINT_INVALID and "is a directory" in info.value.message


def test_case10_a_misspelled_set_path_is_blamed_on_the_set_not_a_line_of_the_file(dev_spec_path):
    result = cli("validate", str(dev_spec_path), "--set", "stages.face_detektor.score_threshold=0.7")
    assert result.returncode == 2
    assert "stages.face_detektor: (--set): unknown key" in result.stderr, result.stderr
    assert "line " not in result.stderr


# ------------------------------------------------------------------------------------------- case 11: sd_notify


def test_case11_sd_notify_never_blocks_on_a_full_socket_and_counts_drops(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd stand-in that never reads
    reader.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    results: list[bool] = []
    sender = threading.Thread(target=lambda: results.extend(notifier.send(f"STATUS={i}") for i in range(50)),
                              daemon=True)
    started = time.monotonic()
    sender.start()
    sender.join(5)  # on main the 11th send blocked for good
    try:
        assert not sender.is_alive(), "sd_notify blocked on a full socket"
        assert time.monotonic() - started < 2
        assert notifier.dropped == results.count(False) and notifier.dropped > 0
        assert notifier.sent == results.count(True) and notifier.sent >= 1
    finally:
        reader.close()


def test_case11_the_queued_notifications_arrive_in_order(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    reader.settimeout(1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    try:
        assert notifier.send("READY=1", "STATUS=running Fahrer→1")  # UTF-8, as systemd reads it
        assert reader.recv(4096).decode() == "READY=1\nSTATUS=running Fahrer→1"
    finally:
        reader.close()


# ------------------------------------------------------------------------------------------- beyond the list


def test_a_spec_nested_thousands_deep_is_a_coded_error_not_a_recursion_error(tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("name: x\nstages: " + "[" * 50000 + "]" * 50000 + "\n")
    result = cli("validate", str(spec))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1000:]
    assert "[SPEC_YAML_SYNTAX]" in result.stderr and "nested too deeply" in result.stderr


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(tmp_path):
    signals = _signals(tmp_path / "s.jsonl", _attentive(20000))
    proc = subprocess.Popen([sys.executable, "-m", "ims_runtime.cli", "policy-replay", str(signals)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b'{"t_ns":0')
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE and "Traceback" not in stderr, stderr[-1000:]
