"""Message schema, topics and the wire codec shared by the publisher, ``replay`` and ``listen``.

Every message is one ZeroMQ multipart ``[topic, json]``; the JSON always carries ``schema_version``. Topics and
their expected rates are declared here once. Versioning: adding a field keeps the version; renaming, removing or
changing the meaning or unit of a field bumps it (see docs/messages.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ims_runtime.contract import (
    ActiveAlert,
    Distraction,
    DriverState,
    FaceObservation,
    FaceState,
    FatigueState,
    PolicyState,
    StageBackend,
    Telemetry,
)
from ims_runtime.temporal.features import FatigueFeatures

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


# -- driver_state: the one encoder from the typed contract to the wire format, and its inverse -----------------

#: message fields each optional part fills; null while that part is off (and the part is listed in stages_off)
OPTIONAL_FIELDS = {
    "face_state": ("gaze", "head_pose", "eyes", "mouth", "face_state"),
    "fatigue": ("fatigue",),
    "policy": ("distraction", "alerts", "availability"),
}


def _face(face: FaceObservation) -> dict[str, Any]:
    if not face.present:
        return {"present": False, "count_in_frame": face.count_in_frame}
    return {"present": True, "box_xyxy_px": list(face.box_xyxy_px or ()), "score": face.score,
            "landmarks_px": face.landmarks_px, "count_in_frame": face.count_in_frame}


def encode_face_state(state: FaceState) -> dict[str, Any]:
    """The ``gaze``, ``head_pose``, ``eyes``, ``mouth`` and ``face_state`` parts of a driver_state message."""
    # rounding: 1e-4 rad ≈ 0.006°, 0.01° and 0.001 openness are far below what the networks resolve
    return {
        "gaze": {"pitch_rad": round(state.gaze_pitch_rad, 4), "yaw_rad": round(state.gaze_yaw_rad, 4),
                 "on_road": state.on_road},
        "head_pose": {"yaw_deg": round(state.head_yaw_deg, 2), "pitch_deg": round(state.head_pitch_deg, 2),
                      "roll_deg": round(state.head_roll_deg, 2)},
        "eyes": {"left_open": round(state.left_eye_open, 3), "right_open": round(state.right_eye_open, 3),
                 "closed": state.eyes_closed},
        "mouth": None if state.mouth_open is None else {"open": round(state.mouth_open, 3)},
        "face_state": {"confidence": round(state.confidence, 3), "reliable": state.reliable},
    }


def _fatigue(fatigue: FatigueState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "valid": fatigue.valid,
        "level": fatigue.level,
        "kss_equivalent": None if fatigue.kss_equivalent is None else round(fatigue.kss_equivalent, 2),
        "source": fatigue.source,
        "rules_kss_equivalent": (None if fatigue.rules_kss_equivalent is None
                                 else round(fatigue.rules_kss_equivalent, 2)),
    }
    if fatigue.level_probs is not None:
        out["level_probs"] = [round(p, 3) for p in fatigue.level_probs]
    out.update(fatigue.features.to_dict())
    return out


def _policy(policy: PolicyState) -> dict[str, Any]:
    d = policy.distraction
    return {
        "distraction": {"state": d.state, "on_road": d.on_road, "eyes_off_road_s": round(d.eyes_off_road_s, 3),
                        "vats_30s_s": round(d.vats_30s_s, 3)},
        "alerts": [{"type": a.type, "level": a.level, "since_ns": a.since_ns} for a in policy.alerts],
        "availability": policy.availability,
    }


def encode_monitor(fatigue: FatigueState | None, policy: PolicyState | None) -> dict[str, Any]:
    """The ``fatigue`` / ``distraction`` / ``alerts`` / ``availability`` fields of the parts that are on (the
    line format of ``ims-runtime policy-replay``, which leaves out what is off)."""
    out: dict[str, Any] = {}
    if fatigue is not None:
        out["fatigue"] = _fatigue(fatigue)
    if policy is not None:
        out.update(_policy(policy))
    return out


def encode_driver_state(state: DriverState) -> dict[str, Any]:
    """The ``driver_state`` message (docs/messages.md) for ``state``: the only place that builds it."""
    message: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "frame_id": state.frame_id,
        "t_capture_ns": state.t_capture_ns,
        "t_publish_ns": state.t_publish_ns,
        "source": state.source,
        "valid": state.valid,
        "degraded": list(state.degraded),
        "stages_off": list(state.stages_off),
        "camera_blocked": state.camera_blocked,
        "face": _face(state.face),
    }
    parts = {"face_state": (state.face_state, encode_face_state),
             "fatigue": (state.fatigue, lambda f: {"fatigue": _fatigue(f)}),
             "policy": (state.policy, _policy)}
    for part, (value, encode_part) in parts.items():
        if value is not None:
            message.update(encode_part(value))
        else:  # off, or (face-state) no face in this frame: every field of the part is null
            message.update(dict.fromkeys(OPTIONAL_FIELDS[part]))
    message["latency_ms"] = dict(state.latency_ms)
    message["stage_backends"] = {stage: {"backend": b.backend, "precision": b.precision}
                                 for stage, b in state.stage_backends.items()}
    return message


_FEATURE_FIELDS = tuple(f.name for f in fields(FatigueFeatures) if f.name != "t_ns")


def decode_driver_state(message: dict[str, Any]) -> DriverState:
    """The typed :class:`DriverState` of a ``driver_state`` message (replay lines, subscribers, tools).

    Raises ``ValueError``/``KeyError`` when the message does not follow the contract."""
    if message.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version {message.get('schema_version')!r}, this reader knows {SCHEMA_VERSION}")
    f = message["face"]
    face = FaceObservation(present=f["present"], count_in_frame=f["count_in_frame"],
                           box_xyxy_px=tuple(f["box_xyxy_px"]) if f["present"] else None,
                           score=f.get("score"),
                           landmarks_px=np.asarray(f["landmarks_px"], np.float64) if f["present"] else None)
    face_state = None
    if message.get("face_state") is not None:
        g, h, e = message["gaze"], message["head_pose"], message["eyes"]
        face_state = FaceState(
            gaze_pitch_rad=g["pitch_rad"], gaze_yaw_rad=g["yaw_rad"], on_road=g["on_road"],
            head_yaw_deg=h["yaw_deg"], head_pitch_deg=h["pitch_deg"], head_roll_deg=h["roll_deg"],
            left_eye_open=e["left_open"], right_eye_open=e["right_open"], eyes_closed=e["closed"],
            mouth_open=None if message.get("mouth") is None else message["mouth"]["open"],
            confidence=message["face_state"]["confidence"], reliable=message["face_state"]["reliable"])
    fatigue = None
    if message.get("fatigue") is not None:
        fm = message["fatigue"]
        probs = fm.get("level_probs")
        fatigue = FatigueState(
            valid=fm["valid"], level=fm["level"], kss_equivalent=fm["kss_equivalent"], source=fm["source"],
            rules_kss_equivalent=fm["rules_kss_equivalent"], level_probs=tuple(probs) if probs else None,
            features=FatigueFeatures(t_ns=message["t_capture_ns"], **{k: fm[k] for k in _FEATURE_FIELDS}))
    policy = None
    if message.get("availability") is not None:
        d = message["distraction"]
        policy = PolicyState(
            distraction=Distraction(state=d["state"], on_road=d["on_road"], eyes_off_road_s=d["eyes_off_road_s"],
                                    vats_30s_s=d["vats_30s_s"]),
            alerts=tuple(ActiveAlert(a["type"], a["level"], a["since_ns"]) for a in message["alerts"]),
            availability=message["availability"])
    return DriverState(
        frame_id=message["frame_id"], t_capture_ns=message["t_capture_ns"], t_publish_ns=message["t_publish_ns"],
        source=message["source"], valid=message["valid"], degraded=tuple(message["degraded"]),
        stages_off=tuple(message["stages_off"]), face=face, face_state=face_state, fatigue=fatigue,
        policy=policy, camera_blocked=message.get("camera_blocked"),
        latency_ms={k: float(v) for k, v in message["latency_ms"].items() if v is not None},
        stage_backends={k: StageBackend(v["backend"], v["precision"])
                        for k, v in message["stage_backends"].items()})


def encode_telemetry(telemetry: Telemetry) -> dict[str, Any]:
    """The ``telemetry`` message (docs/messages.md) for ``telemetry``: the only place that builds it. Service-only
    parts are left out when None (``budget`` is always present: null means no budget in the spec)."""
    message: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for f in fields(Telemetry):
        value = getattr(telemetry, f.name)
        if f.name in ("state", "spec_sha256", "reload", "scheduler", "speed_input", "notify_dropped_total") \
                and value is None:
            continue
        message[f.name] = value
    return message
