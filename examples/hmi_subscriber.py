"""Minimal HMI subscriber: prints the driver's state and the service's health. Needs only pyzmq.

    python examples/hmi_subscriber.py ipc:///run/ims-runtime/ims.sock [COUNT]

Message schema and versioning: docs/messages.md. A tcp:// endpoint with CURVE also needs the keys: see
``ims-runtime listen --server-key/--client-key`` (ims_runtime/publish/security.py, client_socket_options).
"""

import json
import sys

import zmq

SUPPORTED_SCHEMA = 1  # refuse messages of a major version this HMI was not written for

endpoint = sys.argv[1] if len(sys.argv) > 1 else "ipc:///run/ims-runtime/ims.sock"
count = int(sys.argv[2]) if len(sys.argv) > 2 else None
sub = zmq.Context.instance().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"driver_state")
sub.setsockopt(zmq.SUBSCRIBE, b"telemetry")
sub.setsockopt(zmq.RCVHWM, 10)  # an HMI wants the latest state, not a backlog
sub.connect(endpoint)
while count is None or count > 0:
    topic, payload = sub.recv_multipart()
    msg = json.loads(payload)
    if msg.get("schema_version") != SUPPORTED_SCHEMA:
        continue
    if topic == b"driver_state":
        alerts = [a["type"] for a in msg.get("alerts") or []]  # alerts is null while the policy is off
        print(f"frame {msg['frame_id']}: face={msg['face']['present']} alerts={alerts}")
    else:
        print(f"health: {msg['fps_out']:.1f} fps, rss {msg['rss_mb']:.0f} MiB, power {msg['power_w']} W")
    count = None if count is None else count - 1
