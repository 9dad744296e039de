"""docs/messages.md matches the code: topics, their rates, the schema version, and every field a real message has.
The example subscriber runs against a real publisher."""

import re
import subprocess
import sys
import time

from conftest import REPO

from ims_runtime import messages
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.pipeline.sources import VideoFileSource
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.telemetry.reporter import TelemetryReporter

DOC = (REPO / "docs" / "messages.md").read_text()
DOCUMENTED = set(re.findall(r"`([a-z_0-9]+)`", DOC))


def test_topics_rates_and_version_are_documented():
    assert f"Current schema version: **{messages.SCHEMA_VERSION}**" in DOC
    plain = DOC.replace("`", "")
    for topic in messages.TOPICS.values():
        assert f"| {topic.name} | " in plain and topic.rate.split(" ")[0] in plain


def test_every_driver_state_field_is_documented(dev_spec, clip):
    pipeline = Pipeline(dev_spec)
    source = VideoFileSource(clip)
    try:
        state = pipeline.process(next(iter(source.frames())))
    finally:
        source.close()
        pipeline.close()
    message = messages.encode_driver_state(state.with_latency(queue_wait=0.0, capture_to_publish=0.0))  # as serve
    assert set(message) <= DOCUMENTED, set(message) - DOCUMENTED
    assert set(message["latency_ms"]) <= DOCUMENTED | {"face_detector"}


def test_every_telemetry_field_is_documented():
    reporter = TelemetryReporter(1.0)
    message = messages.encode_telemetry(reporter.message(spec_name="x", stages={}, publish_dropped=0, state="running",
                                                         spec_sha256="0" * 64, reload={}, scheduler={}))
    assert {"state", "spec_sha256", "reload", "scheduler", "budget"} <= set(message)  # the serve-only parts
    assert set(message) <= DOCUMENTED, set(message) - DOCUMENTED


def test_the_example_subscriber_prints_states_from_a_real_publisher(tmp_path):
    endpoint = f"ipc://{tmp_path}/hmi.sock"
    publisher = Publisher(endpoint)
    proc = subprocess.Popen([sys.executable, str(REPO / "examples" / "hmi_subscriber.py"), endpoint, "3"],
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        n = 0
        while proc.poll() is None and time.monotonic() < deadline:
            publisher.publish("driver_state", {"schema_version": 1, "frame_id": n, "face": {"present": n % 2 == 0},
                                               "alerts": None})
            n += 1
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=5)
    finally:
        publisher.close()
        if proc.poll() is None:
            proc.kill()
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith("frame ") and "alerts=[]" in line for line in lines)
