"""Tests for canarykit.stats on hand-written k6 output and hand-built frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canarykit.k6reader import read_k6_output
from canarykit.stats import (
    format_summary,
    is_expected,
    run_duration_s,
    scenario_requests,
    summarize,
    trend_stats,
    windowed_latency,
)

DATA = Path(__file__).parent / "data"


def _requests(
    times_s: list[float], durations_ms: list[float], **tags: list[object]
) -> pd.DataFrame:
    origin = pd.Timestamp("2026-12-04T15:50:00Z")
    frame = pd.DataFrame(
        {
            "time": [origin + pd.Timedelta(seconds=s) for s in times_s],
            "duration_ms": durations_ms,
            "failed": pd.array([False] * len(times_s), dtype="boolean"),
        }
    )
    for key, values in tags.items():
        frame[key] = pd.Categorical(values)
    return frame


def test_trend_stats_linear_percentiles() -> None:
    stats = trend_stats(np.arange(1.0, 11.0))

    assert stats["avg"] == 5.5
    assert stats["min"] == 1.0
    assert stats["max"] == 10.0
    assert stats["med"] == 5.5
    assert stats["p(90)"] == pytest.approx(9.1, rel=1e-12)
    assert stats["p(95)"] == pytest.approx(9.55, rel=1e-12)
    assert stats["p(99)"] == pytest.approx(9.91, rel=1e-12)


def test_trend_stats_skips_non_finite() -> None:
    stats = trend_stats([1.0, math.nan, math.inf, -math.inf, 3.0])

    assert stats["avg"] == 2.0
    assert stats["max"] == 3.0


def test_trend_stats_empty_is_nan() -> None:
    stats = trend_stats([])

    assert all(math.isnan(value) for value in stats.values())


def test_summarize_k6_conventions() -> None:
    metrics = summarize(read_k6_output(DATA / "requests.ndjson"))["metrics"]

    assert metrics["http_req_duration"]["avg"] == 4.375
    assert metrics["http_req_duration"]["med"] == 4.375
    assert metrics["http_req_duration{status:200}"]["max"] == 1.5
    # Rate: passes count non-zero samples, fails count zero samples.
    assert metrics["http_req_failed"] == {"passes": 1, "fails": 1, "value": 0.5}
    assert metrics["checks"]["passes"] == 1
    # Gauge: value is the last sample, not the maximum.
    assert metrics["vus"] == {"value": 2.0, "min": 2.0, "max": 3.0}


def test_summarize_counter_rate_uses_sample_span() -> None:
    output = read_k6_output(DATA / "requests.ndjson")
    metrics = summarize(output)["metrics"]

    # Samples run from 15:50:27.306532527 to 15:50:29.306532527.
    assert run_duration_s(output) == pytest.approx(2.0, rel=1e-12)
    assert metrics["http_reqs"] == {"count": 2, "rate": 1.0}
    assert isinstance(metrics["http_reqs"]["count"], int)
    assert metrics["iterations"]["rate"] == 0.5


def test_summarize_thresholds_from_metric_lines() -> None:
    metrics = summarize(read_k6_output(DATA / "requests.ndjson"))["metrics"]

    assert metrics["http_req_duration"]["thresholds"] == {
        "p(95)<500": False,
        "avg<1": True,
    }
    assert metrics["checks"]["thresholds"] == {"rate>0.9": True}
    assert metrics["iterations"]["thresholds"] == {"count>1": True}
    assert "thresholds" not in metrics["http_req_duration{status:200}"]


def test_summarize_empty_submetric_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "k6.json"
    path.write_text(
        '{"type":"Metric","data":{"name":"probe","type":"trend","contains":"time",'
        '"thresholds":[],"submetrics":[{"name":"probe{status:500}","tags":{"status":"500"}}]},'
        '"metric":"probe"}\n'
        '{"metric":"probe","type":"Point","data":{"time":"2026-12-04T15:50:27Z",'
        '"value":4,"tags":{"status":"200"}}}\n'
    )

    metrics = summarize(read_k6_output(path))["metrics"]

    assert metrics["probe"]["max"] == 4.0
    assert set(metrics["probe{status:500}"].values()) == {0}


def test_summarize_leaves_out_non_finite() -> None:
    metrics = summarize(read_k6_output(DATA / "nonfinite.ndjson"))["metrics"]

    assert metrics["probe"]["avg"] == 2.0
    assert metrics["probe"]["max"] == 3.0


def test_scenario_requests_drops_setup_teardown() -> None:
    requests = _requests(
        [0, 1, 2, 3], [1, 2, 3, 4], group=["::setup", "", "::checkout", "::teardown"]
    )

    kept = scenario_requests(requests)

    assert kept["group"].tolist() == ["", "::checkout"]


def test_is_expected_uses_tag() -> None:
    requests = _requests(
        [0, 1], [1, 1], expected_response=["true", "false"], status=["200", "200"]
    )

    expected = is_expected(requests)

    assert expected.tolist() == [True, False]
    assert expected.name == "expected_response"


def test_is_expected_falls_back_to_status() -> None:
    requests = _requests([0, 1, 2, 3], [1, 1, 1, 1], status=["200", "399", "404", "0"])

    expected = is_expected(requests)

    assert expected.tolist() == [True, True, False, False]
    assert expected.name == "status_200_399"


def test_is_expected_mixed_sources() -> None:
    requests = _requests(
        [0, 1], [1, 1], expected_response=["false", None], status=["200", "201"]
    )

    expected = is_expected(requests)

    assert expected.tolist() == [False, True]
    assert expected.name == "expected_response_or_status"


def test_windowed_latency_keeps_empty_windows() -> None:
    requests = _requests([0.5, 1.5, 2.0, 25.0], [10.0, 20.0, 30.0, 40.0])
    requests.loc[1, "failed"] = True

    windows = windowed_latency(requests, window_s=10)

    assert windows["requests"].tolist() == [3, 0, 1]
    assert windows["failed"].tolist() == [1, 0, 0]
    assert windows["rate_per_s"].tolist() == [0.3, 0.0, 0.1]
    assert windows["p50_ms"].iloc[0] == 20.0
    assert windows["p95_ms"].iloc[0] == pytest.approx(29.0, rel=1e-12)
    assert windows["avg_ms"].iloc[0] == 20.0
    assert math.isnan(windows["p99_ms"].iloc[1])
    assert windows["window_start"].iloc[2] == pd.Timestamp("2026-12-04T15:50:20Z")


def test_windowed_latency_empty_input() -> None:
    windows = windowed_latency(_requests([], []), window_s=10)

    assert len(windows) == 0
    assert "p95_ms" in windows.columns


def test_format_summary_lists_figures() -> None:
    summary = summarize(read_k6_output(DATA / "requests.ndjson"))

    text = format_summary(summary)

    lines = text.splitlines()
    assert lines[0].startswith("metric")
    assert any(
        line.startswith("http_req_duration ") and "p(95)=6.9625" in line
        for line in lines
    )
    assert any("threshold avg<1: crossed" in line for line in lines)
    assert any(line.startswith("vus ") and "value=2" in line for line in lines)
    assert format_summary({"metrics": {}}) == "no metrics"
