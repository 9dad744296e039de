"""The spec's budget (the article's deployment example: < 20 ms, > 50 fps, < 1.5 W, < 200 MB) against telemetry."""

import pytest

from ims_runtime.contract import Telemetry
from ims_runtime.spec.schema import BudgetSpec
from ims_runtime.telemetry.budget import check_budget

ARTICLE_BUDGET = BudgetSpec(latency_ms_max=20, fps_min=50, power_w_max=1.5, rss_mb_max=200)


def telemetry(p95_ms=12.0, fps_out=60.0, power_w=1.2, rss_mb=150.0) -> Telemetry:
    return Telemetry(t_ns=0, spec="x", uptime_s=10.0, fps_in=fps_out, fps_out=fps_out, frames_in_total=600,
                     frames_out_total=600, frames_dropped_total=0, publish_dropped_total=0,
                     latency_ms={"total": {"p50": p95_ms / 2, "p95": p95_ms, "p99": p95_ms}}, rss_mb=rss_mb,
                     cpu_percent=50.0, temperature_c=None, power_w=power_w, power_source="test", power_rails_w=None,
                     power_unavailable_reason=None if power_w is not None else "no sensor", stages={})


@pytest.mark.parametrize("overrides, violated", [
    ({}, []),                                      # within every limit
    ({"p95_ms": 24.0}, ["latency_ms_p95"]),         # 24 ms p95 > 20 ms
    ({"fps_out": 31.0}, ["fps_out"]),               # 31 fps < 50 fps
    ({"power_w": 1.8}, ["power_w"]),                # 1.8 W > 1.5 W
    ({"rss_mb": 230.0}, ["rss_mb"]),                # 230 MiB > 200 MiB
    ({"p95_ms": 40.0, "rss_mb": 260.0}, ["latency_ms_p95", "rss_mb"]),
])
def test_article_budget(overrides, violated):
    result = check_budget(ARTICLE_BUDGET, telemetry(**overrides))
    assert [v["metric"] for v in result["violations"]] == violated
    assert result["ok"] is (not violated)


def test_unknown_power_is_unchecked_not_passed():
    result = check_budget(ARTICLE_BUDGET, telemetry(power_w=None))
    assert result["ok"] and result["unchecked"] == ["power_w"]


def test_no_budget_no_check_and_null_limits_skipped():
    assert check_budget(None, telemetry()) is None
    assert check_budget(BudgetSpec(rss_mb_max=100), telemetry(p95_ms=999))["violations"][0]["metric"] == "rss_mb"
