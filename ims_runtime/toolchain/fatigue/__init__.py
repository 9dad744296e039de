"""Fatigue classifier toolchain: synthetic eye-signal generator (cited relationships), training, export."""
