"""The spec's resource budget, checked against each telemetry message. Pure: no clock, no I/O.

A limit that is null is not checked; a measurement that is unknown (``power_w`` null on a host without a power
probe) is reported under ``unchecked`` instead of silently passing.
"""

from __future__ import annotations

from typing import Any

from ims_runtime.contract import Telemetry
from ims_runtime.spec.schema import BudgetSpec


def _latency_p95_ms(telemetry: Telemetry) -> float | None:
    total = (telemetry.latency_ms or {}).get("total")
    return None if not total else total.get("p95")


def check_budget(budget: BudgetSpec | None, telemetry: Telemetry) -> dict[str, Any] | None:
    """``{"ok": bool, "violations": [{metric, value, limit, unit}], "unchecked": [metric]}`` or None (no budget).

    Checks: ``latency_ms_max`` against the window's p95 of the total per-frame latency, ``fps_min`` against the
    output fps of the interval, ``power_w_max`` against the measured power, ``rss_mb_max`` against the RSS.
    """
    if budget is None:
        return None
    rules = [  # metric, measured value, limit, unit, True if the value must stay below the limit
        ("latency_ms_p95", _latency_p95_ms(telemetry), budget.latency_ms_max, "ms", True),
        ("fps_out", telemetry.fps_out, budget.fps_min, "fps", False),
        ("power_w", telemetry.power_w, budget.power_w_max, "W", True),
        ("rss_mb", telemetry.rss_mb, budget.rss_mb_max, "MiB", True),
    ]
    violations, unchecked = [], []
    for metric, value, limit, unit, upper in rules:
        if limit is None:
            continue
        if value is None:
            unchecked.append(metric)
            continue
        if (value > limit) if upper else (value < limit):
            violations.append({"metric": metric, "value": value, "limit": limit, "unit": unit,
                               "rule": "max" if upper else "min"})
    return {"ok": not violations, "violations": violations, "unchecked": unchecked}
