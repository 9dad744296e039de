"""Latency statistics, process statistics and the periodic telemetry message."""
