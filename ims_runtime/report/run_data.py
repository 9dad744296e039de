"""One run's ``driver_state`` lines (docs/messages.md) as per-frame columns, and what a person asks of them first:
how often the face was there, how often the result was usable, which alerts fired when, how fast each stage ran.

Numpy only (no plotting), so the fleet replay's KPIs and regression gate read runs the same way the report does.
Conventions: time ``t_s`` is seconds since the run's first frame (for a recorded file that is also the time in the
file, so it is the annotated video's time); a null field is NaN in a float column, never zero.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import errors
from ims_runtime.spec.schema import FaceStateSpec, PolicySpec, Spec
from ims_runtime.telemetry.latency import LatencyWindow

NS_PER_S = 1_000_000_000
#: closures shorter than this are blinks, longer ones long closures (docs/policy.md, temporal features)
BLINK_MAX_S = 0.5


@dataclass(frozen=True)
class AlertEvent:
    """One alert episode: from its onset (the message's ``since_ns``) to the last frame it was active."""

    type: str
    onset_s: float
    end_s: float
    max_level: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "onset_s": round(self.onset_s, 3), "end_s": round(self.end_s, 3),
                "max_level": self.max_level}


def _get(message: dict[str, Any], *keys: str) -> Any:
    node: Any = message
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _num(value: Any) -> float:
    """JSON value → float; null (or a bool's absence) → NaN."""
    if value is None:
        return math.nan
    return float(value)


@dataclass
class RunSeries:
    """Per-frame columns, shape ``(N,)`` unless noted; NaN where the message had null."""

    source: str
    t0_ns: int
    frame_id: np.ndarray
    t_s: np.ndarray
    face_present: np.ndarray                 # bool
    box_xyxy_px: np.ndarray                  # (N, 4)
    landmarks_px: np.ndarray                 # (N, 5, 2)
    reliable: np.ndarray                     # 1.0 / 0.0 / NaN (no face state)
    gaze_yaw_rad: np.ndarray
    gaze_pitch_rad: np.ndarray
    on_road: np.ndarray                      # 1.0 / 0.0 / NaN
    head_yaw_deg: np.ndarray
    head_pitch_deg: np.ndarray
    head_roll_deg: np.ndarray
    left_open: np.ndarray                    # 0..1
    right_open: np.ndarray
    eyes_closed: np.ndarray                  # 1.0 / 0.0 / NaN
    perclos: np.ndarray                      # 0..1
    kss_equivalent: np.ndarray               # 1..9
    eyes_off_road_s: np.ndarray
    vats_30s_s: np.ndarray
    availability: list[str | None]
    active_alerts: list[list[dict[str, Any]]]
    latency_ms: dict[str, np.ndarray]        # per stage, NaN for frames without that stage
    stage_backends: dict[str, Any]
    degraded: Counter
    stages_off: list[str]

    @property
    def frames(self) -> int:
        return len(self.t_s)

    @property
    def frame_period_s(self) -> float:
        """Median spacing of the frames (the source's frame period for a recorded file); 1/30 s for one frame."""
        steps = np.diff(self.t_s)
        return float(np.median(steps)) if steps.size else 1 / 30

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] + self.frame_period_s) if self.frames else 0.0


def read_messages(path: Path) -> list[dict[str, Any]]:
    """The ``driver_state`` objects of a JSONL file; a bad line is a coded error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"run file {path} does not exist",
                              "give the JSONL written by `ims-runtime replay --out`")
    messages: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError as exc:
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path} line {number} is not JSON: {exc.msg}",
                                      "give the JSONL written by `ims-runtime replay --out`") from exc
            if not isinstance(message, dict) or "frame_id" not in message or "t_capture_ns" not in message:
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path} line {number} is not a driver_state "
                                      "message (no frame_id / t_capture_ns)", "see docs/messages.md")
            messages.append(message)
    if not messages:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path} holds no driver_state line",
                              "was the replay interrupted? run it again")
    return messages


def series_from_messages(messages: list[dict[str, Any]]) -> RunSeries:
    n = len(messages)
    t0_ns = int(messages[0]["t_capture_ns"])
    stages = sorted({stage for m in messages for stage in (m.get("latency_ms") or {})})
    latency = {stage: np.array([_num((m.get("latency_ms") or {}).get(stage)) for m in messages]) for stage in stages}
    boxes = np.full((n, 4), np.nan)
    landmarks = np.full((n, 5, 2), np.nan)
    for i, m in enumerate(messages):
        if _get(m, "face", "box_xyxy_px"):
            boxes[i] = m["face"]["box_xyxy_px"]
        if _get(m, "face", "landmarks_px"):
            landmarks[i] = m["face"]["landmarks_px"]

    def column(*keys: str) -> np.ndarray:
        return np.array([_num(_get(m, *keys)) for m in messages])

    degraded: Counter = Counter(reason for m in messages for reason in m.get("degraded") or [])
    return RunSeries(
        source=str(messages[0].get("source", "")), t0_ns=t0_ns,
        frame_id=np.array([int(m["frame_id"]) for m in messages]),
        t_s=np.array([(int(m["t_capture_ns"]) - t0_ns) / NS_PER_S for m in messages]),
        face_present=np.array([bool(_get(m, "face", "present")) for m in messages]),
        box_xyxy_px=boxes, landmarks_px=landmarks,
        reliable=column("face_state", "reliable"),
        gaze_yaw_rad=column("gaze", "yaw_rad"), gaze_pitch_rad=column("gaze", "pitch_rad"),
        on_road=column("gaze", "on_road"),
        head_yaw_deg=column("head_pose", "yaw_deg"), head_pitch_deg=column("head_pose", "pitch_deg"),
        head_roll_deg=column("head_pose", "roll_deg"),
        left_open=column("eyes", "left_open"), right_open=column("eyes", "right_open"),
        eyes_closed=column("eyes", "closed"),
        perclos=column("fatigue", "perclos"), kss_equivalent=column("fatigue", "kss_equivalent"),
        eyes_off_road_s=column("distraction", "eyes_off_road_s"), vats_30s_s=column("distraction", "vats_30s_s"),
        availability=[m.get("availability") for m in messages],
        active_alerts=[list(m.get("alerts") or []) for m in messages],
        latency_ms=latency,
        stage_backends=dict(messages[-1].get("stage_backends") or {}),
        degraded=degraded, stages_off=list(messages[-1].get("stages_off") or []))


def load_run(path: Path) -> RunSeries:
    return series_from_messages(read_messages(path))


def spans(mask: np.ndarray, t_s: np.ndarray, frame_period_s: float) -> list[tuple[float, float]]:
    """``[(start_s, end_s)]`` of the runs of True in ``mask`` (a frame covers one frame period)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for on, t in zip(mask, t_s):
        if on and start is None:
            start = float(t)
        elif not on and start is not None:
            out.append((start, float(t)))
            start = None
    if start is not None:
        out.append((start, float(t_s[-1]) + frame_period_s))
    return out


