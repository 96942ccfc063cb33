"""k6-consistent statistics: trend stats, k6's summary-export, windowed latency.

Percentiles interpolate linearly between the closest ranks (numpy's default method,
the one k6 1.1.0 uses for its end-of-test summary). NaN and infinite values are left
out of every figure.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from canarykit.k6output import K6Output, MetricDefinition
from canarykit.k6reader import REQUEST_COLUMNS

logger = logging.getLogger(__name__)

TREND_PERCENTILES = {"med": 50.0, "p(90)": 90.0, "p(95)": 95.0, "p(99)": 99.0}
SETUP_TEARDOWN_GROUPS = ("::setup", "::teardown")
STATUS_SOURCE = "status_200_399"
TAG_SOURCE = "expected_response"
MIXED_SOURCE = "expected_response_or_status"

_THRESHOLD = re.compile(
    r"^\s*(?P<stat>avg|min|max|med|count|rate|value|p\((?P<pct>\d+(?:\.\d+)?)\))\s*"
    r"(?P<op><=|>=|===|==|!=|<|>)\s*(?P<limit>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}


def trend_stats(values: Iterable[float] | np.ndarray | pd.Series) -> dict[str, float]:
    """Compute k6's trend stats (avg, min, med, max, p(90), p(95), p(99)).

    Non-finite values are left out; with no finite value every stat is NaN.
    """
    array = _finite(values)
    if not len(array):
        return {
            key: math.nan for key in ("avg", "min", "med", "max", *TREND_PERCENTILES)
        }
    percentiles = np.percentile(array, list(TREND_PERCENTILES.values()))
    stats = {
        "avg": float(array.mean()),
        "min": float(array.min()),
        "med": float(percentiles[0]),
        "max": float(array.max()),
    }
    for key, figure in zip(list(TREND_PERCENTILES)[1:], percentiles[1:], strict=True):
        stats[key] = float(figure)
    return stats


def run_duration_s(output: K6Output) -> float:
    """Estimate k6's test run duration: first to last sample time in the file, in s.

    k6 1.1.0 divides a counter by its test run duration, which starts before setup
    and ends after the last sample. The file contains no start or end mark, so the
    span of sample times is the closest figure it gives. For JSON output it was
    0.03% short of k6's duration in a 4-second run (tests/test_summary_vs_k6.py).
    k6's CSV output has whole-second timestamps, so there the span is off by up to
    1 s. Returns NaN without two distinct sample times.
    """
    times = [output.requests["time"], output.samples["time"]]
    present = [column for column in times if len(column)]
    if not present:
        return math.nan
    first = min(column.min() for column in present)
    last = max(column.max() for column in present)
    span_s = (last - first).total_seconds()
    return span_s if span_s > 0 else math.nan


def summarize(output: K6Output) -> dict[str, Any]:
    """Compute k6's `--summary-export` figures for every metric and sub-metric.

    The population is everything in the file, setup and teardown included, as in
    k6's own summary. Counter rates divide by `run_duration_s(output)`. A metric
    without any sample is left out, as k6 leaves it out. A sub-metric without any
    sample gets zeros, because k6 1.1.0 writes zeros for it. Thresholds are reported
    (False meaning not crossed) where the Metric line names them and the
    expression has a form this module evaluates exactly.
    """
    duration_s = run_duration_s(output)
    metrics: dict[str, dict[str, Any]] = {}
    for definition in output.metrics.values():
        values = metric_values(output, definition.name)
        if len(values):
            figures = _metric_summary(definition, values, duration_s)
            metrics[definition.name] = _with_thresholds(figures, definition, values)
        for sub_name, tags in definition.submetrics:
            sub_values = metric_values(output, definition.name, tags)
            metrics[sub_name] = _metric_summary(definition, sub_values, duration_s)
    return {"metrics": metrics}


def metric_values(
    output: K6Output, name: str, tags: dict[str, str] | None = None
) -> np.ndarray:
    """Return the finite values of one metric, in file order within each frame.

    `tags` narrows to samples carrying every given tag with the given value, the
    way k6 selects a sub-metric's samples.
    """
    parts = []
    if name == "http_reqs" or name in REQUEST_COLUMNS:
        requests = _with_tags(output.requests, tags)
        parts.append(_request_values(requests, name))
    samples = output.samples
    if len(samples):
        rows = samples[samples["metric"] == name]
        rows = _with_tags(rows, tags)
        parts.append(rows["value"].to_numpy(dtype=np.float64))
    return _finite(np.concatenate(parts)) if parts else np.zeros(0)


def _request_values(requests: pd.DataFrame, name: str) -> np.ndarray:
    if name == "http_reqs":
        return np.ones(len(requests))
    column = requests[REQUEST_COLUMNS[name]]
    if name == "http_req_failed":
        return column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=np.float64)


def _with_tags(frame: pd.DataFrame, tags: dict[str, str] | None) -> pd.DataFrame:
    if not tags:
        return frame
    mask = np.ones(len(frame), dtype=bool)
    for key, expected in tags.items():
        if key not in frame.columns:
            return frame.iloc[0:0]
        mask &= (frame[key] == expected).to_numpy(dtype=bool, na_value=False)
    return frame[mask]


def _metric_summary(
    definition: MetricDefinition, values: np.ndarray, duration_s: float
) -> dict[str, Any]:
    if not len(values):
        return _k6_zero_figures(definition.type)
    if definition.type == "trend":
        figures: dict[str, Any] = trend_stats(values)
    elif definition.type == "counter":
        count = float(values.sum())
        # k6 prints a whole count as an integer; a custom counter may add fractions.
        shown_count: float | int = int(count) if count.is_integer() else count
        figures = {"count": shown_count, "rate": count / duration_s}
    elif definition.type == "rate":
        passes = int(np.count_nonzero(values))
        figures = {"passes": passes, "fails": len(values) - passes}
        figures["value"] = passes / len(values)
    else:
        figures = {"value": float(values[-1]), "min": float(values.min())}
        figures["max"] = float(values.max())
    return figures


def _k6_zero_figures(metric_type: str) -> dict[str, Any]:
    keys = {
        "trend": ["avg", "min", "med", "max", *list(TREND_PERCENTILES)[1:]],
        "counter": ["count", "rate"],
        "rate": ["passes", "fails", "value"],
        "gauge": ["value", "min", "max"],
    }[metric_type]
    return dict.fromkeys(keys, 0)


def _with_thresholds(
    figures: dict[str, Any], definition: MetricDefinition, values: np.ndarray
) -> dict[str, Any]:
    thresholds = _thresholds(definition, figures, values)
    return {**figures, "thresholds": thresholds} if thresholds else figures


def _thresholds(
    definition: MetricDefinition, figures: dict[str, Any], values: np.ndarray
) -> dict[str, bool]:
    crossed = {}
    for expression in definition.thresholds:
        match = _THRESHOLD.match(expression)
        if match is None:
            logger.warning(
                "threshold %r of %s not evaluated", expression, definition.name
            )
            continue
        figure = _threshold_figure(definition, figures, values, match)
        if figure is None:
            continue
        limit = float(match["limit"])
        crossed[expression] = not _OPERATORS[match["op"]](figure, limit)
    return crossed


def _threshold_figure(
    definition: MetricDefinition,
    figures: dict[str, Any],
    values: np.ndarray,
    match: re.Match[str],
) -> float | None:
    stat = match["stat"]
    if match["pct"] is not None and definition.type == "trend":
        return float(np.percentile(values, float(match["pct"])))
    if definition.type == "rate" and stat == "rate":
        return float(figures["value"])
    figure = figures.get(stat)
    return float(figure) if isinstance(figure, int | float) else None


def scenario_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Return the scenario requests: all but the ::setup and ::teardown groups."""
    if "group" not in requests.columns:
        return requests
    return requests[~requests["group"].isin(SETUP_TEARDOWN_GROUPS).to_numpy(dtype=bool)]


