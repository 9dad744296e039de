"""Replay of real footage end to end: one valid driver_state per frame, deterministic, nothing half-written."""

import json
import subprocess
import sys

from conftest import REPO, cli

from ims_runtime import messages

FRAMES = 30


def _replay(spec, clip, out, *extra):
    result = cli("replay", "--spec", str(spec), str(clip), "--out", str(out), "--max-frames", str(FRAMES), *extra)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], result


def test_replay_writes_one_valid_driver_state_per_frame(tmp_path, dev_spec_path, clip):
    lines, result = _replay(dev_spec_path, clip, tmp_path / "out.jsonl")
    assert len(lines) == FRAMES
    assert [m["frame_id"] for m in lines] == list(range(FRAMES))
    for m in lines:
        assert m["schema_version"] == messages.SCHEMA_VERSION and m["valid"] is True
        # the clip shows a clearly visible face in every frame
        assert m["face"]["present"] is True and m["face"]["score"] > 0.6
        assert len(m["face"]["landmarks_px"]) == 5
        assert m["latency_ms"]["face_detector"] > 0 and m["latency_ms"]["total"] >= m["latency_ms"]["face_detector"]
        # stages that are not configured say so instead of inventing values
        for stage in m["stages_off"]:
            for field in {"face_state": ["gaze", "eyes"], "fatigue": ["fatigue"], "policy": ["alerts"]}[stage]:
                assert m[field] is None
    # the summary names frames, faces and per-stage percentiles
    assert f"frames: {FRAMES}" in result.stderr and "p99 ms" in result.stderr


def test_two_replays_are_identical_apart_from_timing_fields(tmp_path, dev_spec_path, clip):
    first, _ = _replay(dev_spec_path, clip, tmp_path / "a.jsonl")
    second, _ = _replay(dev_spec_path, clip, tmp_path / "b.jsonl")
    assert [messages.strip_nondeterministic(m) for m in first] == \
        [messages.strip_nondeterministic(m) for m in second]


def test_grey_replay_still_finds_the_driver(tmp_path, dev_spec_path, clip):
    lines, _ = _replay(dev_spec_path, clip, tmp_path / "grey.jsonl", "--set", "source.color=grey")
    assert sum(m["face"]["present"] for m in lines) == FRAMES


def test_a_failed_replay_leaves_no_output_file(tmp_path, dev_spec_path):
    out = tmp_path / "out.jsonl"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01" * 5000)
    result = cli("replay", "--spec", str(dev_spec_path), str(bad), "--out", str(out))
    assert result.returncode == 5 and "SOURCE_UNREADABLE" in result.stderr
    assert list(tmp_path.iterdir()) == [bad]


def test_the_runtime_path_never_imports_torch(tmp_path, dev_spec_path, clip, detector_model):
    code = (
        "import sys, runpy\n"
        "from ims_runtime import cli\n"
        f"rc = cli.main(['replay', '--spec', {str(dev_spec_path)!r}, {str(clip)!r}, '--max-frames', '3'])\n"
        # nor the report / fleet extras (plotting, video, Ray): they are imported by their commands only
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxslim', 'matplotlib',\n"
        "             'av', 'ray', 'jinja2') or m.startswith(('ims_runtime.toolchain', 'ims_runtime.report',\n"
        "             'ims_runtime.fleet')))\n"
        "print('IMPORTED', bad)\n"
        "sys.exit(rc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout
