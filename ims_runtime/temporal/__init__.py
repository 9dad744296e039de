"""Temporal stage: per-frame signals → time-binned ring buffers → fatigue features (pure numpy, no I/O)."""

from ims_runtime.temporal.features import FatigueFeatures, TemporalFeatures
from ims_runtime.temporal.ring import TimeBinRing, bin_series
from ims_runtime.temporal.signals import FrameSignals

__all__ = ["FatigueFeatures", "FrameSignals", "TemporalFeatures", "TimeBinRing", "bin_series"]