def is_expected(requests: pd.DataFrame) -> pd.Series:
    """Mark each request whose response k6 counts as expected.

    The `expected_response` tag decides where present; elsewhere a status from 200
    to 399 does. The returned Series is named for its source: `expected_response`
    (the tag on every row), `status_200_399` (no row has the tag) or
    `expected_response_or_status` (both were used).
    """
    tag = requests.get("expected_response")
    has_tag = (
        tag.notna().to_numpy()
        if tag is not None
        else np.zeros(len(requests), dtype=bool)
    )
    status = pd.to_numeric(
        requests.get("status", pd.Series(index=requests.index)), errors="coerce"
    )
    by_status = ((status >= 200) & (status <= 399)).to_numpy(dtype=bool)
    by_tag = (tag == "true").to_numpy(dtype=bool) if tag is not None else by_status
    expected = np.where(has_tag, by_tag, by_status)
    if has_tag.all() and len(requests):
        source = TAG_SOURCE
    elif not has_tag.any():
        source = STATUS_SOURCE
    else:
        source = MIXED_SOURCE
    return pd.Series(expected, index=requests.index, name=source, dtype=bool)


def windowed_latency(requests: pd.DataFrame, *, window_s: float = 10) -> pd.DataFrame:
    """Aggregate requests per time window of `window_s` seconds.

    Windows start at the first request's time floored to the whole second. Every
    window up to the last request is a row, and an empty one has 0 requests and NaN
    latency figures. `rate_per_s` divides by the full window, so a last window
    that the run covered only in part reads low. Latency is `duration_ms`.
    """
    columns = ["window_start", "requests", "failed", "rate_per_s"]
    columns += ["p50_ms", "p95_ms", "p99_ms", "avg_ms"]
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s!r}")
    if not len(requests):
        return pd.DataFrame({name: [] for name in columns})
    window = _window_index(requests["time"], window_s)
    grouped = pd.DataFrame(
        {
            "window": window,
            "duration_ms": requests["duration_ms"].to_numpy(dtype=np.float64),
            "failed": requests["failed"].fillna(False).to_numpy(dtype=bool),
        }
    ).groupby("window")
    latency = grouped["duration_ms"]
    frame = pd.DataFrame(
        {
            "requests": grouped.size(),
            "failed": grouped["failed"].sum(),
            "p50_ms": latency.quantile(0.50),
            "p95_ms": latency.quantile(0.95),
            "p99_ms": latency.quantile(0.99),
            "avg_ms": latency.mean(),
        }
    ).reindex(range(int(window.max()) + 1))
    frame[["requests", "failed"]] = frame[["requests", "failed"]].fillna(0).astype(int)
    origin = requests["time"].min().floor("s")
    frame["window_start"] = origin + pd.to_timedelta(frame.index * window_s, unit="s")
    frame["rate_per_s"] = frame["requests"] / window_s
    return frame.reset_index(drop=True)[columns]


