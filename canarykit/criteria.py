"""SLO settings, the criterion record, and the criteria judged from k6's requests.

Each criterion function returns one `Criterion`; a failed SLO is a value, never an
exception. Latency figures use k6's percentile method (linear interpolation between
the closest ranks) through `canarykit.stats`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from canarykit import stats

if TYPE_CHECKING:
    from canarykit.k6output import K6Output

logger = logging.getLogger(__name__)

PASS = "PASS"
FAIL = "FAIL"
NO_DATA = "NO_DATA"
INCONCLUSIVE = "INCONCLUSIVE"
STATUSES = (PASS, FAIL, NO_DATA, INCONCLUSIVE)

# Decimal megabyte: 50 MB is 50 * 10**6 bytes, as Prometheus byte gauges are read.
BYTES_PER_MB = 1_000_000


@dataclass(frozen=True)
class SloSettings:
    """Targets and detection settings of a verdict; times in seconds, sizes in bytes."""

    p95_ms: float = 120.0
    # Failed-request fraction (0 to 1). The run passes only when strictly below it.
    error_rate: float = 0.005
    sustained_window_s: float = 60.0
    # A stretch of slow windows longer than this fails sustained_p95.
    sustained_max_s: float = 300.0
    # The planned canary length: 30 minutes, as in load-tests/canary_250rps_30min.js.
    # A shorter run can pass, but its recommendation does not claim promotion.
    full_canary_s: float = 1800.0
    heap_growth_bytes: float = 50 * BYTES_PER_MB
    heap_metric_names: tuple[str, ...] = (
        "nodejs_heap_size_used_bytes",
        "process_heap_bytes",
        "process_resident_memory_bytes",
    )
    db_pool_in_use_metric: str = "db_pool_connections_in_use"
    db_pool_max_metric: str = "db_pool_connections_max"
    db_pool_waiters_metric: str = "db_pool_waiters"
    # process_start_time_seconds may move by scrape rounding without a restart.
    restart_jitter_s: float = 1.0
    min_achieved_rate_fraction: float = 0.99


@dataclass(frozen=True)
class Criterion:
    """One SLO or fail-trigger result.

    `observed` and `target` are JSON numbers, or null when nothing was measured, in
    the unit named by `evidence["unit"]`. `method` names the population, window or
    statistic used. Only `required` criteria can keep the overall verdict from PASS
    by lacking a result.
    """

    id: str
    status: str
    observed: float | None
    target: float | None
    method: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the criterion as the JSON object written to verdict.json."""
        return {
            "id": self.id,
            "status": self.status,
            "observed": self.observed,
            "target": self.target,
            "method": self.method,
            "reason": self.reason,
            "evidence": self.evidence,
            "required": self.required,
        }


@dataclass(frozen=True)
class Population:
    """Scenario requests split into the latency population and its description."""

    scenario: pd.DataFrame
    expected: pd.DataFrame
    description: str
    used_status_fallback: bool


def select_population(k6: K6Output) -> Population:
    """Select scenario traffic and, within it, the responses k6 counts as expected."""
    scenario = stats.scenario_requests(k6.requests)
    expected_mask = stats.is_expected(scenario)
    expected = scenario[expected_mask.to_numpy(dtype=bool)]

    rule = _EXPECTED_RULES.get(str(expected_mask.name), str(expected_mask.name))
    description = (
        f"scenario traffic (groups ::setup and ::teardown left out) with {rule}: "
        f"{len(expected)} of {len(scenario)} requests"
    )
    fallback = expected_mask.name != stats.TAG_SOURCE
    return Population(scenario, expected, description, fallback)


_EXPECTED_RULES = {
    stats.TAG_SOURCE: "expected_response:true",
    stats.STATUS_SOURCE: (
        "status 200-399, because no request carries the expected_response tag"
    ),
    stats.MIXED_SOURCE: (
        "expected_response:true, or status 200-399 on requests without that tag"
    ),
}


