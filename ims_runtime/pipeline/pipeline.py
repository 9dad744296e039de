"""The per-frame pipeline: ``Frame`` → detector → (face-state → temporal/policy) → ``driver_state`` message.

One object built from a validated spec, shared by ``serve``, ``replay`` and ``bench``, so that all three behave
identically. Stages not configured in the spec leave their message fields ``null`` and are listed in
``stages_off`` — the message never carries made-up values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from ims_runtime import messages
from ims_runtime.monitor import DriverMonitor, FrameSignals
from ims_runtime.spec import Spec
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.stages.face_state import FaceStateStage
from ims_runtime.types import Detections, Frame

#: message fields each optional stage fills; null while the stage is off (``policy`` is the spec's top-level
#: ``policy`` section, the others are under ``stages``)
OPTIONAL_STAGE_FIELDS = {
    "face_state": ("gaze", "head_pose", "eyes", "mouth", "face_state"),
    "fatigue": ("fatigue",),
    "policy": ("distraction", "alerts", "availability"),
}


class SpeedProvider(Protocol):
    def speed_at(self, t_ns: int) -> float | None: ...


def frame_signals(frame: Frame, detections: Detections,
                  face_state: dict[str, Any] | None = None) -> FrameSignals:
    """What the temporal stage and the policy get from this frame. ``face_state``: FrameSignals fields from the
    face-state stage (gaze, head pose, eye and mouth openness); absent fields stay None, never invented."""
    face = detections.driver
    return FrameSignals(t_ns=frame.t_capture_ns, face_present=face is not None,
                        face_confidence=None if face is None else float(face.score), **(face_state or {}))


def face_message(detections: Detections) -> dict[str, Any]:
    face = detections.driver
    if face is None:
        return {"present": False, "count_in_frame": len(detections.faces)}
    return {
        "present": True,
        "box_xyxy_px": list(face.box_xyxy_px),
        "score": face.score,
        "landmarks_px": face.landmarks_px,
        "count_in_frame": len(detections.faces),
    }


class Pipeline:
    """Builds every configured stage at construction (models loaded, backends opened); ``process`` runs one frame."""

    def __init__(self, spec: Spec, spec_dir: Path | None = None, speed: SpeedProvider | None = None) -> None:
        self.spec = spec
        self.detector = FaceDetector.from_spec(spec.stages.face_detector, spec_dir)
        self.face_state = (FaceStateStage.from_spec(spec.stages.face_state, spec_dir,
                                                    spec.policy.road_zone if spec.policy is not None else None)
                           if spec.stages.face_state is not None else None)
        self.stages_off = [name for name in OPTIONAL_STAGE_FIELDS
                           if getattr(spec.stages, name, getattr(spec, name, None)) is None]
        self.monitor = DriverMonitor.from_spec(spec, spec_dir)
        #: vehicle speed (the service's ZeroMQ subscriber); None = unknown, the policy's unknown_speed decides
        self.speed = speed
        #: which backend and precision each model stage actually runs on (after fallbacks), in every message
        self.stage_backends = {stage: {"backend": info.get("backend"), "precision": info.get("precision")}
                               for stage, info in self.describe().items()}

    def warmup(self, runs: int = 3) -> None:
        self.detector.warmup(runs)
        if self.face_state is not None:
            self.face_state.warmup(runs)

    def reset(self) -> None:
        """Forget per-driver state (tracking, temporal history) before a new or restarted source."""
        self.detector.reset()
        if self.face_state is not None:
            self.face_state.reset()
        self.monitor.reset()

    def process(self, frame: Frame) -> dict[str, Any]:
        """One frame → one ``driver_state`` message (schema in docs/messages.md), latency per stage in ms."""
        t0 = time.perf_counter_ns()
        detections = self.detector.detect(frame)
        t1 = time.perf_counter_ns()
        latency_ms = {"face_detector": (t1 - t0) / 1e6}
        state = None
        if self.face_state is not None:
            # the driver's face only; process(frame, None) resets the per-driver state (eye-closure hysteresis)
            state = self.face_state.process(frame, detections.driver)
            latency_ms["face_state"] = (time.perf_counter_ns() - t1) / 1e6
        monitor_fields: dict[str, Any] = {}
        if self.monitor.enabled:
            t2 = time.perf_counter_ns()
            speed_kmh = self.speed.speed_at(frame.t_capture_ns) if self.speed is not None else None
            signals = state.to_signals() if state is not None else None
            monitor_fields = self.monitor.update(frame_signals(frame, detections, signals), speed_kmh)
            latency_ms["fatigue_policy"] = (time.perf_counter_ns() - t2) / 1e6
        message: dict[str, Any] = {
            "schema_version": messages.SCHEMA_VERSION,
            "frame_id": frame.frame_id,
            "t_capture_ns": frame.t_capture_ns,
            "source": frame.source,
            "valid": True,
            "degraded": self._degraded(),
            "stages_off": self.stages_off,
            "face": face_message(detections),
            **monitor_fields,
            "stage_backends": self.stage_backends,
        }
        if self.face_state is not None:
            fields = state.to_message() if state is not None else {}
            for field in OPTIONAL_STAGE_FIELDS["face_state"]:
                message[field] = fields.get(field)
        for stage in self.stages_off:
            for field in OPTIONAL_STAGE_FIELDS[stage]:
                message[field] = None
        latency_ms["total"] = (time.perf_counter_ns() - t0) / 1e6
        message["latency_ms"] = latency_ms
        message["t_publish_ns"] = time.time_ns()
        return message

    def _degraded(self) -> list[str]:
        reasons = []
        if self.detector.backend_skips:
            reasons.append("face_detector_backend_fallback")
        if self.face_state is not None and self.face_state.backend_skips:
            reasons.append("face_state_backend_fallback")
        return reasons

    def describe(self) -> dict[str, dict[str, object]]:
        """Backend and precision each stage actually runs on (for telemetry)."""
        described = {"face_detector": self.detector.describe()}
        if self.face_state is not None:
            described["face_state"] = self.face_state.describe()
        classifier = self.monitor.classifier
        if classifier is not None and self.spec.stages.fatigue is not None:
            described["fatigue"] = {**classifier.backend.describe(), "precision": self.spec.stages.fatigue.precision}
        return described

    def close(self) -> None:
        self.detector.close()
        if self.face_state is not None:
            self.face_state.close()
        self.monitor.close()
        if self.speed is not None and hasattr(self.speed, "close"):
            self.speed.close()