def _window_index(times: pd.Series, window_s: float) -> np.ndarray:
    origin = times.min().floor("s")
    elapsed_ns = (times - origin).to_numpy(dtype="timedelta64[ns]").astype(np.int64)
    return (elapsed_ns // int(window_s * 1e9)).astype(np.int64)


def format_summary(summary: dict[str, Any]) -> str:
    """Format summarize()'s result as a plain text table, one metric per line."""
    metrics = summary.get("metrics", {})
    if not metrics:
        return "no metrics"
    width = max(len(name) for name in metrics) + 2
    lines = [f"{'metric':<{width}}figures"]
    for name in sorted(metrics, key=_display_order):
        figures = metrics[name]
        text = "  ".join(
            f"{key}={_format_number(value)}"
            for key, value in figures.items()
            if key != "thresholds"
        )
        lines.append(f"{name:<{width}}{text}")
        for expression, is_crossed in figures.get("thresholds", {}).items():
            mark = "crossed" if is_crossed else "ok"
            lines.append(f"{'':<{width}}threshold {expression}: {mark}")
    return "\n".join(lines)


def _display_order(name: str) -> tuple[str, int, str]:
    base, _, sub = name.partition("{")
    return base, 1 if sub else 0, sub


def _format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.4f}"


def _finite(values: Iterable[float] | np.ndarray | pd.Series) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]
