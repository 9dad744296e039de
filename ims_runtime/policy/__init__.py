"""Driver-monitoring policy: distraction and drowsiness timers, alerts, availability. Pure: no I/O, no clock."""

from ims_runtime.policy.driver_policy import Alert, DriverPolicy, PolicyInput, PolicyOutput
from ims_runtime.policy.road_zone import on_road

__all__ = ["Alert", "DriverPolicy", "PolicyInput", "PolicyOutput", "on_road"]