def p95_latency(population: Population, settings: SloSettings) -> Criterion:
    """Judge P95 of http_req_duration over expected scenario responses."""
    method = (
        f"P95 of http_req_duration, k6 linear interpolation, {population.description}"
    )
    durations = population.expected["duration_ms"].dropna().to_numpy(dtype=float)
    evidence: dict[str, Any] = {
        "unit": "ms",
        "requests": int(durations.size),
        "status_fallback": population.used_status_fallback,
    }
    if durations.size == 0:
        reason = "no expected scenario response has a duration, so P95 is unknown"
        return Criterion(
            "p95_latency", NO_DATA, None, settings.p95_ms, method, reason, evidence
        )

    p95_ms = float(stats.trend_stats(durations)["p(95)"])
    if p95_ms <= settings.p95_ms:
        status, verb = PASS, "is within"
    else:
        status, verb = FAIL, "exceeds"
    reason = f"P95 {p95_ms:.1f} ms {verb} the {settings.p95_ms:g} ms target"
    return Criterion(
        "p95_latency", status, p95_ms, settings.p95_ms, method, reason, evidence
    )


def error_rate(
    population: Population, k6: K6Output, settings: SloSettings
) -> Criterion:
    """Judge the http_req_failed rate of scenario traffic beside the `errors` Rate."""
    method = "share of scenario requests with http_req_failed=1"
    scenario = population.scenario
    failed = scenario["failed"].dropna().astype(bool)
    evidence: dict[str, Any] = {"unit": "fraction", "requests": int(failed.size)}
    evidence.update(_failure_breakdown(scenario))
    evidence.update(_errors_rate(k6))
    if failed.size == 0:
        reason = (
            "no scenario request carries http_req_failed, so the error rate is unknown"
        )
        return Criterion(
            "error_rate", NO_DATA, None, settings.error_rate, method, reason, evidence
        )

    rate = float(failed.mean())
    evidence["failed"] = int(failed.sum())
    status = PASS if rate < settings.error_rate else FAIL
    relation = "below" if status == PASS else "not below"
    reason = (
        f"{evidence['failed']} of {failed.size} requests failed ({rate:.3%}), "
        f"{relation} the {settings.error_rate:.2%} target"
    )
    if "errors_rate" in evidence:
        reason += (
            f"; the script's errors Rate is {evidence['errors_rate']:.3%} "
            "(it also counts responses slower than the check's limit)"
        )
    return Criterion(
        "error_rate", status, rate, settings.error_rate, method, reason, evidence
    )


def _failure_breakdown(scenario: pd.DataFrame) -> dict[str, Any]:
    """Count failed requests by HTTP status and by k6 error code."""
    failed_rows = scenario[scenario["failed"].fillna(False).astype(bool)]
    breakdown: dict[str, Any] = {}
    for column, key in (
        ("status", "failed_by_status"),
        ("error_code", "failed_by_error_code"),
    ):
        if column not in failed_rows:
            continue
        counts = failed_rows[column].astype("string").dropna().value_counts()
        breakdown[key] = {str(value): int(count) for value, count in counts.items()}
    return breakdown


def _errors_rate(k6: K6Output) -> dict[str, Any]:
    """Return the canary script's `errors` Rate over scenario iterations, if present."""
    samples = k6.samples
    if samples.empty or "metric" not in samples:
        return {}
    errors = samples[samples["metric"] == "errors"]
    if "group" in errors:
        errors = errors[~errors["group"].isin(["::setup", "::teardown"])]
    values = errors["value"].dropna()
    if values.empty:
        return {}
    return {
        "errors_rate": float((values != 0).mean()),
        "errors_samples": int(values.size),
        "errors_counts": (
            "the script's errors Rate: a sample is an error when its check fails, "
            "that is the status is not 202 or the duration is not under 120 ms, "
            "so slow responses count"
        ),
    }


def traffic_span_s(population: Population) -> float | None:
    """Return seconds from the first to the last scenario request, None without any."""
    times = population.scenario["time"].dropna()
    if times.empty:
        return None
    return float((times.max() - times.min()).total_seconds())


