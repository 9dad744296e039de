"""The policy: per-frame inputs + vehicle speed → active alerts and an availability state.

Pure and deterministic: all time comes from the ``t_ns`` of each update, all thresholds from
:class:`~ims_runtime.spec.schema.PolicySpec` (units and sources there and in docs/policy.md). Scenario tests in
``tests/policy`` drive it through ``policy-replay``.

Rules (alert type ← condition, all durations continuous unless said otherwise):

* ``long_distraction`` ← current glance off the road ≥ 3 s (Euro NCAP 2026), speed ≥ distraction_min_speed_kmh
* ``vats_distraction`` ← eyes-off-road time inside the last 30 s > 10 s (Euro NCAP 2026 VATS)
* ``addw_distraction`` ← glance ≥ 6 s at 20–50 km/h, ≥ 3.5 s above 50 km/h (EU 2023/2590)
* ``drowsiness`` ← KSS-equivalent ≥ drowsiness_warn_kss at ≥ drowsiness_min_speed_kmh (EU 2021/1341, Euro NCAP)
* ``microsleep`` ← eyes closed ≥ 2 s
* ``driver_absent`` / ``camera_blocked`` ← no face / blocked camera for 3 s; distraction is then not judged
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ims_runtime.contract import ActiveAlert, Distraction, PolicyState
from ims_runtime.spec.schema import PolicySpec

NS = 1_000_000_000
DISTRACTION_ALERTS = ("long_distraction", "vats_distraction", "addw_distraction")


@dataclass(frozen=True)
class PolicyInput:
    """What the policy needs from one frame (built by :class:`ims_runtime.pipeline.monitor.DriverMonitor`)."""

    face_present: bool
    #: None = the road zone could not be judged (no gaze, no head pose)
    on_road: bool | None = None
    #: the current eye closure has lasted this long (0 = open); None = eyes not measured in this frame
    eyes_closed_s: float | None = None
    #: None = no confidence reported (treated as confident)
    face_confidence: float | None = None
    camera_blocked: bool = False
    #: None = fatigue not estimated yet (too little eye data)
    kss_equivalent: float | None = None


#: an active alert (type, level 1..3, since_ns): the contract's type, published as is
Alert = ActiveAlert


@dataclass(frozen=True)
class PolicyOutput(PolicyState):
    """The policy's decision (the contract's :class:`PolicyState`) and the speed the rules used."""

    #: km/h, None = unknown or stale
    speed_kmh: float | None = None


def _since(since_ns: int | None, condition: bool, t_ns: int) -> int | None:
    """When ``condition`` started holding: kept while it holds, ``t_ns`` when it starts, None when it stops."""
    if not condition:
        return None
    return t_ns if since_ns is None else since_ns


class DriverPolicy:
    """Call :meth:`update` once per frame with increasing ``t_ns``."""

    def __init__(self, settings: PolicySpec | None = None) -> None:
        self.settings = settings or PolicySpec()
        self._last_t_ns: int | None = None
        self._unusable_since_ns: int | None = None
        self._absent_since_ns: int | None = None
        self._blocked_since_ns: int | None = None
        self._glance_start_ns: int | None = None
        self._on_road_since_ns: int | None = None
        self._prev_off_road = False
        #: off-road intervals [start_ns, end_ns], merged when contiguous, pruned beyond the VATS window
        self._off_road: deque[list[int]] = deque()
        self._eyes_open_since_ns: int | None = None
        self._kss_low_since_ns: int | None = None
        #: active alerts: type → (since_ns, base level)
        self._active: dict[str, tuple[int, int]] = {}

    # -- helpers -----------------------------------------------------------------------------------------------
    def _raise(self, kind: str, t_ns: int, base_level: int = 1) -> None:
        since = self._active.get(kind, (t_ns, base_level))[0]
        self._active[kind] = (since, base_level)

    def _clear(self, *kinds: str) -> None:
        for kind in kinds:
            self._active.pop(kind, None)

    def _level(self, since_ns: int, base: int, t_ns: int) -> int:
        elapsed_s = (t_ns - since_ns) / NS
        return min(3, base + sum(1 for step in self.settings.escalation_s if elapsed_s >= step))

    def _vats_s(self, t_ns: int) -> float:
        start = t_ns - int(self.settings.vats_window_s * NS)
        while self._off_road and self._off_road[0][1] <= start:
            self._off_road.popleft()
        return sum(min(end, t_ns) - max(begin, start) for begin, end in self._off_road) / NS

    def _gate(self, speed_kmh: float | None, min_kmh: float) -> bool:
        if speed_kmh is None:
            return self.settings.unknown_speed == "assume_moving"
        return speed_kmh >= min_kmh

    def _addw_limit_s(self, speed_kmh: float | None) -> float | None:
        s = self.settings
        low, high = s.addw_band_kmh
        if speed_kmh is None:
            return s.addw_high_limit_s if s.unknown_speed == "assume_moving" else None
        if speed_kmh > high:
            return s.addw_high_limit_s
        if speed_kmh >= low:
            return s.addw_low_limit_s
        return None

    # -- the update --------------------------------------------------------------------------------------------
    def update(self, inputs: PolicyInput, t_ns: int, speed_kmh: float | None) -> PolicyOutput:
        """One frame at ``t_ns`` (ns, increasing) with the vehicle speed (km/h, None = unknown or stale)."""
        s = self.settings
        if self._last_t_ns is not None and t_ns <= self._last_t_ns:
            raise ValueError(f"timestamps must increase: {t_ns} after {self._last_t_ns}")
        step_ok = self._last_t_ns is not None and t_ns - self._last_t_ns <= s.face_lost_grace_s * NS
        prev_t_ns, self._last_t_ns = self._last_t_ns, t_ns

        # availability: is this frame usable for judging the driver?
        confident = inputs.face_confidence is None or inputs.face_confidence >= s.min_face_confidence
        usable = (inputs.face_present and confident and not inputs.camera_blocked
                  and (inputs.on_road is not None or inputs.eyes_closed_s is not None))
        self._unusable_since_ns = _since(self._unusable_since_ns, not usable, t_ns)
        self._absent_since_ns = _since(self._absent_since_ns, not inputs.face_present, t_ns)
        self._blocked_since_ns = _since(self._blocked_since_ns, inputs.camera_blocked, t_ns)
        unusable_s = 0.0 if usable else (t_ns - self._unusable_since_ns) / NS  # type: ignore[operator]
        if unusable_s >= s.failed_after_s:
            availability = "failed"
        elif unusable_s >= s.unavailable_after_s:
            availability = "temporarily_unavailable"
        else:
            availability = "ok"

        # glance timers and the VATS accumulator (sample-and-hold between frames no further apart than the grace)
        off_road = usable and inputs.on_road is False
        if usable and inputs.on_road is not None:
            if off_road:
                if self._glance_start_ns is None:
                    self._glance_start_ns = t_ns
                self._on_road_since_ns = None
            else:
                self._glance_start_ns = None
                if self._on_road_since_ns is None:
                    self._on_road_since_ns = t_ns
            if self._prev_off_road and step_ok:
                self._add_off_road(prev_t_ns, t_ns)  # type: ignore[arg-type]
            self._prev_off_road = off_road
        elif unusable_s > s.face_lost_grace_s or not step_ok:
            # a longer loss ends the glance: what happened meanwhile is unknown, not "distracted"
            self._glance_start_ns = self._on_road_since_ns = None
            self._prev_off_road = False
        glance_s = 0.0 if self._glance_start_ns is None else (t_ns - self._glance_start_ns) / NS
        vats_s = self._vats_s(t_ns)

        # distraction rules
        judging = availability == "ok" and (usable or unusable_s <= s.face_lost_grace_s)
        if not judging:
            self._clear(*DISTRACTION_ALERTS)
        else:
            moving = self._gate(speed_kmh, s.distraction_min_speed_kmh)
            on_road_s = 0.0 if self._on_road_since_ns is None else (t_ns - self._on_road_since_ns) / NS
            settled = on_road_s >= s.clear_on_road_s
            if not moving:
                self._clear("long_distraction", "vats_distraction")
            else:
                if glance_s >= s.long_distraction_s:
                    self._raise("long_distraction", t_ns)
                elif settled:
                    self._clear("long_distraction")
                if vats_s > s.vats_limit_s:
                    self._raise("vats_distraction", t_ns)
                elif settled:
                    self._clear("vats_distraction")
            limit_s = self._addw_limit_s(speed_kmh)
            if limit_s is None:
                self._clear("addw_distraction")
            elif glance_s >= limit_s:
                self._raise("addw_distraction", t_ns)
            elif settled:
                self._clear("addw_distraction")

        self._microsleep(inputs, t_ns, speed_kmh)
        self._drowsiness(inputs, t_ns, speed_kmh)

        # availability alerts
        if self._absent_since_ns is not None and self._gate(speed_kmh, s.distraction_min_speed_kmh) \
                and t_ns - self._absent_since_ns >= s.driver_absent_after_s * NS:
            self._raise("driver_absent", t_ns)
        elif self._absent_since_ns is None or not self._gate(speed_kmh, s.distraction_min_speed_kmh):
            self._clear("driver_absent")
        if self._blocked_since_ns is not None and t_ns - self._blocked_since_ns >= s.camera_blocked_after_s * NS:
            self._raise("camera_blocked", t_ns)
        elif self._blocked_since_ns is None:
            self._clear("camera_blocked")

        alerts = [Alert(kind, self._level(since, base, t_ns), since)
                  for kind, (since, base) in sorted(self._active.items())]
        if not judging or inputs.on_road is None and not usable:
            state = "unknown"
        else:
            state = "distracted" if self._glance_start_ns is not None else "attentive"
        distraction = Distraction(state=state, on_road=inputs.on_road if usable else None,
                                  eyes_off_road_s=round(glance_s, 3), vats_30s_s=round(vats_s, 3))
        return PolicyOutput(distraction=distraction, alerts=tuple(alerts), availability=availability,
                            speed_kmh=speed_kmh)

    def _add_off_road(self, start_ns: int, end_ns: int) -> None:
        if self._off_road and self._off_road[-1][1] == start_ns:
            self._off_road[-1][1] = end_ns
        else:
            self._off_road.append([start_ns, end_ns])

    def _microsleep(self, inputs: PolicyInput, t_ns: int, speed_kmh: float | None) -> None:
        s = self.settings
        closed_s = inputs.eyes_closed_s
        if closed_s is not None:
            self._eyes_open_since_ns = _since(self._eyes_open_since_ns, closed_s == 0.0, t_ns)
        if not self._gate(speed_kmh, s.microsleep_min_speed_kmh):
            self._clear("microsleep")
        elif closed_s is not None and closed_s >= s.microsleep_closed_s:
            self._raise("microsleep", t_ns, base_level=2)
        elif self._eyes_open_since_ns is not None \
                and t_ns - self._eyes_open_since_ns >= s.microsleep_clear_open_s * NS:
            self._clear("microsleep")

    def _drowsiness(self, inputs: PolicyInput, t_ns: int, speed_kmh: float | None) -> None:
        s = self.settings
        kss = inputs.kss_equivalent
        if not self._gate(speed_kmh, s.drowsiness_min_speed_kmh):
            self._clear("drowsiness")
            return
        if kss is None:
            return  # unknown fatigue holds the current state
        if kss >= s.drowsiness_warn_kss:
            self._kss_low_since_ns = None
            self._raise("drowsiness", t_ns, base_level=2 if kss >= 8.0 else 1)
        elif kss < s.drowsiness_warn_kss - s.drowsiness_clear_margin_kss:
            self._kss_low_since_ns = _since(self._kss_low_since_ns, True, t_ns)
            if t_ns - self._kss_low_since_ns >= s.drowsiness_clear_s * NS:
                self._clear("drowsiness")
        else:
            self._kss_low_since_ns = None
