"""Tests of canarykit.recommend on hand-built verdicts and small k6 frames."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from canarykit.criteria import Criterion, SloSettings
from canarykit.k6output import K6Output
from canarykit.recommend import recommendations
from canarykit.verdict import Verdict, evaluate

START = pd.Timestamp("2026-01-01T00:00:00Z")


def make_criterion(
    criterion_id: str,
    status: str = "PASS",
    *,
    observed: float | None = 0.0,
    reason: str = "fine",
    required: bool = True,
    **evidence: Any,
) -> Criterion:
    return Criterion(
        id=criterion_id,
        status=status,
        observed=observed,
        target=0.0,
        method="hand-made",
        reason=reason,
        evidence=evidence,
        required=required,
    )


def make_verdict(*changed: Criterion, status: str = "FAIL") -> Verdict:
    """A verdict where every criterion passes except those given."""
    items = {
        criterion_id: make_criterion(criterion_id)
        for criterion_id in (
            "p95_latency",
            "error_rate",
            "sustained_p95",
            "restarts",
            "critical_logs",
            "health",
            "heap_growth",
            "db_pool",
            "load_delivered",
        )
    }
    items["p95_latency"] = make_criterion("p95_latency", observed=42.5)
    for item in changed:
        items[item.id] = item
    return Verdict(
        status=status,
        status_reason="hand-made",
        criteria=tuple(items.values()),
        population={},
        input={},
        settings=SloSettings(),
        generated_at=START.isoformat(),
    )


def make_k6(statuses: list[str], error_codes: list[str | None]) -> K6Output:
    count = len(statuses)
    requests = pd.DataFrame(
        {
            "time": START + pd.to_timedelta(np.arange(count), unit="s"),
            "duration_ms": 10.0,
            "failed": pd.array([s != "202" for s in statuses], dtype="boolean"),
            "status": pd.Categorical(statuses),
            "expected_response": pd.Categorical(
                ["true" if s == "202" else "false" for s in statuses]
            ),
            "error_code": pd.Categorical(error_codes),
            "group": pd.Categorical([""] * count),
        }
    )
    samples = pd.DataFrame(
        {"time": pd.Series([], dtype="datetime64[ns, UTC]"), "metric": [], "value": []}
    )
    return K6Output(
        path="k6.json",
        format="json",
        requests=requests,
        samples=samples,
        metrics={},
        has_expected_response=True,
    )


def test_recommendations_pool_exhaustion() -> None:
    pool = make_criterion("db_pool", "FAIL", reason="pool exhausted in 4 of 9 scrapes")

    advice = recommendations(make_verdict(pool))

    assert len(advice) == 1
    assert "pool size" in advice[0]
    assert "pool exhausted in 4 of 9 scrapes" in advice[0]


def test_recommendations_rate_limited_from_k6() -> None:
    k6 = make_k6(["202"] * 5 + ["429"] * 3, [None] * 8)

    advice = recommendations(make_verdict(), k6)

    assert len(advice) == 1
    assert "rate limits" in advice[0]
    assert "3 responses were 429" in advice[0]


def test_recommendations_statuses_from_evidence() -> None:
    errors = make_criterion(
        "error_rate",
        "FAIL",
        failed_by_status={"429": 7, "503": 2},
        failed_by_error_code={"1050": 4},
    )

    advice = recommendations(make_verdict(errors))

    assert any("7 responses were 429" in line for line in advice)
    breaker = [line for line in advice if "circuit breaker" in line]
    assert len(breaker) == 1
    assert "2 responses were 503" in breaker[0]
    assert "4 requests timed out (k6 error code 1050)" in breaker[0]


def test_recommendations_timeouts_from_k6() -> None:
    k6 = make_k6(["202", "0", "0", "504"], [None, "1050", "1050", "1504"])

    advice = recommendations(make_verdict(), k6)

    assert len(advice) == 1
    assert "circuit breaker" in advice[0]
    assert "1 responses were 504" in advice[0]
    assert "2 requests timed out" in advice[0]


def test_recommendations_heap_growth() -> None:
    heap = make_criterion("heap_growth", "FAIL", reason="grew by 80.0 MB")

    advice = recommendations(make_verdict(heap))

    assert len(advice) == 1
    assert advice[0].startswith("Profile the service's memory")
    assert "grew by 80.0 MB" in advice[0]


def test_recommendations_dropped_iterations() -> None:
    load = make_criterion(
        "load_delivered", "INCONCLUSIVE", reason="k6 dropped 12", dropped_iterations=12
    )

    advice = recommendations(make_verdict(load, status="INCONCLUSIVE"))

    assert len(advice) == 1
    assert "MAX_VUS" in advice[0]
    assert "sleep()" in advice[0]
    assert "dropped 12 iterations" in advice[0]


def test_recommendations_dropped_while_slow() -> None:
    load = make_criterion(
        "load_delivered", "INCONCLUSIVE", reason="k6 dropped 40", dropped_iterations=40
    )
    slow = make_criterion("p95_latency", "FAIL", observed=900.0, reason="P95 900.0 ms")

    advice = recommendations(make_verdict(load, slow))

    assert len(advice) == 1
    assert advice[0].startswith("Fix the slow responses first")
    assert "dropped 40 iterations while P95 900.0 ms" in advice[0]


def test_recommendations_slow_without_cause() -> None:
    slow = make_criterion("p95_latency", "FAIL", observed=180.0, reason="P95 180.0 ms")

    advice = recommendations(make_verdict(slow))

    assert len(advice) == 1
    assert "Profile the request path" in advice[0]
    assert "P95 180.0 ms" in advice[0]


def test_recommendations_missing_required_data() -> None:
    health = make_criterion(
        "health",
        "NO_DATA",
        observed=None,
        reason="the health samples file holds no probe",
    )

    advice = recommendations(make_verdict(health, status="INCONCLUSIVE"))

    assert len(advice) == 1
    assert "health can be judged" in advice[0]


def test_recommendations_clean_pass() -> None:
    verdict = make_verdict(status="PASS")

    advice = recommendations(verdict)

    assert len(advice) == 1
    assert advice[0].startswith("No action needed")
    assert "P95 42.5 ms" in advice[0]
    assert "can be promoted" in advice[0]


def test_recommendations_unjudged_optional_pass() -> None:
    logs = make_criterion("critical_logs", "NO_DATA", observed=None, required=False)

    advice = recommendations(make_verdict(logs, status="PASS"))

    assert len(advice) == 1
    assert advice[0].startswith("No action needed on what was measured")
    assert "Check critical_logs by other means" in advice[0]


def steady_k6(count: int, spacing_s: float) -> K6Output:
    """Fast expected responses, one every `spacing_s` seconds."""
    requests = pd.DataFrame(
        {
            "time": START + pd.to_timedelta(np.arange(count) * spacing_s, unit="s"),
            "duration_ms": 10.0,
            "failed": pd.array([False] * count, dtype="boolean"),
            "status": pd.Categorical(["202"] * count),
            "expected_response": pd.Categorical(["true"] * count),
            "group": pd.Categorical([""] * count),
        }
    )
    samples = pd.DataFrame(
        {"time": pd.Series([], dtype="datetime64[ns, UTC]"), "metric": [], "value": []}
    )
    return K6Output(
        path="k6.json",
        format="json",
        requests=requests,
        samples=samples,
        metrics={},
        has_expected_response=True,
    )


def test_recommendations_short_run_no_promotion() -> None:
    for span_s in (5, 10, 60):
        k6 = steady_k6(span_s * 10, 0.1)
        verdict = evaluate(
            k6=k6, run_dir=None, target_rate_per_s=10.0, duration_s=float(span_s)
        )

        advice = recommendations(verdict, k6)

        assert verdict.status == "PASS"
        assert not any("can be promoted" in line for line in advice)
        assert advice[-1].startswith("Run the full canary before promoting")
        assert "sustained_p95 cannot observe" in advice[-1]


def test_recommendations_full_run_may_promote() -> None:
    k6 = steady_k6(1800, 1.0)
    verdict = evaluate(k6=k6, run_dir=None, target_rate_per_s=1.0, duration_s=1800.0)

    advice = recommendations(verdict, k6)

    assert not any("Run the full canary" in line for line in advice)
    assert "by other means before promoting" in advice[0]


def test_recommendations_short_failed_run() -> None:
    slow = make_criterion("p95_latency", "FAIL", observed=180.0, reason="P95 180.0 ms")
    verdict = replace(
        make_verdict(slow), input={"short_run_reason": "the traffic spans 6 s"}
    )

    advice = recommendations(verdict)

    assert "Profile the request path" in advice[0]
    assert advice[-1] == "Run the full canary before promoting: the traffic spans 6 s."


def test_recommendations_unknown_rate() -> None:
    load = make_criterion(
        "load_delivered",
        "INCONCLUSIVE",
        observed=None,
        reason="the achieved rate is unknown",
    )

    advice = recommendations(make_verdict(load, status="INCONCLUSIVE"))

    assert advice[0].startswith("Give the planned rate and duration")
    assert "achieved rate is unknown" in advice[0]