def sustained_p95(population: Population, settings: SloSettings) -> Criterion:
    """Fail when P95 is above target in every window of a stretch over the limit.

    A window counts for the part of it that lies between the first and the last
    scenario request, so a stretch never lasts longer than the traffic. In traffic
    that spans no more than the limit a breach is not observable: the criterion
    then passes, says so in its reason and sets `evidence["is_observable"]` False.
    """
    window_s = settings.sustained_window_s
    method = (
        f"P95 per {window_s:g} s window from the first expected response "
        "(floored to the second), "
        f"{population.description}; a stretch is consecutive windows above "
        f"{settings.p95_ms:g} ms, each counted for the traffic time it covers, "
        "and a window without expected responses ends it"
    )
    durations = population.expected["duration_ms"].dropna()
    span_s = traffic_span_s(population)
    if durations.empty or span_s is None:
        reason = "no expected scenario response has a duration, so no window has a P95"
        return Criterion(
            "sustained_p95",
            NO_DATA,
            None,
            settings.sustained_max_s,
            method,
            reason,
            {"unit": "s"},
        )

    windows = _latency_windows(population, window_s)
    _warn_empty_windows(windows)
    stretch = _longest_slow_stretch(windows, settings.p95_ms)
    longest_s = float(stretch["covered_s"])
    is_observable = span_s > settings.sustained_max_s
    evidence: dict[str, Any] = {
        "unit": "s",
        "window_s": window_s,
        "windows": windows,
        "longest_stretch": stretch,
        "longest_stretch_s": longest_s,
        "traffic_span_s": span_s,
        "is_observable": is_observable,
    }
    status = FAIL if longest_s > settings.sustained_max_s else PASS
    reason = (
        f"longest stretch of windows with P95 above {settings.p95_ms:g} ms lasts "
        f"{longest_s:.1f} s (limit {settings.sustained_max_s:g} s)"
    )
    if not is_observable:
        reason += (
            "; a breach is not observable in a run shorter than "
            f"{format_span(settings.sustained_max_s)}, and the traffic spans only "
            f"{span_s:.1f} s"
        )
    return Criterion(
        "sustained_p95",
        status,
        longest_s,
        settings.sustained_max_s,
        method,
        reason,
        evidence,
    )


