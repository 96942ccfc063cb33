"""The report's results table: one row of target, actual and status per criterion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from canarykit.criteria import Criterion, SloSettings

if TYPE_CHECKING:
    from canarykit.verdict import Verdict


_LABELS = {
    "p95_latency": "P95 latency",
    "error_rate": "Error rate",
    "sustained_p95": "Sustained P95",
    "restarts": "Restarts",
    "critical_logs": "Critical log lines",
    "health": "Health",
    "heap_growth": "Heap growth",
    "db_pool": "DB pool exhaustion",
    "load_delivered": "Load delivered",
}


def results_table(verdict: Verdict) -> pd.DataFrame:
    """Build the report's results table: criterion, target, actual, status.

    Besides one row per criterion it contains an uptime row (from health) and a total
    requests row (against rate x duration when both were given).
    """
    rows = []
    for item in verdict.criteria:
        target, actual = _describe(item, verdict.settings)
        rows.append((_LABELS.get(item.id, item.id), target, actual, item.status))
        if item.id == "health":
            rows.append(("Uptime", "100%", _uptime_text(item), item.status))
        if item.id == "load_delivered":
            rows.append(("Total requests", *_total_requests_text(item), item.status))
    return pd.DataFrame(rows, columns=["criterion", "target", "actual", "status"])


def _describe(item: Criterion, settings: SloSettings) -> tuple[str, str]:
    """Return the target and actual text of one criterion row."""
    targets = {
        "p95_latency": f"<= {settings.p95_ms:g} ms",
        "error_rate": f"< {settings.error_rate:.2%}",
        "sustained_p95": (
            f"no stretch > {settings.sustained_max_s:g} s of "
            f"{settings.sustained_window_s:g} s windows above {settings.p95_ms:g} ms"
        ),
        "restarts": "0",
        "critical_logs": "0",
        "health": "green in every probe",
        "heap_growth": f"<= {settings.heap_growth_bytes:,.0f} bytes",
        "db_pool": "never exhausted",
        "load_delivered": "0 dropped iterations"
        + ("" if item.target is None else f", >= {item.target:.2f} requests/s"),
    }
    target = targets.get(item.id, _or_no_data(item.target, "{:g}"))

    template = _ACTUAL_TEMPLATES.get(item.id, "{:g}")
    actual = _or_no_data(item.observed, template)
    if item.observed is not None:
        actual += _actual_detail(item)
    return target, actual


_ACTUAL_TEMPLATES = {
    "p95_latency": "{:.1f} ms",
    "error_rate": "{:.3%}",
    "sustained_p95": "longest stretch {:.1f} s",
    "health": "{:.2%} of probes green",
    "heap_growth": "{:,.0f} bytes",
    "db_pool": "{:g} scrapes exhausted",
    "load_delivered": "{:.2f} requests/s",
}


def _actual_detail(item: Criterion) -> str:
    """Return the evidence shown after a measured value, such as the metric used."""
    evidence = item.evidence
    if item.id == "error_rate" and "errors_rate" in evidence:
        return f" (script errors Rate {evidence['errors_rate']:.3%})"
    if item.id == "sustained_p95" and evidence.get("is_observable") is False:
        return f" (not observable: traffic spans {evidence['traffic_span_s']:.1f} s)"
    if item.id == "heap_growth":
        return f" ({evidence['metric']})"
    if item.id == "load_delivered":
        return f", {evidence.get('dropped_iterations', 0)} dropped"
    return ""


def _or_no_data(value: float | None, template: str) -> str:
    """Format a value, or return 'no data' when it is None."""
    return "no data" if value is None else template.format(value)


def _uptime_text(item: Criterion) -> str:
    """Return the uptime percentage with its sample counts."""
    if "samples" not in item.evidence:
        return "no data"
    evidence = item.evidence
    return (
        f"{evidence['uptime']:.2%} "
        f"({evidence['healthy_samples']} of {evidence['samples']} probes)"
    )


def _total_requests_text(item: Criterion) -> tuple[str, str]:
    """Return the expected (rate x duration) and recorded request totals."""
    evidence = item.evidence
    expected = evidence.get("expected_requests")
    if expected is None:
        target = "rate x duration (not given)"
    else:
        target = (
            f"{expected:,} ({evidence['target_rate_per_s']:g}/s x "
            f"{evidence['duration_s']:g} s)"
        )
    return target, f"{evidence.get('requests', 0):,}"
