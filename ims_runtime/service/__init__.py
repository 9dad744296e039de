"""The daemon: lifecycle (signals, sd_notify), the frame loop, telemetry."""