def format_span(seconds: float) -> str:
    """Format a limit in seconds as whole minutes (`5 min`) when it is one, else `s`."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _latency_windows(population: Population, window_s: float) -> list[dict[str, Any]]:
    """Compute P95 and covered traffic seconds per window, empty windows included."""
    windows = stats.windowed_latency(population.expected, window_s=window_s)
    times = population.scenario["time"].dropna()
    first, last = times.min(), times.max()
    step = pd.Timedelta(seconds=window_s)
    rows = []
    for row in windows.itertuples(index=False):
        start = max(row.window_start, first)
        end = min(row.window_start + step, last)
        rows.append(
            {
                "start": row.window_start.isoformat(),
                "requests": int(row.requests),
                "p95_ms": None if pd.isna(row.p95_ms) else float(row.p95_ms),
                "covered_s": max(0.0, (end - start).total_seconds()),
            }
        )
    return rows


def _warn_empty_windows(windows: list[dict[str, Any]]) -> None:
    empty = sum(1 for window in windows if window["p95_ms"] is None)
    if empty:
        logger.warning(
            "%d of %d latency windows have no expected response; each ends a stretch",
            empty,
            len(windows),
        )


def _longest_slow_stretch(
    windows: list[dict[str, Any]], p95_ms: float
) -> dict[str, Any]:
    """Find the run of consecutive windows above the target that covers most time."""
    best: dict[str, Any] = {"windows": 0, "start": None, "end": None, "covered_s": 0.0}
    count, covered_s = 0, 0.0
    for i, window in enumerate(windows):
        if window["p95_ms"] is None or window["p95_ms"] <= p95_ms:
            count, covered_s = 0, 0.0
            continue
        count += 1
        covered_s += window["covered_s"]
        if best["start"] is None or covered_s > best["covered_s"]:
            best = {
                "windows": count,
                "start": windows[i - count + 1]["start"],
                "end": window["start"],
                "covered_s": covered_s,
            }
    return best


def load_delivered(
    population: Population,
    k6: K6Output,
    settings: SloSettings,
    *,
    target_rate_per_s: float | None,
    duration_s: float | None,
) -> Criterion:
    """Check that k6 sent the planned load: no dropped iterations, enough requests."""
    dropped = _dropped_iterations(k6)
    requests = len(population.scenario)
    elapsed_s, elapsed_source = _traffic_duration(population, duration_s)
    achieved = requests / elapsed_s if elapsed_s else None
    evidence: dict[str, Any] = {
        "unit": "requests/s",
        "dropped_iterations": dropped,
        "requests": requests,
        "duration_s": elapsed_s,
        "duration_source": elapsed_source,
        "achieved_rate_per_s": achieved,
        "target_rate_per_s": target_rate_per_s,
    }
    minimum = None
    if target_rate_per_s is not None:
        minimum = target_rate_per_s * settings.min_achieved_rate_fraction
        if duration_s is not None:
            evidence["expected_requests"] = round(target_rate_per_s * duration_s)
    method = (
        "dropped_iterations sum from k6, and scenario requests divided by "
        f"{elapsed_source}, compared with "
        f"{settings.min_achieved_rate_fraction:.0%} of the target rate"
    )

    if requests == 0:
        reason = "k6 recorded no scenario request"
        return Criterion(
            "load_delivered", NO_DATA, None, minimum, method, reason, evidence
        )
    if achieved is None:
        reason = (
            f"the achieved rate is unknown: {requests} scenario request(s) span "
            f"{traffic_span_s(population) or 0.0:.1f} s and no planned duration was "
            "given; give the planned rate and duration to check the load"
        )
        if dropped > 0:
            reason = f"k6 dropped {dropped} iterations, and {reason}"
        return Criterion(
            "load_delivered", INCONCLUSIVE, None, minimum, method, reason, evidence
        )
    problems = []
    if dropped > 0:
        problems.append(f"k6 dropped {dropped} iterations")
    if minimum is not None and achieved < minimum:
        problems.append(
            f"achieved {achieved:.2f} requests/s is below {minimum:.2f} "
            f"({settings.min_achieved_rate_fraction:.0%} of {target_rate_per_s:g})"
        )
    if problems:
        reason = (
            " and ".join(problems)
            + ", so latency was measured on less load than planned and is optimistic"
        )
        return Criterion(
            "load_delivered", INCONCLUSIVE, achieved, minimum, method, reason, evidence
        )

    reason = f"no dropped iterations; achieved {achieved:.2f} requests/s"
    if minimum is None:
        reason += ", not compared because no target rate was given"
    else:
        reason += f", at least {minimum:.2f}"
    return Criterion(
        "load_delivered", PASS, achieved, minimum, method, reason, evidence
    )


def _dropped_iterations(k6: K6Output) -> int:
    """Sum k6's dropped_iterations counter; k6 writes no sample when nothing dropped."""
    samples = k6.samples
    if samples.empty or "metric" not in samples:
        return 0
    values = samples.loc[samples["metric"] == "dropped_iterations", "value"]
    return int(values.sum())


def _traffic_duration(
    population: Population, duration_s: float | None
) -> tuple[float | None, str]:
    """Return the duration the achieved rate divides by, and where it came from."""
    if duration_s is not None:
        return duration_s, "the planned duration"
    times = population.scenario["time"].dropna()
    span_s = traffic_span_s(population)
    if not span_s:
        # One request, or requests at a single time, span no measurable time.
        return None, "the traffic span (none: fewer than 2 distinct request times)"
    # n requests spread evenly span n - 1 gaps; scale the span to cover n gaps.
    span_s *= len(times) / (len(times) - 1)
    return span_s, "the traffic span (first to last request, approximate)"
