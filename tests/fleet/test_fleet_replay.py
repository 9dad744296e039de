"""fleet-replay on a local Ray with 2 CPUs over short real clips (replicated) and a corrupt file: outputs identical
to sequential `replay` apart from timing fields, the corrupt recording reported while the rest complete, a rerun
skips finished work, and the regression gate flags an injected change (a shorter long-distraction time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO, cli, shared

from ims_runtime import messages

ray = pytest.importorskip("ray")

FRAMES = 45  # 1.5 s of a 30 frames/s clip per recording
SPEC = str(REPO / "deploy" / "specs" / "dev-cpu.yaml")
# video01's driver looks off the road zone from the first frame (its 3 s alert is at frame 90, past FRAMES), so a
# 1 s long-distraction limit raises an alert inside the first 1.5 s that the default 3 s does not
SHORTER = "policy.long_distraction_s=1.0"


def _lines(path: Path) -> list[dict]:
    return [messages.strip_nondeterministic(json.loads(line)) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def fleet_input(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    for name, clip in (("a.mp4", "video01.mp4"), ("b.mp4", "video01.mp4"), ("c.mp4", "video02.mp4")):
        os.symlink(shared("data", "videos", clip), folder / name)
    # the head of a real mp4 without its index: not decodable
    (folder / "corrupt.mp4").write_bytes(shared("data", "videos", "video02.mp4").read_bytes()[:20_000])
    return folder


@pytest.fixture(scope="module")
def first_run(fleet_input, tmp_path_factory, detector_model) -> tuple[Path, object]:
    """The real command in a subprocess: it starts (and stops) its own local Ray with 2 CPUs."""
    out = tmp_path_factory.mktemp("fleet") / "baseline"
    result = cli("fleet-replay", str(fleet_input), "--spec", SPEC, "--out", str(out), "--workers", "2",
                 "--max-frames", str(FRAMES), "--no-progress", timeout=300)
    return out, result


@pytest.fixture(scope="module")
def local_ray(first_run):
    """One Ray in this process for the in-process runs below (fleet-replay uses a Ray already initialised)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # as fleet-replay's own start does
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    yield
    ray.shutdown()


def _fleet(*args: str) -> int:
    from ims_runtime import cli as ims_cli

    return ims_cli.main(["fleet-replay", *args, "--spec", SPEC, "--workers", "2", "--max-frames", str(FRAMES),
                         "--no-progress"])


def test_fleet_outputs_equal_sequential_replay_and_a_corrupt_recording_is_reported(first_run, fleet_input,
                                                                                    tmp_path):
    out, result = first_run
    # the corrupt recording's error decides the exit code (5: the frame source), after the rest completed
    assert result.returncode == 5, result.stderr
    assert "corrupt.mp4: FAILED error[SOURCE_UNREADABLE]" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    status = {r["name"]: r["status"] for r in summary["recordings"]}
    assert status == {"a.mp4": "ok", "b.mp4": "ok", "c.mp4": "ok", "corrupt.mp4": "failed"}
    kpis = summary["kpis"]
    assert kpis["frames"] == 3 * FRAMES and kpis["recordings_failed"] == 1
    assert kpis["throughput"]["fleet_frames_per_s"] > 0 and set(kpis["latency_ms"]) >= {"total", "face_detector"}
    assert (out / "index.html").is_file() and "corrupt.mp4" in (out / "index.html").read_text()
    for name, clip in (("a.mp4", "video01.mp4"), ("c.mp4", "video02.mp4")):
        sequential = tmp_path / f"{name}.jsonl"
        replay = cli("replay", "--spec", SPEC, str(fleet_input / name), "--out", str(sequential),
                     "--max-frames", str(FRAMES))
        assert replay.returncode == 0, replay.stderr
        fleet_lines = _lines(out / "recordings" / name / "driver_state.jsonl")
        assert len(fleet_lines) == FRAMES and fleet_lines == _lines(sequential)


def test_a_rerun_skips_finished_work_and_retries_the_failure(first_run, fleet_input, local_ray, capsys):
    out, _ = first_run
    jsonl = out / "recordings" / "a.mp4" / "driver_state.jsonl"
    before = jsonl.stat().st_mtime_ns
    assert _fleet(str(fleet_input), "--out", str(out)) == 5
    summary = json.loads((out / "summary.json").read_text())
    assert {r["name"]: r["status"] for r in summary["recordings"]} == \
        {"a.mp4": "skipped", "b.mp4": "skipped", "c.mp4": "skipped", "corrupt.mp4": "failed"}
    assert jsonl.stat().st_mtime_ns == before
    assert summary["kpis"]["frames"] == 3 * FRAMES  # skipped recordings still count in the KPIs
    assert "skipped (output current" in capsys.readouterr().err


def test_the_gate_flags_a_shorter_long_distraction_time(first_run, fleet_input, local_ray, tmp_path, capsys):
    baseline, _ = first_run
    out = tmp_path / "shorter"
    assert _fleet(str(fleet_input), "--out", str(out), "--set", SHORTER, "--baseline", str(baseline)) == 1
    gate = json.loads((out / "regression.json").read_text())
    from ims_runtime.report.run_data import alert_events, load_run

    def long_onsets(folder: Path, name: str) -> list[float]:
        events = alert_events(load_run(folder / "recordings" / name / "driver_state.jsonl"))
        return [e.onset_s for e in events if e.type == "long_distraction"]

    # the changed recordings are exactly those whose long_distraction alerts differ (video01's copies gain one);
    # the corrupt one has no baseline output to compare with
    expected = {n for n in ("a.mp4", "b.mp4", "c.mp4") if long_onsets(out, n) != long_onsets(baseline, n)}
    assert {"a.mp4", "b.mp4"} <= expected
    assert set(gate["changed"]) == expected
    rows = {r["name"]: r for r in gate["recordings"]}
    assert rows["corrupt.mp4"]["compared"] is False and gate["compared"] == 3
    assert any(reason.startswith("alert long_distraction") and reason.endswith("is new")
               for reason in rows["a.mp4"]["reasons"])
    err = capsys.readouterr().err
    assert "CHANGED a.mp4" in err and "regression gate:" in err


def test_gate_tolerances_on_real_runs(first_run):
    """Same run → no change; gaze shifted by more than its tolerance → changed, by less → not."""
    import dataclasses

    import numpy as np

    from ims_runtime.fleet.gate import Tolerances, compare_runs
    from ims_runtime.report.run_data import load_run

    baseline, _ = first_run
    series = load_run(baseline / "recordings" / "a.mp4" / "driver_state.jsonl")
    tol = Tolerances()
    assert compare_runs(series, series, tol)["changed"] is False
    for shift_deg, changed in ((tol.gaze_deg * 1.5, True), (tol.gaze_deg * 0.5, False)):
        shifted = dataclasses.replace(series, gaze_yaw_rad=series.gaze_yaw_rad + np.radians(shift_deg))
        verdict = compare_runs(shifted, series, tol)
        assert verdict["changed"] is changed, verdict
    with pytest.raises(Exception, match="unknown tolerance"):
        Tolerances.parse(["gaze=1"])
