"""Message schema, topics and the wire codec shared by the publisher, ``replay`` and ``listen``.

Every message is one ZeroMQ multipart ``[topic, json]``; the JSON always carries ``schema_version``. Topics and
their expected rates are declared here once. Versioning: adding a field keeps the version; renaming, removing or
changing the meaning or unit of a field bumps it (see docs/messages.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Topic:
    name: str
    #: expected rate: "per_frame" or a period in seconds
    rate: str
    description: str


TOPICS: dict[str, Topic] = {
    "driver_state": Topic("driver_state", "per_frame", "one per processed frame: face, gaze, eyes, fatigue, "
                          "distraction, alerts, latency"),
    "telemetry": Topic("telemetry", "publish.telemetry_interval_s (about 1 s)", "fps, drops, latency "
                       "percentiles per stage, RSS, CPU, temperature, power, backends"),
}

#: fields that legitimately differ between two runs over the same input (wall-clock and timing)
NONDETERMINISTIC_FIELDS = ("t_publish_ns", "latency_ms")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else round(f, 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def to_json(message: dict[str, Any]) -> str:
    """Compact JSON with floats rounded to 6 digits (enough for pixels and radians, stable across runs)."""
    return json.dumps(_jsonable(message), separators=(",", ":"), allow_nan=False)


def encode(topic: str, message: dict[str, Any]) -> list[bytes]:
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; known: {sorted(TOPICS)}")
    return [topic.encode(), to_json(message).encode()]


def decode(parts: list[bytes]) -> tuple[str, dict[str, Any]]:
    if len(parts) != 2:
        raise ValueError(f"expected [topic, json], got {len(parts)} parts")
    return parts[0].decode(), json.loads(parts[1])


def strip_nondeterministic(message: dict[str, Any]) -> dict[str, Any]:
    """The message without wall-clock and latency fields, for comparing two replays."""
    return {k: v for k, v in message.items() if k not in NONDETERMINISTIC_FIELDS}
