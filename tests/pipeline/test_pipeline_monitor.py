"""The service pipeline carries fatigue, distraction, alerts and availability from the same DriverMonitor that
policy-replay runs; without face-state signals it says so instead of inventing eye or gaze values."""

from __future__ import annotations

from ims_runtime.messages import encode_driver_state
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.pipeline.sources import open_source
from ims_runtime.pipeline.vehicle_speed import ConstantSpeed


def test_replayed_clip_fills_the_monitor_fields(dev_spec, clip):
    assert dev_spec.stages.fatigue is not None and dev_spec.policy is not None
    pipeline = Pipeline(dev_spec, speed=ConstantSpeed(80.0))
    source = open_source(dev_spec.source, str(clip), fail_fast_camera=True, loop=False)
    try:
        messages = [encode_driver_state(pipeline.process(frame)) for _, frame in zip(range(45), source.frames())]
    finally:
        source.close()
        pipeline.close()
    first, last = messages[0], messages[-1]
    for m in messages:
        assert set(m["fatigue"]) >= {"level", "kss_equivalent", "perclos", "blink_rate_per_min", "valid"}
        assert set(m["distraction"]) == {"state", "on_road", "eyes_off_road_s", "vats_30s_s"}
        assert isinstance(m["alerts"], list) and m["availability"] in ("ok", "temporarily_unavailable", "failed")
        assert m["latency_ms"]["fatigue_policy"] >= 0
    # the face-state stage measures eyes and gaze; 45 frames (1.5 s) are too few for a fatigue level or an alert
    assert last["face"]["present"] is True and last["gaze"] is not None
    assert last["fatigue"]["valid"] is False and last["fatigue"]["level"] == "unknown"
    assert last["fatigue"]["eyes_measured"] is True and last["distraction"]["state"] != "unknown"
    assert first["availability"] == "ok" and last["availability"] == "ok"
    assert not any(a["type"].endswith("distraction") for m in messages for a in m["alerts"])
