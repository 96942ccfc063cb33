"""Recommendations derived from a verdict's failed and inconclusive criteria.

Each recommendation is one sentence of advice followed by the evidence that
triggered it, so a reader can check the advice against the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd

from canarykit import stats
from canarykit.criteria import FAIL, INCONCLUSIVE, NO_DATA, PASS, Criterion

if TYPE_CHECKING:
    from canarykit.k6output import K6Output
    from canarykit.verdict import Verdict

logger = logging.getLogger(__name__)

UPSTREAM_STATUSES = ("502", "503", "504")
# k6 error code for a request that hit its timeout (k6 docs, "Error codes").
K6_TIMEOUT_ERROR_CODE = "1050"


def recommendations(verdict: Verdict, k6: K6Output | None = None) -> list[str]:
    """List what to do next, most specific first, each naming its evidence.

    Response statuses and k6 error codes come from `k6` when given (all scenario
    requests), else from the error_rate criterion's evidence (failed requests).
    """
    criteria = {item.id: item for item in verdict.criteria}
    statuses, error_codes = _response_counts(criteria.get("error_rate"), k6)

    advice = [
        *_pool_advice(criteria.get("db_pool")),
        *_rate_limit_advice(statuses),
        *_heap_advice(criteria.get("heap_growth")),
        *_circuit_breaker_advice(statuses, error_codes),
        *_load_advice(criteria.get("load_delivered"), criteria.get("p95_latency")),
        *_restart_advice(criteria.get("restarts")),
        *_log_advice(criteria.get("critical_logs")),
    ]
    if not advice:
        advice.extend(_latency_advice(criteria))
    advice.extend(_missing_data_advice(verdict))
    short_run_reason = verdict.input.get("short_run_reason")
    if not advice and verdict.status == PASS:
        advice.append(_pass_line(verdict, is_short_run=bool(short_run_reason)))
    if short_run_reason:
        advice.append(f"Run the full canary before promoting: {short_run_reason}.")
    return advice


def _response_counts(
    error_rate: Criterion | None, k6: K6Output | None
) -> tuple[Counter[str], Counter[str]]:
    """Count responses by HTTP status and by k6 error code."""
    if k6 is not None:
        scenario = stats.scenario_requests(k6.requests)
        return _column_counts(scenario, "status"), _column_counts(
            scenario, "error_code"
        )
    if error_rate is None:
        return Counter(), Counter()
    evidence = error_rate.evidence
    return (
        Counter(evidence.get("failed_by_status", {})),
        Counter(evidence.get("failed_by_error_code", {})),
    )


def _column_counts(requests: pd.DataFrame, column: str) -> Counter[str]:
    """Count the values of one tag column of a requests DataFrame."""
    if column not in requests:
        return Counter()
    counts = requests[column].astype("string").dropna().value_counts()
    return Counter({str(value): int(count) for value, count in counts.items()})


def _pool_advice(item: Criterion | None) -> list[str]:
    if item is None or item.status != FAIL:
        return []
    return [
        "Raise the database pool size, or shorten how long a request holds a "
        f"connection: {item.reason}."
    ]


def _rate_limit_advice(statuses: Counter[str]) -> list[str]:
    limited = statuses.get("429", 0)
    if not limited:
        return []
    return [
        "Adjust the service's rate limits to the canary rate, or lower the canary "
        f"rate: {limited} responses were 429 Too Many Requests."
    ]


def _heap_advice(item: Criterion | None) -> list[str]:
    if item is None or item.status != FAIL:
        return []
    return [
        "Profile the service's memory (heap snapshots early and late in a run) to "
        f"find what is retained: {item.reason}."
    ]


def _circuit_breaker_advice(
    statuses: Counter[str], error_codes: Counter[str]
) -> list[str]:
    upstream = {
        code: statuses[code] for code in UPSTREAM_STATUSES if statuses.get(code)
    }
    timeouts = error_codes.get(K6_TIMEOUT_ERROR_CODE, 0)
    if not upstream and not timeouts:
        return []
    parts = [f"{count} responses were {code}" for code, count in upstream.items()]
    if timeouts:
        parts.append(f"{timeouts} requests timed out (k6 error code 1050)")
    return [
        "Add a circuit breaker with timeouts around upstream calls so failures "
        f"fail fast: {', '.join(parts)}."
    ]


def _load_advice(item: Criterion | None, p95: Criterion | None) -> list[str]:
    if item is None or item.status != INCONCLUSIVE:
        return []
    dropped = int(item.evidence.get("dropped_iterations", 0))
    if dropped and p95 is not None and p95.status == FAIL:
        # Slow responses keep every VU busy, so k6 drops iterations at any MAX_VUS
        # that the latency exhausts.
        return [
            "Fix the slow responses first, then raise MAX_VUS if k6 still drops "
            f"iterations: k6 dropped {dropped} iterations while {p95.reason}."
        ]
    if dropped:
        return [
            "Raise MAX_VUS (and PRE_ALLOCATED_VUS), or remove any sleep() from the "
            "arrival-rate script's default function, so k6 can start every "
            f"iteration: k6 dropped {dropped} iterations."
        ]
    if item.observed is None:
        return [
            "Give the planned rate and duration (or a run folder with "
            f"run_params.json) so the delivered load can be checked: {item.reason}."
        ]
    return [
        "Give the load generator more CPU or run it closer to the service, then run "
        f"the canary again: {item.reason}."
    ]


def _restart_advice(item: Criterion | None) -> list[str]:
    if item is None or item.status != FAIL:
        return []
    return [
        "Find why the process restarted (crash output, out-of-memory kills, "
        f"liveness probes) before promoting: {item.reason}."
    ]


def _log_advice(item: Criterion | None) -> list[str]:
    if item is None or item.status != FAIL:
        return []
    return [
        f"Read the CRITICAL and FATAL log entries and fix their cause: {item.reason}."
    ]


def _latency_advice(criteria: dict[str, Criterion]) -> list[str]:
    """Advise on latency or errors that no more specific rule explained."""
    advice = []
    for criterion_id in ("p95_latency", "sustained_p95"):
        item = criteria.get(criterion_id)
        if item is not None and item.status == FAIL:
            advice.append(
                "Profile the request path (database queries, serialization, "
                f"downstream calls) to find the slow step: {item.reason}."
            )
            break
    item = criteria.get("error_rate")
    if item is not None and item.status == FAIL:
        advice.append(
            f"Inspect the failed responses in the service logs: {item.reason}."
        )
    item = criteria.get("health")
    if item is not None and item.status == FAIL:
        advice.append(f"Find why /health went unhealthy: {item.reason}.")
    return advice


def _missing_data_advice(verdict: Verdict) -> list[str]:
    """Advise how to fill the gaps that made a required criterion NO_DATA."""
    missing = [
        item for item in verdict.criteria if item.required and item.status == NO_DATA
    ]
    return [
        f"Run the canary again so {item.id} can be judged: {item.reason}."
        for item in missing
    ]


def _pass_line(verdict: Verdict, *, is_short_run: bool) -> str:
    """Summarize a clean pass with its headline figures and what was not judged.

    Only a run as long as the full canary may be called ready for promotion.
    """
    criteria = {item.id: item for item in verdict.criteria}
    figures = []
    p95 = criteria.get("p95_latency")
    if p95 is not None and p95.observed is not None:
        figures.append(f"P95 {p95.observed:.1f} ms")
    errors = criteria.get("error_rate")
    if errors is not None and errors.observed is not None:
        figures.append(f"error rate {errors.observed:.3%}")
    shown = f" ({', '.join(figures)})" if figures else ""

    unjudged = [item.id for item in verdict.criteria if item.status == NO_DATA]
    if is_short_run:
        line = (
            "No action needed on what was measured: every required criterion "
            f"passed{shown}."
        )
        if unjudged:
            line += f" This run did not measure {', '.join(unjudged)}."
        return line
    if unjudged:
        return (
            f"No action needed on what was measured: every required criterion passed"
            f"{shown}. Check {', '.join(unjudged)} by other means before promoting, "
            "because this run did not measure them."
        )
    return (
        "No action needed: every required criterion passed"
        f"{shown}, so the canary can be promoted."
    )
