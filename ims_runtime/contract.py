"""The published contract: the typed objects each stage returns, the ``DriverState`` the pipeline assembles from
them, and the service's periodic ``Telemetry``.

One object per boundary, frozen, validating itself on construction (ranges, units in the names):

    FaceObservation (detector)  ─┐
    FaceState      (face-state)  ├─► DriverState ──► messages.encode_driver_state ──► the published JSON
    FatigueState   (fatigue)     │
    Distraction, alerts,         │
    availability   (policy)     ─┘

``DriverState`` is built in exactly one place (:meth:`ims_runtime.pipeline.pipeline.Pipeline.process`),
``Telemetry`` in one (:meth:`ims_runtime.telemetry.reporter.TelemetryReporter.message`); the one encoder to the
wire format, and its inverse for tests and tools, are in :mod:`ims_runtime.messages`. A field that
is ``None`` means *not known / not computed* (a stage that is off, no face) — never zero or false.

Validation raises :class:`ValueError` naming the field; it costs a few microseconds per frame and catches a
stage that starts producing nonsense (a NaN openness, a probability of 3) at the boundary where it appears,
instead of in a subscriber.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ims_runtime.temporal.features import FatigueFeatures

#: fatigue levels, from least to most severe (``unknown`` = not enough data yet)
FATIGUE_LEVELS = ("unknown", "alert", "drowsy", "severe")
#: distraction states the policy reports
DISTRACTION_STATES = ("unknown", "attentive", "distracted")
#: availability of the driver-monitoring function (Euro NCAP: the system must say when it cannot judge)
AVAILABILITY_STATES = ("ok", "temporarily_unavailable", "failed")


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name}={value!r} outside [{low}, {high}]")


def _check_finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not finite")


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """The detector's answer about the driver's face in one frame (frame pixel coordinates).

    ``landmarks_px``: (5, 2) float32 x, y — right eye, left eye (as seen in the image), nose tip, right and left
    mouth corner (RetinaFace's order). ``count_in_frame``: faces the detector reported in this frame (on tracked
    frames only the driver's is looked for, so 1).
    """

    present: bool
    count_in_frame: int
    box_xyxy_px: tuple[float, float, float, float] | None = None
    score: float | None = None
    landmarks_px: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.count_in_frame < 0:
            raise ValueError(f"count_in_frame={self.count_in_frame} < 0")
        if self.present:
            if self.box_xyxy_px is None or self.score is None or self.landmarks_px is None:
                raise ValueError("a present face needs box_xyxy_px, score and landmarks_px")
            x0, y0, x1, y1 = self.box_xyxy_px
            if not (x1 >= x0 and y1 >= y0):
                raise ValueError(f"box_xyxy_px={self.box_xyxy_px} is not x0 <= x1, y0 <= y1")
            if np.shape(self.landmarks_px) != (5, 2):
                raise ValueError(f"landmarks_px has shape {np.shape(self.landmarks_px)}, expected (5, 2)")
            _check_range("face.score", self.score, 0.0, 1.0)
        elif self.box_xyxy_px is not None or self.score is not None or self.landmarks_px is not None:
            raise ValueError("an absent face carries no box, score or landmarks")

    @classmethod
    def absent(cls, count_in_frame: int = 0) -> FaceObservation:
        return cls(present=False, count_in_frame=count_in_frame)


@dataclass(frozen=True, slots=True)
class FaceState:
    """The face-state stage's answer for the driver's face (image frame, the project's angle conventions:
    yaw > 0 toward the image's right edge, pitch > 0 up, roll > 0 clockwise in the image)."""

    gaze_pitch_rad: float
    gaze_yaw_rad: float
    #: the gaze (or head pose) is inside the policy's road zone — decided once, by ``policy.road_zone``
    on_road: bool | None
    head_yaw_deg: float
    head_pitch_deg: float
    head_roll_deg: float
    #: openness per eye, 0 closed .. 1 open (the subject's left and right eye)
    left_eye_open: float
    right_eye_open: float
    #: eyes-closed decision with hysteresis (per-driver state in the stage)
    eyes_closed: bool
    #: mouth openness 0..1; None when the deployed model has no trustworthy mouth output
    mouth_open: float | None
    #: the face-state network's own confidence that the crop is an aligned face, 0..1
    confidence: float
    #: confidence ≥ the spec's ``min_confidence``; unreliable states are not fed to the temporal stage
    reliable: bool

    def __post_init__(self) -> None:
        for name in ("gaze_pitch_rad", "gaze_yaw_rad"):
            _check_range(name, getattr(self, name), -math.pi, math.pi)
        for name in ("head_yaw_deg", "head_pitch_deg", "head_roll_deg"):
            _check_range(name, getattr(self, name), -180.0, 180.0)
        for name in ("left_eye_open", "right_eye_open", "mouth_open", "confidence"):
            _check_range(name, getattr(self, name), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class FatigueState:
    """The fatigue stage's estimate over the temporal window ending at this frame."""

    #: an estimate exists (enough eye data in the window)
    valid: bool
    level: str
    #: Karolinska Sleepiness Scale equivalent, 1 (extremely alert) .. 9 (fighting sleep); None = not estimated
    kss_equivalent: float | None
    #: which estimator decided: "model" (the temporal network) or "rules" (PERCLOS / blink-duration tables)
    source: str
    #: the rule-based estimate, always computed beside the model as a reference
    rules_kss_equivalent: float | None
    #: the network's probabilities of alert / drowsy / severe (None when the network did not run)
    level_probs: tuple[float, float, float] | None
    features: FatigueFeatures

    def __post_init__(self) -> None:
        if self.level not in FATIGUE_LEVELS:
            raise ValueError(f"fatigue level {self.level!r} not in {FATIGUE_LEVELS}")
        if self.source not in ("model", "rules"):
            raise ValueError(f"fatigue source {self.source!r} not in ('model', 'rules')")
        _check_range("kss_equivalent", self.kss_equivalent, 1.0, 9.0)
        _check_range("rules_kss_equivalent", self.rules_kss_equivalent, 1.0, 9.0)
        if self.valid != (self.kss_equivalent is not None):
            raise ValueError("fatigue.valid must be true exactly when kss_equivalent is known")
        if self.level_probs is not None:
            for p in self.level_probs:
                _check_range("level_probs", p, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Distraction:
    """The policy's distraction timers at this frame."""

    state: str
    #: eyes on the road zone (None = could not be judged in this frame)
    on_road: bool | None
    #: the current glance away from the road has lasted this long, seconds
    eyes_off_road_s: float
    #: eyes-off-road time inside the last 30 s (Euro NCAP VATS), seconds
    vats_30s_s: float

    def __post_init__(self) -> None:
        if self.state not in DISTRACTION_STATES:
            raise ValueError(f"distraction state {self.state!r} not in {DISTRACTION_STATES}")
        _check_range("eyes_off_road_s", self.eyes_off_road_s, 0.0, math.inf)
        _check_range("vats_30s_s", self.vats_30s_s, 0.0, math.inf)


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """One alert the policy holds active: its type, escalation level 1 (visual) .. 3 and since when (ns)."""

    type: str
    level: int
    since_ns: int

    def __post_init__(self) -> None:
        if not 1 <= self.level <= 3:
            raise ValueError(f"alert level {self.level} outside 1..3")


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What the policy decided at this frame."""

    distraction: Distraction
    alerts: tuple[ActiveAlert, ...]
    availability: str

    def __post_init__(self) -> None:
        if self.availability not in AVAILABILITY_STATES:
            raise ValueError(f"availability {self.availability!r} not in {AVAILABILITY_STATES}")


@dataclass(frozen=True, slots=True)
class StageBackend:
    """The backend and precision a model stage really runs on, after fallbacks."""

    backend: str | None
    precision: str | None


@dataclass(frozen=True, slots=True)
class DriverState:
    """Everything published about the driver for one frame (wire format: docs/messages.md).

    ``valid`` is false when the frame's image cannot be used to judge the driver (the camera is blocked);
    ``degraded`` lists reasons the result is less trustworthy (open list: backend fallbacks, unknown or stale
    vehicle speed, a blocked camera, an unreliable face state).
    """

    frame_id: int
    t_capture_ns: int
    t_publish_ns: int
    source: str
    valid: bool
    degraded: tuple[str, ...]
    stages_off: tuple[str, ...]
    face: FaceObservation
    #: None while the face-state stage is off or no face was found
    face_state: FaceState | None
    #: None while the fatigue stage is off
    fatigue: FatigueState | None
    #: None while the policy is off
    policy: PolicyState | None
    #: the camera image is covered, black or saturated (pipeline's camera check); None while the check is off
    camera_blocked: bool | None
    #: milliseconds per stage, ``total`` (the pipeline) and, from the service, ``queue_wait`` and
    #: ``capture_to_publish``
    latency_ms: dict[str, float] = field(default_factory=dict)
    stage_backends: dict[str, StageBackend] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frame_id < 0:
            raise ValueError(f"frame_id={self.frame_id} < 0")
        for stage, ms in self.latency_ms.items():
            _check_finite(f"latency_ms.{stage}", ms)

    def with_latency(self, **extra_ms: float) -> DriverState:
        """A copy with more latency entries (the service adds ``queue_wait`` and ``capture_to_publish``)."""
        return dataclasses.replace(self, latency_ms={**self.latency_ms, **extra_ms})


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The ``telemetry`` message (about once a second; docs/messages.md). Service-only parts (``state``,
    ``spec_sha256``, ``reload``, ``scheduler``, ``budget``) are None outside ``serve``."""

    t_ns: int
    spec: str
    uptime_s: float
    fps_in: float
    fps_out: float
    frames_in_total: int
    frames_out_total: int
    frames_dropped_total: int
    publish_dropped_total: int
    #: per stage: {p50, p95, p99, n} over the last frames, milliseconds
    latency_ms: dict[str, dict[str, float]]
    rss_mb: float | None
    cpu_percent: float | None
    temperature_c: dict[str, float] | None
    #: board power in watts (None with ``power_unavailable_reason`` when there is no sensor)
    power_w: float | None
    power_source: str | None
    power_rails_w: dict[str, float] | None
    power_unavailable_reason: str | None
    #: per model stage: backend, precision, providers really used
    stages: dict[str, dict[str, object]]
    state: str | None = None
    spec_sha256: str | None = None
    reload: dict[str, object] | None = None
    scheduler: dict[str, object] | None = None
    budget: dict[str, object] | None = None
    #: vehicle-speed messages accepted and rejected by reason since start (None without a live speed input)
    speed_input: dict[str, object] | None = None
    #: sd_notify messages dropped because the notify socket was full or gone, since start
    notify_dropped_total: int | None = None

    def __post_init__(self) -> None:
        for name in ("uptime_s", "fps_in", "fps_out", "frames_in_total", "frames_out_total", "frames_dropped_total",
                     "publish_dropped_total"):
            _check_range(name, getattr(self, name), 0, math.inf)
        for name in ("rss_mb", "cpu_percent", "power_w"):
            _check_range(name, getattr(self, name), 0, math.inf)
        if self.power_w is None and self.power_unavailable_reason is None:
            raise ValueError("power_w is null without power_unavailable_reason")
