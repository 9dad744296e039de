"""Is the driver looking at the road? From an upstream decision, the gaze angles, or the head pose.

One definition of the road zone for everyone: the face-state stage decides ``gaze.on_road`` with
:func:`in_road_zone` and hands the decision on (``FrameSignals.on_road``); a recorded signal file without that
decision is judged by :func:`on_road` from its angles, with the same function.
"""

from __future__ import annotations

import math

from ims_runtime.spec.schema import RoadZoneSpec
from ims_runtime.temporal.signals import FrameSignals


def in_road_zone(zone: RoadZoneSpec, gaze_pitch_rad: float | None = None, gaze_yaw_rad: float | None = None,
                 head_yaw_deg: float | None = None, head_pitch_deg: float | None = None) -> bool | None:
    """True/False from the gaze angles, else (if the zone allows) from the head pose; None when neither is known.

    The zone is a rectangle in (yaw, pitch) around the road centre, which carries the camera's mounting offset.
    """
    if gaze_yaw_rad is not None and gaze_pitch_rad is not None:
        yaw_rad, pitch_rad = gaze_yaw_rad, gaze_pitch_rad
    elif zone.head_pose_fallback and head_yaw_deg is not None and head_pitch_deg is not None:
        yaw_rad, pitch_rad = math.radians(head_yaw_deg), math.radians(head_pitch_deg)
    else:
        return None
    return (abs(yaw_rad - zone.center_yaw_rad) <= zone.yaw_limit_rad
            and abs(pitch_rad - zone.center_pitch_rad) <= zone.pitch_limit_rad)


def on_road(signals: FrameSignals, zone: RoadZoneSpec) -> bool | None:
    """True/False when it can be judged, None when the face is absent or nothing about the gaze was measured.

    Precedence: ``on_road`` given by the face-state stage, then the gaze angles, then (if allowed) the head pose.
    """
    if not signals.face_present:
        return None
    if signals.on_road is not None:
        return signals.on_road
    return in_road_zone(zone, signals.gaze_pitch_rad, signals.gaze_yaw_rad, signals.head_yaw_deg,
                        signals.head_pitch_deg)
