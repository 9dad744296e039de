"""The per-frame pipeline: ``Frame`` → detector → camera check → face-state → temporal/fatigue/policy →
:class:`~ims_runtime.contract.DriverState`.

One object built from a validated spec, shared by ``serve``, ``replay`` and ``bench``, so that all three behave
identically. Every stage returns its own typed result; :meth:`Pipeline.process` is the one place that assembles
them into a ``DriverState`` (encoded to the wire format by :func:`ims_runtime.messages.encode_driver_state`).
Stages not configured in the spec leave their parts ``None`` (published as ``null``) and are listed in
``stages_off`` — the message never carries made-up values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import cv2

from ims_runtime.contract import DriverState, FaceObservation, FaceState, StageBackend
from ims_runtime.messages import OPTIONAL_FIELDS
from ims_runtime.pipeline.monitor import DriverMonitor
from ims_runtime.spec import Spec
from ims_runtime.stages.camera_check import CameraBlockedCheck
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.stages.face_state import FaceStateStage
from ims_runtime.temporal.signals import FrameSignals
from ims_runtime.types import Detections, Frame

#: the optional parts of the pipeline, as ``stages_off`` names them (``policy`` is the spec's top-level section)
OPTIONAL_PARTS = tuple(OPTIONAL_FIELDS)


class SpeedProvider(Protocol):
    def speed_at(self, t_ns: int) -> float | None: ...


class ModelStage(Protocol):
    """What the pipeline asks of every stage that runs a model (detector, face-state, fatigue)."""

    name: str

    @property
    def backend_skips(self) -> list[dict[str, object]]: ...

    def warmup(self, runs: int = 3) -> None: ...

    def reset(self) -> None: ...

    def describe(self) -> dict[str, object]: ...

    def close(self) -> None: ...


def face_observation(detections: Detections) -> FaceObservation:
    face = detections.driver
    if face is None:
        return FaceObservation.absent(len(detections.faces))
    return FaceObservation(present=True, count_in_frame=len(detections.faces), box_xyxy_px=face.box_xyxy_px,
                           score=face.score, landmarks_px=face.landmarks_px)


def frame_signals(frame: Frame, face: FaceObservation, state: FaceState | None = None,
                  camera_blocked: bool | None = None) -> FrameSignals:
    """What the temporal stage and the policy get from this frame. An unreliable face state (low network
    confidence) provides nothing, so the temporal stage sees missing data rather than bad data."""
    measured: dict[str, object] = {}
    if state is not None and state.reliable:
        measured = {"gaze_pitch_rad": state.gaze_pitch_rad, "gaze_yaw_rad": state.gaze_yaw_rad,
                    "on_road": state.on_road, "head_yaw_deg": state.head_yaw_deg,
                    "head_pitch_deg": state.head_pitch_deg, "left_open": state.left_eye_open,
                    "right_open": state.right_eye_open, "mouth_open": state.mouth_open}
    return FrameSignals(t_ns=frame.t_capture_ns, face_present=face.present, face_confidence=face.score,
                        camera_blocked=camera_blocked, **measured)


class Pipeline:
    """Builds every configured stage at construction (models loaded, backends opened); ``process`` runs one frame."""

    def __init__(self, spec: Spec, spec_dir: Path | None = None, speed: SpeedProvider | None = None) -> None:
        self.spec = spec
        # process-wide: OpenCV's thread pool for the letterbox / crop / alignment warps (0 = the calling thread)
        cv2.setNumThreads(spec.service.opencv_threads)
        #: vehicle speed (the service's ZeroMQ subscriber); None = unknown, the policy's unknown_speed decides
        self.speed = speed
        self.face_state: FaceStateStage | None = None
        self.monitor: DriverMonitor | None = None
        self.detector = FaceDetector.from_spec(spec.stages.face_detector, spec_dir)
        try:
            if spec.stages.face_state is not None:
                self.face_state = FaceStateStage.from_spec(
                    spec.stages.face_state, spec_dir, spec.policy.road_zone if spec.policy is not None else None)
            self.monitor = DriverMonitor.from_spec(spec, spec_dir)
        except BaseException:
            self.close()  # a later stage failed to open: release what the earlier ones hold
            raise
        check = spec.stages.camera_check
        self.camera_check = CameraBlockedCheck(check) if check is not None else None
        self.stages_off = tuple(part for part in OPTIONAL_PARTS
                                if getattr(spec.stages, part, getattr(spec, part, None)) is None)
        fatigue = self.monitor.fatigue
        #: the stages that run a model, in data-flow order (the fatigue stage only with its network); fixed once
        #: the backends are open
        self.model_stages: list[ModelStage] = [
            s for s in (self.detector, self.face_state, fatigue if fatigue and fatigue.classifier else None)
            if s is not None]
        #: backends are chosen at construction, so the fallback part of ``degraded`` is too
        self._fallbacks = tuple(f"{stage.name}_backend_fallback" for stage in self.model_stages
                                if stage.backend_skips)
        #: which backend and precision each model stage actually runs on (after fallbacks), in every message
        self.stage_backends = {name: StageBackend(info.get("backend"), info.get("precision"))  # type: ignore[arg-type]
                               for name, info in self.describe().items()}

    def warmup(self, runs: int = 3) -> None:
        for stage in self.model_stages:
            stage.warmup(runs)

    def reset(self) -> None:
        """Forget per-driver state (tracking, temporal history) before a new or restarted source."""
        for stage in (self.detector, self.face_state, self.camera_check, self.monitor):  # the monitor resets fatigue
            if stage is not None:
                stage.reset()

    def process(self, frame: Frame) -> DriverState:
        """One frame → its :class:`DriverState`, with the latency of each stage in ms."""
        t0 = time.perf_counter_ns()
        detections = self.detector.detect(frame)
        face = face_observation(detections)
        t1 = time.perf_counter_ns()
        latency_ms = {"face_detector": (t1 - t0) / 1e6}
        blocked = None
        if self.camera_check is not None:
            blocked = self.camera_check.update(frame.t_capture_ns, frame.image_bgr, face.present)
        state = None
        if self.face_state is not None:
            t2 = time.perf_counter_ns()
            # the driver's face only; process(frame, None) resets the per-driver state (eye-closure hysteresis)
            state = self.face_state.process(frame, detections.driver)
            latency_ms["face_state"] = (time.perf_counter_ns() - t2) / 1e6
        fatigue = policy = None
        speed_kmh = None
        if self.monitor is not None and self.monitor.enabled:
            t3 = time.perf_counter_ns()
            speed_kmh = self.speed.speed_at(frame.t_capture_ns) if self.speed is not None else None
            result = self.monitor.update(frame_signals(frame, face, state, blocked), speed_kmh)
            fatigue, policy = result.fatigue, result.policy
            latency_ms["fatigue_policy"] = (time.perf_counter_ns() - t3) / 1e6
        latency_ms["total"] = (time.perf_counter_ns() - t0) / 1e6
        return DriverState(
            frame_id=frame.frame_id, t_capture_ns=frame.t_capture_ns, t_publish_ns=time.time_ns(),
            source=frame.source, valid=not blocked, degraded=self._degraded(blocked, state, speed_kmh),
            stages_off=self.stages_off, face=face, face_state=state, fatigue=fatigue, policy=policy,
            camera_blocked=blocked, latency_ms=latency_ms, stage_backends=self.stage_backends)

    def _degraded(self, blocked: bool | None, state: FaceState | None, speed_kmh: float | None) -> tuple[str, ...]:
        """Why this frame's result is less trustworthy (an open list, docs/messages.md)."""
        reasons = list(self._fallbacks)
        if blocked:
            reasons.append("camera_blocked")
        if state is not None and not state.reliable:
            reasons.append("face_state_unreliable")
        if self.spec.policy is not None and speed_kmh is None:
            # the speed-gated rules then follow policy.unknown_speed (fail-safe: assume moving)
            reasons.append("vehicle_speed_unknown")
        return tuple(reasons)

    def describe(self) -> dict[str, dict[str, object]]:
        """Backend and precision each model stage actually runs on (for telemetry)."""
        return {stage.name: stage.describe() for stage in self.model_stages}

    def close(self) -> None:
        """Release every stage's backend and the speed source. Safe to call twice and after a partial build."""
        for stage in (self.detector, self.face_state):
            if stage is not None:
                stage.close()
        if self.monitor is not None:
            self.monitor.close()
        if self.speed is not None and hasattr(self.speed, "close"):
            self.speed.close()
