"""``DriverMonitor``: the temporal window, the fatigue stage and the policy behind one ``update`` call.

The service pipeline and ``ims-runtime policy-replay`` both call :meth:`DriverMonitor.update` once per frame with
:class:`~ims_runtime.temporal.signals.FrameSignals`, so a replayed signal file behaves exactly like the vehicle.
It returns the typed :class:`MonitorResult` (the contract's ``FatigueState`` and ``PolicyState``); the one
encoder in :mod:`ims_runtime.messages` turns it into message fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ims_runtime.contract import FatigueState, PolicyState
from ims_runtime.policy.driver_policy import DriverPolicy, PolicyInput
from ims_runtime.policy.road_zone import on_road
from ims_runtime.spec.schema import FatigueStageSpec, PolicySpec, Spec
from ims_runtime.stages.fatigue import FatigueStage
from ims_runtime.temporal.features import TemporalFeatures
from ims_runtime.temporal.signals import FrameSignals

__all__ = ["DriverMonitor", "FrameSignals", "MonitorResult"]


@dataclass(frozen=True)
class MonitorResult:
    #: None while the fatigue stage is off
    fatigue: FatigueState | None
    #: None while the policy is off
    policy: PolicyState | None


class DriverMonitor:
    """One driver's temporal state. Not thread-safe; one per pipeline."""

    def __init__(self, fatigue: FatigueStage | None, policy: PolicySpec | None,
                 window: FatigueStageSpec | None = None) -> None:
        self.fatigue = fatigue
        self.policy_spec = policy
        self._window = window.window if window is not None else None
        self.features = TemporalFeatures(self._window)
        self.policy = DriverPolicy(policy) if policy is not None else None
        self._zone = (policy or PolicySpec()).road_zone

    @classmethod
    def from_spec(cls, spec: Spec, spec_dir: Path | None = None) -> DriverMonitor:
        """Build from a deployment spec; opens the fatigue model through its backend chain when it is used."""
        stage = FatigueStage.from_spec(spec.stages.fatigue, spec_dir) if spec.stages.fatigue is not None else None
        return cls(stage, spec.policy, spec.stages.fatigue)

    @property
    def enabled(self) -> bool:
        return self.fatigue is not None or self.policy is not None

    def update(self, signals: FrameSignals, speed_kmh: float | None = None) -> MonitorResult:
        """One frame. ``speed_kmh`` from the service's speed source (km/h, None = unknown); a ``speed_kmh`` in the
        signals themselves (replay files) takes precedence."""
        t_ns = signals.t_ns
        road = on_road(signals, self._zone)
        features = self.features.update(
            t_ns, face_present=signals.face_present, eye_openness=signals.eye_openness,
            mouth_open=signals.mouth_open, head_pitch_deg=signals.head_pitch_deg,
            off_road=None if road is None else not road)
        fatigue = self.fatigue.process(t_ns, features, self.features) if self.fatigue is not None else None
        policy = None
        if self.policy is not None:
            speed = signals.speed_kmh if signals.speed_kmh is not None else speed_kmh
            policy = self.policy.update(PolicyInput(
                face_present=signals.face_present, on_road=road,
                eyes_closed_s=features.eyes_closed_s if features.eyes_measured else None,
                face_confidence=signals.face_confidence, camera_blocked=bool(signals.camera_blocked),
                kss_equivalent=fatigue.kss_equivalent if fatigue is not None else None), t_ns, speed)
        return MonitorResult(fatigue=fatigue, policy=policy)

    def reset(self) -> None:
        """Forget the driver's history (a new source, a restarted replay): timestamps may start again."""
        self.features = TemporalFeatures(self._window)
        self.policy = DriverPolicy(self.policy_spec) if self.policy_spec is not None else None
        if self.fatigue is not None:
            self.fatigue.reset()

    def close(self) -> None:
        if self.fatigue is not None:
            self.fatigue.close()
