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
