"""``FrameSignals``: what the temporal stage and the policy need from one frame, with units in the names.

This is the line format of ``ims-runtime policy-replay`` (one JSON object per frame) and what the service builds
from the detector and face-state stages. Every field except ``t_ns`` and ``face_present`` may be missing (None):
missing means *not measured*, never *zero*.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ims_runtime import inputs


@dataclass(frozen=True)
class FrameSignals:
    #: capture time, nanoseconds on the monotonic clock the frame source uses
    t_ns: int
    #: the driver's face was found in this frame
    face_present: bool
    #: gaze angles as the camera sees them (pitch > 0 up, yaw > 0 toward the image's right edge), radians
    gaze_pitch_rad: float | None = None
    gaze_yaw_rad: float | None = None
    #: eyes on the road zone, decided upstream; takes precedence over the gaze angles when given
    on_road: bool | None = None
    #: head pose, degrees, same conventions as the gaze
    head_yaw_deg: float | None = None
    head_pitch_deg: float | None = None
    #: eye openness 0 (closed) .. 1 (open), per eye
    left_open: float | None = None
    right_open: float | None = None
    #: mouth openness 0 (closed) .. 1 (wide open, yawning)
    mouth_open: float | None = None
    #: vehicle speed known at this frame, km/h (replay files may carry it; the service uses its speed source)
    speed_kmh: float | None = None
    #: detector / face-state confidence in the driver's face, 0..1 (low confidence → signals unusable)
    face_confidence: float | None = None
    #: the image is covered or black (decided by the pipeline); True makes the driver state unavailable
    camera_blocked: bool | None = None

    @classmethod
    def from_dict(cls, data: Any) -> FrameSignals:
        """Build from a policy-replay JSON object, through the one input boundary (:mod:`ims_runtime.inputs`):
        unknown keys are rejected so typos do not pass silently; booleans must be JSON booleans (``"false"`` is
        not false); numbers must be finite JSON numbers in the field's range (:data:`RANGES`); ``null`` means
        not measured. Raises :class:`~ims_runtime.inputs.InputRejected` (a ValueError) naming the field."""
        if not isinstance(data, dict):
            raise inputs.InputRejected("wrong_type", f"expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            raise inputs.InputRejected("wrong_type", f"unknown signal field(s) {unknown}; known: {sorted(known)}")
        if "t_ns" not in data or "face_present" not in data:
            raise inputs.InputRejected("missing_field", "each line needs t_ns and face_present")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if value is None and name not in ("t_ns", "face_present"):
                continue
            if name == "t_ns":
                values[name] = inputs.timestamp_ns(value)
            elif name in BOOLEANS:
                values[name] = inputs.strict_bool(value, name)
            else:
                low, high = RANGES[name]
                values[name] = inputs.finite_number(value, name, low, high)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def eye_openness(self) -> float | None:
        """Mean openness of the eyes that were measured, or None when neither was (or the face is absent)."""
        if not self.face_present:
            return None
        eyes = [v for v in (self.left_open, self.right_open) if v is not None]
        return sum(eyes) / len(eyes) if eyes else None


#: fields that are JSON booleans
BOOLEANS = ("face_present", "on_road", "camera_blocked")
#: physical range of each numeric field (inclusive); a value outside is a broken recording, not a measurement
RANGES: dict[str, tuple[float, float]] = {
    "gaze_pitch_rad": (-math.pi, math.pi), "gaze_yaw_rad": (-math.pi, math.pi),
    "head_yaw_deg": (-180.0, 180.0), "head_pitch_deg": (-180.0, 180.0),
    "left_open": (0.0, 1.0), "right_open": (0.0, 1.0), "mouth_open": (0.0, 1.0),
    "speed_kmh": (0.0, inputs.SPEED_KMH_MAX), "face_confidence": (0.0, 1.0),
}
