"""Criteria judged from the sampler's scrapes and probes and from the watched logs.

Inputs are the DataFrames of `canarykit.prom.load_metric_samples`,
`canarykit.sampler.load_health_samples` and `canarykit.logwatch.load_log_events`.
`None` means the file was never written because no sampler or log watcher ran, so
the criterion is NO_DATA and not required. Memory and counters are compared only
within one process lifetime: a lifetime ends at a scrape where
process_start_time_seconds moved forward or a `*_total` counter went backwards.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pandas as pd

from canarykit.criteria import (
    FAIL,
    INCONCLUSIVE,
    NO_DATA,
    PASS,
    Criterion,
    SloSettings,
)
from canarykit.logwatch import LOG_EVENT_COLUMNS

logger = logging.getLogger(__name__)

START_TIME_METRIC = "process_start_time_seconds"


def scrape_series(metrics: pd.DataFrame, name: str) -> pd.Series:
    """Return one metric per scrape time, summed over label sets, sorted by time."""
    rows = metrics[metrics["metric"] == name]
    return rows.groupby("time", sort=True)["value"].sum()


def restart_times(metrics: pd.DataFrame, settings: SloSettings) -> list[dict[str, Any]]:
    """List scrapes where the process restarted, with the signals that showed it.

    A restart shows as process_start_time_seconds moving forward by more than the
    jitter, or as a `*_total` series going backwards. Counters are compared only
    within one start-time lifetime, because a series a new process has not
    exported yet reappears later with a low value.
    """
    events: dict[pd.Timestamp, list[str]] = {}
    start = scrape_series(metrics, START_TIME_METRIC)
    jumps = start.diff()
    for time in jumps[jumps > settings.restart_jitter_s].index:
        events[time] = [f"{START_TIME_METRIC} moved forward by {jumps[time]:.1f} s"]

    scrape_times = pd.Index(metrics["time"].drop_duplicates().sort_values())
    lifetimes = lifetime_ids(scrape_times, sorted(events))
    for time, signal in _counter_drops(metrics, lifetimes):
        signals = events.setdefault(time, [])
        if not any(known.startswith("counter") for known in signals):
            signals.append(signal)
    return [
        {"time": time.isoformat(), "signals": events[time]} for time in sorted(events)
    ]


def _counter_drops(
    metrics: pd.DataFrame, lifetimes: pd.Series
) -> list[tuple[pd.Timestamp, str]]:
    """Find `*_total` series that fell since their previous scrape in one lifetime."""
    counters = metrics[metrics["metric"].astype(str).str.endswith("_total")]
    drops = []
    for (name, labels), series in counters.groupby(["metric", "labels"], observed=True):
        values = series.sort_values("time").set_index("time")["value"]
        same_lifetime = lifetimes[values.index].diff().to_numpy() == 0
        fell = (values.diff() < 0).to_numpy() & same_lifetime
        drops += [
            (time, f"counter {name}{{{labels}}} went backwards")
            for time in values.index[fell]
        ]
    return drops


def health_dips(health: pd.DataFrame) -> list[dict[str, Any]]:
    """List periods where health went from green to not green and back to green."""
    probes = health.sort_values("time")
    healthy = _is_green(probes).to_list()
    times = probes["time"].to_list()
    dips = []
    down_since = None
    seen_green = False
    for time, green in zip(times, healthy, strict=True):
        if green and down_since is not None and seen_green:
            dips.append(
                {"down_at": down_since.isoformat(), "back_at": time.isoformat()}
            )
        if green:
            seen_green, down_since = True, None
        elif down_since is None:
            down_since = time
    return dips


def _is_green(health: pd.DataFrame) -> pd.Series:
    """Mark probes that succeeded (`ok`) and whose body the sampler found healthy."""
    ok = health["ok"].fillna(False).astype(bool)
    return ok & health["healthy"].fillna(False).astype(bool)


def restarts(
    metrics: pd.DataFrame | None, health: pd.DataFrame | None, settings: SloSettings
) -> Criterion:
    """Judge whether the service restarted during the run."""
    method = (
        f"{START_TIME_METRIC} moving forward by more than "
        f"{settings.restart_jitter_s:g} s, "
        "a *_total counter going backwards between scrapes, or health going down and "
        "coming back; signals of one restart often appear in both sources, so the "
        "count is the larger of the two"
    )
    if metrics is None and health is None:
        reason = (
            "no samples/metrics.ndjson or samples/health.ndjson, "
            "so restarts were not watched"
        )
        return Criterion(
            "restarts", NO_DATA, None, 0, method, reason, {"unit": "restarts"}, False
        )

    scrapes = 0 if metrics is None else int(metrics["time"].nunique())
    probes = 0 if health is None else len(health)
    if scrapes < 2 and probes < 2:
        reason = (
            f"{scrapes} metrics scrape(s) and {probes} health probe(s) were recorded, "
            "and a restart shows only between 2 samples"
        )
        evidence = {"unit": "restarts", "scrapes": scrapes, "probes": probes}
        return Criterion("restarts", NO_DATA, None, 0, method, reason, evidence)

    events = restart_times(metrics, settings) if metrics is not None else []
    dips = health_dips(health) if health is not None else []
    count = max(len(events), len(dips))
    evidence = {"unit": "restarts", "metric_restarts": events, "health_dips": dips}
    if count:
        reason = (
            f"{len(events)} restart(s) seen in the metrics and {len(dips)} time(s) "
            "health went down and came back"
        )
        return Criterion("restarts", FAIL, count, 0, method, reason, evidence)
    reason = "no restart signal in the metrics or health probes"
    return Criterion("restarts", PASS, 0, 0, method, reason, evidence)


def lifetime_ids(times: pd.Index, restarts_at: list[pd.Timestamp]) -> pd.Series:
    """Number each scrape time by the process lifetime it belongs to, from 0."""
    cuts = sorted(restarts_at)
    ids = [sum(1 for cut in cuts if cut <= time) for time in times]
    return pd.Series(ids, index=times)


def heap_growth(metrics: pd.DataFrame | None, settings: SloSettings) -> Criterion:
    """Judge memory growth within each process lifetime (last scrape minus first)."""
    target = settings.heap_growth_bytes
    if metrics is None:
        method = "heap or resident memory growth within a process lifetime"
        reason = "no samples/metrics.ndjson, so memory was not watched"
        return Criterion(
            "heap_growth", NO_DATA, None, target, method, reason, {}, False
        )

    if metrics.empty:
        method = "heap or resident memory growth within a process lifetime"
        reason = "samples/metrics.ndjson contains no successful scrape"
        return Criterion("heap_growth", NO_DATA, None, target, method, reason, {})

    present = set(metrics["metric"].astype(str).unique())
    name = next((n for n in settings.heap_metric_names if n in present), None)
    if name is None:
        method = (
            f"growth of the first of {', '.join(settings.heap_metric_names)} exposed"
        )
        reason = "the target exposes none of these memory metrics"
        return Criterion("heap_growth", NO_DATA, None, target, method, reason, {})

    method = (
        f"{name}: last scrape minus first scrape within each process lifetime, "
        "the largest growth over lifetimes"
    )
    lifetimes = _lifetime_growth(metrics, name, settings)
    evidence: dict[str, Any] = {"unit": "bytes", "metric": name, "lifetimes": lifetimes}
    measured = [life["growth_bytes"] for life in lifetimes if life["scrapes"] >= 2]
    if not measured:
        reason = f"fewer than 2 scrapes of {name} in every process lifetime"
        return Criterion("heap_growth", NO_DATA, None, target, method, reason, evidence)

    growth = max(measured)
    status = PASS if growth <= target else FAIL
    verb = "is within" if status == PASS else "exceeds"
    reason = (
        f"{name} grew by {growth / 1e6:.1f} MB in one process lifetime, which {verb} "
        f"the {target / 1e6:g} MB limit"
    )
    return Criterion("heap_growth", status, growth, target, method, reason, evidence)


def _lifetime_growth(
    metrics: pd.DataFrame, name: str, settings: SloSettings
) -> list[dict[str, Any]]:
    """Compute first, last and peak values of a memory metric per process lifetime."""
    series = scrape_series(metrics, name)
    restarts_at = [
        pd.Timestamp(event["time"]) for event in restart_times(metrics, settings)
    ]
    ids = lifetime_ids(series.index, restarts_at)
    lifetimes = []
    for lifetime, values in series.groupby(ids):
        lifetimes.append(
            {
                "lifetime": int(lifetime),
                "start": values.index[0].isoformat(),
                "end": values.index[-1].isoformat(),
                "scrapes": int(values.size),
                "first_bytes": float(values.iloc[0]),
                "last_bytes": float(values.iloc[-1]),
                "max_bytes": float(values.max()),
                "growth_bytes": float(values.iloc[-1] - values.iloc[0]),
            }
        )
    return lifetimes


def db_pool(metrics: pd.DataFrame | None, settings: SloSettings) -> Criterion:
    """Judge database-pool exhaustion: in-use reaching max or any waiter in a scrape."""
    names = (
        settings.db_pool_in_use_metric,
        settings.db_pool_max_metric,
        settings.db_pool_waiters_metric,
    )
    method = f"{names[0]} >= {names[1]} or {names[2]} > 0 in any scrape, per label set"
    if metrics is None:
        reason = "no samples/metrics.ndjson, so the pool was not watched"
        return Criterion(
            "db_pool", NO_DATA, None, 0, method, reason, {"unit": "scrapes"}, False
        )
    pool = metrics[metrics["metric"].isin(names)]
    if pool.empty:
        reason = (
            "the target exposes no database-pool metrics, so this check does not apply"
        )
        if metrics.empty:
            reason = "samples/metrics.ndjson contains no successful scrape"
        return Criterion(
            "db_pool", NO_DATA, None, 0, method, reason, {"unit": "scrapes"}, False
        )

    table = pool.pivot_table(
        index=["time", "labels"],
        columns="metric",
        values="value",
        aggfunc="max",
        observed=True,
    )
    table = table.reindex(columns=list(names))
    full = table[names[0]] >= table[names[1]]
    waiting = table[names[2]] > 0
    exhausted = table[full.fillna(False) | waiting.fillna(False)]
    scrapes = int(table.index.get_level_values("time").nunique())
    exhausted_scrapes = int(exhausted.index.get_level_values("time").nunique())
    evidence: dict[str, Any] = {
        "unit": "scrapes",
        "scrapes": scrapes,
        "max_in_use": _max_or_none(table[names[0]]),
        "pool_max": _max_or_none(table[names[1]]),
        "max_waiters": _max_or_none(table[names[2]]),
        "exhausted_scrapes": exhausted_scrapes,
    }
    if exhausted_scrapes:
        evidence["first_exhausted_at"] = exhausted.index[0][0].isoformat()
        reason = (
            f"pool exhausted in {exhausted_scrapes} of {scrapes} scrapes "
            f"(in use up to {_figure(evidence['max_in_use'])} of "
            f"{_figure(evidence['pool_max'])}, "
            f"waiters up to {_figure(evidence['max_waiters'])})"
        )
        return Criterion(
            "db_pool", FAIL, exhausted_scrapes, 0, method, reason, evidence
        )
    reason = f"pool never exhausted in {scrapes} scrapes"
    return Criterion("db_pool", PASS, 0, 0, method, reason, evidence)


def _figure(value: float | None) -> str:
    """Format a pool figure, or 'not exposed' when the metric is missing."""
    return "not exposed" if value is None else f"{value:g}"


def _max_or_none(values: pd.Series) -> float | None:
    """Return the largest value, or None when the series has none."""
    top = values.max()
    return None if pd.isna(top) else float(top)


def health(health: pd.DataFrame | None) -> Criterion:
    """Judge that every health probe was green; uptime is green probes over probes."""
    method = "GET /health probes by the sampler; green means answered and healthy"
    if health is None:
        reason = "no samples/health.ndjson, so health was not watched"
        return Criterion(
            "health", NO_DATA, None, 1.0, method, reason, {"unit": "fraction"}, False
        )
    if health.empty:
        reason = "the health samples file holds no probe"
        return Criterion(
            "health", NO_DATA, None, 1.0, method, reason, {"unit": "fraction"}
        )

    green = _is_green(health)
    uptime = float(green.mean())
    evidence: dict[str, Any] = {
        "unit": "fraction",
        "samples": int(green.size),
        "healthy_samples": int(green.sum()),
        "uptime": uptime,
    }
    if uptime < 1.0:
        first_bad = health.loc[~green, "time"].min()
        evidence["first_unhealthy_at"] = first_bad.isoformat()
        reason = (
            f"{green.size - int(green.sum())} of {green.size} probes were not green "
            f"(uptime {uptime:.2%})"
        )
        return Criterion("health", FAIL, uptime, 1.0, method, reason, evidence)
    reason = f"all {green.size} probes were green"
    return Criterion("health", PASS, uptime, 1.0, method, reason, evidence)


def critical_logs(
    events: pd.DataFrame | None, sources: dict[str, Any] | None = None
) -> Criterion:
    """Judge that the watched logs hold no CRITICAL or FATAL entry.

    `sources` is logs/log_sources.json: the watcher's `patterns`, the `files` they
    matched and the `unmatched_patterns`. When it exists and no file ever matched,
    the logs the operator asked for were never read, so the criterion is NO_DATA
    and required. Patterns that matched no file are named in the reason.
    """
    method = "entries of logs/log_events.ndjson with severity CRITICAL or FATAL"
    patterns, files, unmatched = _log_sources(sources)
    if patterns and not files:
        reason = (
            f"no file matched the log pattern(s) {', '.join(patterns)}, so no log was "
            "read; check that each pattern names the service's log files"
        )
        evidence = {
            "unit": "lines",
            "patterns": patterns,
            "unmatched_patterns": unmatched,
        }
        return Criterion("critical_logs", NO_DATA, None, 0, method, reason, evidence)
    if events is None and not files:
        reason = (
            "no log files were watched (no logs/log_events.ndjson), "
            "so logs were not checked"
        )
        return Criterion(
            "critical_logs", NO_DATA, None, 0, method, reason, {"unit": "lines"}, False
        )
    if events is None:
        # The watcher read matching files but kept no WARN or worse entry.
        events = pd.DataFrame({column: [] for column in LOG_EVENT_COLUMNS})

    item = _judge_log_events(events, method)
    if not files:
        return item
    evidence = {**item.evidence, "log_files": files, "unmatched_patterns": unmatched}
    reason = item.reason
    if unmatched:
        reason += (
            f"; the pattern(s) {', '.join(unmatched)} matched no file, so those logs "
            "were not checked"
        )
    return replace(item, reason=reason, evidence=evidence)


def _log_sources(
    sources: dict[str, Any] | None,
) -> tuple[list[str], list[str], list[str]]:
    """Return the patterns, the matched file paths and the unmatched patterns."""
    if sources is None:
        return [], [], []
    patterns = [str(pattern) for pattern in sources.get("patterns", [])]
    files = [str(entry["path"]) for entry in sources.get("files", [])]
    unmatched = [str(pattern) for pattern in sources.get("unmatched_patterns", [])]
    return patterns, files, unmatched


def _judge_log_events(events: pd.DataFrame, method: str) -> Criterion:
    """Count CRITICAL and FATAL entries among the kept log entries."""
    critical = events[
        events["severity"].astype(str).str.upper().isin(["CRITICAL", "FATAL"])
    ]
    evidence: dict[str, Any] = {
        "unit": "lines",
        "kept_entries": len(events),
        "critical_entries": len(critical),
    }
    if critical.empty:
        reason = f"no CRITICAL or FATAL entry among {len(events)} kept log entries"
        return Criterion("critical_logs", PASS, 0, 0, method, reason, evidence)
    first = critical.iloc[0]
    evidence["first"] = {
        "file": str(first["file"]),
        "line_no": int(first["line_no"]),
        "message": str(first["message"])[:300],
    }
    reason = (
        f"{len(critical)} CRITICAL or FATAL log entries, first at "
        f"{first['file']}:{first['line_no']}"
    )
    return Criterion("critical_logs", FAIL, len(critical), 0, method, reason, evidence)


def coverage_gap(
    times: pd.Series,
    traffic_start: pd.Timestamp,
    traffic_end: pd.Timestamp,
    source: str,
) -> str | None:
    """Describe how samples fall short of the traffic span, or None when they cover it.

    The samples cover the traffic when the first is no later than its start and the
    last no earlier than its end. Each end may miss by twice the median sample
    interval plus 1 s, because the sampler's schedule is not aligned with k6's.
    """
    if times.empty:
        return None
    ordered = times.sort_values()
    gaps_s = ordered.diff().dt.total_seconds().dropna()
    slack_s = 2 * float(gaps_s.median()) + 1.0 if len(gaps_s) else 1.0
    late_s = (ordered.iloc[0] - traffic_start).total_seconds()
    early_s = (traffic_end - ordered.iloc[-1]).total_seconds()
    if late_s <= slack_s and early_s <= slack_s:
        return None
    return (
        f"{source} run from {ordered.iloc[0].isoformat()} to "
        f"{ordered.iloc[-1].isoformat()}, but the traffic ran from "
        f"{traffic_start.isoformat()} to {traffic_end.isoformat()}"
    )


def limit_to_coverage(item: Criterion, gaps: list[str]) -> Criterion:
    """Turn a PASS into INCONCLUSIVE when its samples miss part of the traffic.

    A FAIL stays a FAIL, because what was sampled already fails. A PASS cannot
    cover the time without samples.
    """
    if not gaps or item.status != PASS:
        return item
    evidence = {**item.evidence, "coverage_gaps": gaps}
    reason = f"{item.reason}, but {'; '.join(gaps)}"
    return replace(item, status=INCONCLUSIVE, reason=reason, evidence=evidence)
