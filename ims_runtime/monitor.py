"""``DriverMonitor``: the temporal stage, the fatigue estimate and the policy behind one ``update`` call.

The service pipeline and ``ims-runtime policy-replay`` both call :meth:`DriverMonitor.update` once per frame with
:class:`~ims_runtime.temporal.signals.FrameSignals`, so a replayed signal file behaves exactly like the vehicle.
It returns the ``driver_state`` fields ``fatigue``, ``distraction``, ``alerts`` and ``availability``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ims_runtime.policy.driver_policy import DriverPolicy, PolicyInput
from ims_runtime.policy.road_zone import on_road
from ims_runtime.spec.schema import FatigueStageSpec, PolicySpec, Spec
from ims_runtime.stages.fatigue import FatigueClassifier, ModelEstimate, level_for_kss, rule_based_kss
from ims_runtime.temporal.features import TemporalFeatures
from ims_runtime.temporal.signals import FrameSignals

__all__ = ["DriverMonitor", "FrameSignals"]


class DriverMonitor:
    """One driver's temporal state. Not thread-safe; one per pipeline."""

    def __init__(self, fatigue: FatigueStageSpec | None, policy: PolicySpec | None,
                 classifier: FatigueClassifier | None = None) -> None:
        self.fatigue_spec = fatigue
        self.policy_spec = policy
        self.classifier = classifier
        self.features = TemporalFeatures(fatigue.window if fatigue else None)
        self.policy = DriverPolicy(policy) if policy is not None else None
        self._zone = (policy or PolicySpec()).road_zone
        self._model: ModelEstimate | None = None
        self._next_run_ns: int | None = None

    @classmethod
    def from_spec(cls, spec: Spec, spec_dir: Path | None = None) -> DriverMonitor:
        """Build from a deployment spec; opens the fatigue model through its backend chain when it is used."""
        fatigue = spec.stages.fatigue
        classifier = None
        if fatigue is not None and fatigue.estimator == "model":
            classifier = FatigueClassifier.from_spec(fatigue, spec_dir)
        return cls(fatigue, spec.policy, classifier)

    @property
    def enabled(self) -> bool:
        return self.fatigue_spec is not None or self.policy is not None

    def update(self, signals: FrameSignals, speed_kmh: float | None = None) -> dict[str, Any]:
        """One frame. ``speed_kmh`` from the service's speed source (km/h, None = unknown); a ``speed_kmh`` in the
        signals themselves (replay files) takes precedence. Returns the message fields for the enabled parts."""
        t_ns = signals.t_ns
        road = on_road(signals, self._zone)
        features = self.features.update(
            t_ns, face_present=signals.face_present, eye_openness=signals.eye_openness,
            mouth_open=signals.mouth_open, head_pitch_deg=signals.head_pitch_deg,
            off_road=None if road is None else not road)
        out: dict[str, Any] = {}
        kss: float | None = None
        if self.fatigue_spec is not None:
            fatigue, kss = self._fatigue(t_ns, features)
            out["fatigue"] = fatigue
        if self.policy is not None:
            speed = signals.speed_kmh if signals.speed_kmh is not None else speed_kmh
            result = self.policy.update(PolicyInput(
                face_present=signals.face_present, on_road=road,
                eyes_closed_s=features.eyes_closed_s if features.eyes_measured else None,
                face_confidence=signals.face_confidence, camera_blocked=bool(signals.camera_blocked),
                kss_equivalent=kss), t_ns, speed)
            out["distraction"] = result.distraction
            out["alerts"] = [a.to_dict() for a in result.alerts]
            out["availability"] = result.availability
        return out

    def _fatigue(self, t_ns: int, features: Any) -> tuple[dict[str, Any], float | None]:
        spec = self.fatigue_spec
        assert spec is not None
        rules_kss = rule_based_kss(features)
        enough = features.perclos is not None
        if self.classifier is not None and (self._next_run_ns is None or t_ns >= self._next_run_ns):
            self._model = self.classifier.estimate(*self.features.eye_window(t_ns)) if enough else None
            self._next_run_ns = t_ns + int(spec.run_interval_s * 1e9)
        if spec.estimator == "model" and self.classifier is not None:
            kss, source = (self._model.kss_equivalent if self._model else None), "model"
        else:
            kss, source = rules_kss, "rules"
        fatigue: dict[str, Any] = {
            "valid": kss is not None,
            "level": level_for_kss(kss) if kss is not None else "unknown",
            "kss_equivalent": None if kss is None else round(kss, 2),
            "source": source,
            "rules_kss_equivalent": None if rules_kss is None else round(rules_kss, 2),
        }
        if self._model is not None:
            fatigue["level_probs"] = [round(p, 3) for p in self._model.level_probs]
        fatigue.update(features.to_dict())
        return fatigue, kss

    def reset(self) -> None:
        """Forget the driver's history (a new source, a restarted replay): timestamps may start again."""
        self.features = TemporalFeatures(self.fatigue_spec.window if self.fatigue_spec else None)
        self.policy = DriverPolicy(self.policy_spec) if self.policy_spec is not None else None
        self._model = None
        self._next_run_ns = None

    def close(self) -> None:
        if self.classifier is not None:
            self.classifier.close()
