"""In-memory shape of one k6 run's output: requests, samples, metric definitions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

METRIC_TYPES = ("counter", "gauge", "rate", "trend")


@dataclass(frozen=True)
class MetricDefinition:
    """A k6 metric as its Metric line declares it.

    `submetrics` holds `(name, tags)` pairs such as
    `("http_req_duration{status:200}", {"status": "200"})`. `thresholds` holds the
    threshold expressions of the metric itself; k6 1.1.0 writes no thresholds for
    sub-metrics into its JSON output.
    """

    name: str
    type: str
    contains: str = "default"
    thresholds: tuple[str, ...] = ()
    submetrics: tuple[tuple[str, dict[str, str]], ...] = ()


@dataclass(frozen=True)
class K6Output:
    """One k6 output file read into DataFrames; the column contract is in
    docs/architecture.md, section K6Output."""

    path: str
    format: str  # "json" or "csv"
    requests: pd.DataFrame
    samples: pd.DataFrame
    metrics: dict[str, MetricDefinition]
    lines_read: int = 0
    blank_lines: int = 0
    dropped_lines: int = 0
    is_truncated: bool = False
    non_finite_values: int = 0
    has_expected_response: bool = False
    time_resolution_ns: int = 1
    tag_keys: tuple[str, ...] = field(default=())