def closures(series: RunSeries) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Eye closures split into blinks (< 0.5 s) and long closures (≥ 0.5 s), each ``[(start_s, end_s)]``."""
    closed = spans(series.eyes_closed == 1.0, series.t_s, series.frame_period_s)
    blinks = [s for s in closed if s[1] - s[0] < BLINK_MAX_S]
    return blinks, [s for s in closed if s[1] - s[0] >= BLINK_MAX_S]


def alert_events(series: RunSeries) -> list[AlertEvent]:
    """Alert episodes in onset order. One episode is one (type, ``since_ns``): the policy keeps ``since_ns`` fixed
    while an alert lasts, so a new onset is a new episode."""
    open_events: dict[tuple[str, int], list[Any]] = {}
    period_s = series.frame_period_s
    for t, active in zip(series.t_s, series.active_alerts):
        for alert in active:
            key = (str(alert["type"]), int(alert.get("since_ns") or 0))
            level = int(alert.get("level") or 1)
            if key in open_events:
                open_events[key][1] = float(t) + period_s
                open_events[key][2] = max(open_events[key][2], level)
            else:
                onset_s = (key[1] - series.t0_ns) / NS_PER_S if key[1] else float(t)
                open_events[key] = [onset_s, float(t) + period_s, level]
    events = [AlertEvent(kind, round(v[0], 6), round(v[1], 6), v[2]) for (kind, _), v in open_events.items()]
    return sorted(events, key=lambda e: (e.onset_s, e.type))


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def summarize(series: RunSeries) -> dict[str, Any]:
    """The report's summary table as a JSON-able dict (percentages in %, times in s, latency in ms)."""
    n = series.frames
    faces = int(series.face_present.sum())
    with_state = ~np.isnan(series.reliable)
    known_availability = [a for a in series.availability if a is not None]
    window = LatencyWindow(size=max(n, 1))
    for i in range(n):
        window.add({stage: float(v[i]) for stage, v in series.latency_ms.items() if not np.isnan(v[i])})
    events = alert_events(series)
    blinks, long_closures = closures(series)
    return {
        "source": series.source,
        "frames": n,
        "duration_s": round(series.duration_s, 3),
        "fps": round(1 / series.frame_period_s, 3) if series.frame_period_s > 0 else None,
        "face_present_pct": _pct(faces, n),
        # of the frames with a face state (a face was found and the face-state stage ran)
        "face_state_reliable_pct": _pct(float(np.nansum(series.reliable)), float(with_state.sum())),
        "availability_ok_pct": _pct(sum(a == "ok" for a in known_availability), len(known_availability)),
        "blinks": len(blinks),
        "long_closures": len(long_closures),
        "alerts_by_type": dict(sorted(Counter(e.type for e in events).items())),
        "alerts": [e.to_dict() for e in events],
        "latency_ms": {stage: {k: (round(v, 3) if k != "n" else int(v)) for k, v in row.items()}
                       for stage, row in window.percentiles().items()},
        "stage_backends": series.stage_backends,
        "degraded": dict(series.degraded),
        "stages_off": series.stages_off,
    }


@dataclass
class Thresholds:
    """Policy settings drawn on the timelines: from the spec when one is given, else the schema's defaults."""

    policy: PolicySpec = field(default_factory=PolicySpec)
    eye_closed_below: float = FaceStateSpec.model_fields["eye_closed_below"].default
    #: where they came from, shown under the timelines
    origin: str = "the spec schema's defaults (no --spec given)"

    @classmethod
    def from_spec(cls, spec: Spec | None, name: str | None = None) -> Thresholds:
        if spec is None:
            return cls()
        out = cls(origin=f"spec {name or spec.name}")
        if spec.policy is not None:
            out.policy = spec.policy
        if spec.stages.face_state is not None:
            out.eye_closed_below = spec.stages.face_state.eye_closed_below
        return out
