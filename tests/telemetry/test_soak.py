"""Soak: a looped replay through ``serve`` keeps RSS flat after warm-up (< 5 MiB growth) and latency free of
drift. Here about 100 s; the long run is ``ims-runtime soak --minutes 60`` (docs/service.md)."""

import json

import pytest
from conftest import cli

from ims_runtime.telemetry.soak import analyse


def _tele(t, rss, p50):
    return {"uptime_s": t, "rss_mb": rss, "latency_ms": {"total": {"p50": p50}}, "frames_out_total": int(t * 10),
            "frames_dropped_total": 0}


def test_analysis_flags_a_leak_and_a_drift_and_passes_a_flat_run():
    flat = [_tele(t, 150.0 + (t % 3) * 0.1, 20.0) for t in range(100)]
    assert analyse(flat).ok
    leak = [_tele(t, 150.0 + t * 0.1, 20.0) for t in range(100)]  # 0.1 MiB/s
    assert not analyse(leak).ok and "RSS grew" in analyse(leak).problems[0]
    drift = [_tele(t, 150.0, 20.0 + t * 0.3) for t in range(100)]
    assert not analyse(drift).ok and "drifted" in analyse(drift).problems[0]


@pytest.mark.slow
def test_soak_of_looped_replay_keeps_rss_flat_and_latency_steady(dev_spec_path, detector_model, clip):
    result = cli("soak", "--spec", str(dev_spec_path), "--source", str(clip), "--minutes", "1.6",
                 "--warmup-s", "20", timeout=240)
    assert result.stdout, result.stderr[-2000:]
    report = json.loads(result.stdout)
    print(report)
    assert report["frames_out"] > 300  # more than one pass of the clip
    assert report["rss_growth_mb"] < 5.0, report
    assert report["latency_drift_ratio"] <= 1.5, report
    assert result.returncode == 0
