"""Is the driver looking at the road? From an upstream decision, the gaze angles, or the head pose."""

from __future__ import annotations

import math

from ims_runtime.spec.schema import RoadZoneSpec
from ims_runtime.temporal.signals import FrameSignals


def on_road(signals: FrameSignals, zone: RoadZoneSpec) -> bool | None:
    """True/False when it can be judged, None when the face is absent or nothing about the gaze was measured.

    Precedence: ``on_road`` given by the face-state stage, then the gaze angles, then (if allowed) the head pose.
    The zone is a rectangle in (yaw, pitch) around the road centre, which carries the camera's mounting offset.
    """
    if not signals.face_present:
        return None
    if signals.on_road is not None:
        return signals.on_road
    if signals.gaze_yaw_rad is not None and signals.gaze_pitch_rad is not None:
        yaw_rad, pitch_rad = signals.gaze_yaw_rad, signals.gaze_pitch_rad
    elif zone.head_pose_fallback and signals.head_yaw_deg is not None and signals.head_pitch_deg is not None:
        yaw_rad, pitch_rad = math.radians(signals.head_yaw_deg), math.radians(signals.head_pitch_deg)
    else:
        return None
    return (abs(yaw_rad - zone.center_yaw_rad) <= zone.yaw_limit_rad
            and abs(pitch_rad - zone.center_pitch_rad) <= zone.pitch_limit_rad)
