"""The bench command runs every configuration on the same frames and writes the documented JSON.

Timing figures are not asserted here (that is the bench's job, not a unit test's); the structure and the
bookkeeping are.
"""

import json

from conftest import cli


def test_bench_writes_one_result_per_configuration(tmp_path, clip, detector_model):
    out = tmp_path / "bench.json"
    result = cli("bench", "--input", str(clip), "--frames", "12", "--threads", "1", "--baselines", "",
                 "--detector-sizes", "320x192", "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    names = [r["name"] for r in data["results"]]
    assert names[0] == "ours_dev-cpu-fp32_t1"
    assert names[-4:] == ["ours_dev-cpu_t1_in320x192_full", "ours_dev-cpu_t1_full", "ours_dev-cpu_t1_tracking_inline",
                          "ours_dev-cpu_t1_tracking_bg"]
    for row in data["results"]:
        assert row["frames"] == 12
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["fps"] > 0 and row["rss_mb"] > 0
        assert "face_detector" in row["stages"]
    tracking = data["results"][-2]["notes"]["stages"]["face_detector"]["tracking"]
    # warm-up (10 frames) plus 12 timed frames, a full detection at least every 10th frame
    assert tracking["full_detections"] >= 3 and tracking["roi_detections"] > 0
    assert "vs ours_dev-cpu-fp32" in result.stdout
    # accuracy next to speed: every row's driver box is compared with the reference row's on the same frames
    reference = data["results"][0]["notes"]["agreement"]
    assert reference["driver_iou_mean"] == 1.0 and reference["presence_agreement"] == 1.0
    small = data["results"][-4]["notes"]["agreement"]
    assert 0.3 < small["driver_iou_mean"] <= 1.0


def test_bench_profile_gives_ten_slowest_frames_with_reasons_and_the_merge_waits(tmp_path, clip, detector_model):
    out = tmp_path / "profile.json"
    result = cli("bench", "--profile", "--input", str(clip), "--frames", "40", "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["frames"] == 40 and len(data["slowest"]) == 10
    walls = [r["wall_ms"] for r in data["slowest"]]
    assert walls == sorted(walls, reverse=True) and walls[0] == data["wall_ms"]["max"]
    assert all(r["reason"] for r in data["slowest"])
    # dev-cpu tracks with background re-detection every 10th frame: merges happen and every one is counted
    assert sum(data["detector_frames"].values()) == 40 and data["detector_frames"].get("tracked", 0) > 20
    assert data["background_merges"] >= 2 and 0 <= data["merge_waits"] <= data["background_merges"]
    # the profile names the inference call (the bound ORT run) among the functions
    assert any("run_with_iobinding" in f["function"] for f in data["functions"])
    assert "ten slowest frames" in result.stdout


def test_bench_overhead_measures_every_model_of_the_spec_and_the_detector_fixed_cost(tmp_path, detector_model):
    out = tmp_path / "overhead.json"
    result = cli("bench", "--overhead", "--json", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["overhead"]
    names = [r["model"] for r in rows]
    assert any("tracking crop" in n for n in names) and any("face_state" in n for n in names)
    for row in rows:
        assert row["plain_us"] > 0 and row["bound_us"] > 0
    detector = rows[0]
    # the detector has a dynamic input size: its fit has a positive per-pixel slope and a fixed part
    assert detector["per_kpixel_us"] > 0 and detector["fixed_us"] is not None


def test_bench_without_input_says_what_to_pass(tmp_path):
    result = cli("bench", "--profile", timeout=60)
    assert result.returncode != 0
    assert "--input" in result.stderr and "Traceback" not in result.stderr


def test_bench_memory_attributes_serves_rss_to_its_parts(tmp_path, clip, detector_model):
    out = tmp_path / "memory.json"
    result = cli("bench", "--memory", "--input", str(clip), "--frames", "40", "--json", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    parts = {row["part"]: row["delta_mb"] for row in data["imports"]}
    assert parts["numpy"] > 1 and parts["ONNX Runtime"] > 1 and parts["interpreter"] > 1
    kinds = [s["session"].split()[0] for s in data["sessions"]]
    assert kinds[:2] == ["detector", "face-state"] and kinds[-1] == "fatigue"
    assert all(s["arena_on"]["after_runs_mb"] > 0 for s in data["sessions"])
    assert data["decoder_mb"]["default_threads"] > 1
    deployed = data["serve"]["as deployed"]["steady_mb"]
    # the parts measured one by one account for the real service's RSS (what is left: thread stacks, heap slack)
    assert 0.7 * deployed < data["sum_of_parts_mb"] < 1.3 * deployed
    assert set(data["serve"]) >= {"as deployed", "ORT memory pattern off", "ORT CPU arena off", "MALLOC_ARENA_MAX=2"}
