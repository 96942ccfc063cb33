"""Tests for canarykit.charts: figures from window aggregates and PNG export."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canarykit import charts, stats
from canarykit.analysis import SAMPLE_K6_PATH
from canarykit.errors import InvalidInputError
from canarykit.k6reader import read_k6_output

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _windows(p95_ms: list[float]) -> pd.DataFrame:
    count = len(p95_ms)
    return pd.DataFrame(
        {
            "window_start": pd.date_range(
                "2026-12-04T15:00:00Z", periods=count, freq="10s"
            ),
            "requests": [100] * count,
            "failed": ([0, 5] + [0] * count)[:count],
            "rate_per_s": [10.0] * count,
            "p50_ms": [value / 2 for value in p95_ms],
            "p95_ms": p95_ms,
            "p99_ms": [value * 1.5 for value in p95_ms],
            "avg_ms": [value / 2 for value in p95_ms],
        }
    )


def test_latency_timeline_traces_follow_windows() -> None:
    windows = _windows([40.0, 150.0, 60.0])
    figure = charts.latency_timeline(windows, slo_p95_ms=120, window_s=10)
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name) == ["P50", "P95", "P99"]
    assert list(by_name["P95"].y) == [40.0, 150.0, 60.0]
    assert list(by_name["P99"].y) == [60.0, 225.0, 90.0]


def test_latency_timeline_draws_slo_line() -> None:
    figure = charts.latency_timeline(
        _windows([40.0, 50.0]), slo_p95_ms=120, window_s=10
    )
    lines = [shape for shape in figure.layout.shapes if shape.type == "line"]
    assert [(line.y0, line.y1) for line in lines] == [(120, 120)]


def test_latency_timeline_keeps_empty_window_as_gap() -> None:
    windows = _windows([40.0, float("nan"), 60.0])
    figure = charts.latency_timeline(windows, slo_p95_ms=120, window_s=10)
    p95 = next(trace for trace in figure.data if trace.name == "P95")
    assert np.isnan(p95.y[1])
    assert p95.connectgaps is False


def test_request_rate_timeline_failed_per_second() -> None:
    figure = charts.request_rate_timeline(
        _windows([40.0, 50.0]), target_rate_per_s=10, window_s=10
    )
    failed = next(trace for trace in figure.data if trace.name == "failed requests/s")
    # 5 failed of 100 requests in a 10 s window at 10 requests/s is 0.5 per second.
    assert list(failed.y) == [0.0, 0.5]


def test_request_rate_timeline_target_line() -> None:
    with_target = charts.request_rate_timeline(
        _windows([1.0]), target_rate_per_s=250, window_s=10
    )
    without = charts.request_rate_timeline(
        _windows([1.0]), target_rate_per_s=None, window_s=10
    )
    assert [shape.y0 for shape in with_target.layout.shapes] == [250]
    assert len(without.layout.shapes) == 0


def test_charts_reject_raw_requests() -> None:
    raw = pd.DataFrame({"time": [pd.Timestamp.now(tz="UTC")], "duration_ms": [5.0]})
    with pytest.raises(InvalidInputError, match="windowed_latency"):
        charts.latency_timeline(raw, slo_p95_ms=120, window_s=10)


def test_charts_from_sample_stay_small() -> None:
    k6 = read_k6_output(SAMPLE_K6_PATH)
    requests = stats.scenario_requests(k6.requests)
    windows = stats.windowed_latency(requests, window_s=10)
    figure = charts.latency_timeline(windows, slo_p95_ms=120, window_s=10)
    assert len(requests) > 900
    assert all(len(trace.x) == len(windows) for trace in figure.data)
    assert len(windows) <= 6


def test_find_chrome_honours_browser_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-chrome"
    monkeypatch.setenv("BROWSER_PATH", str(missing))
    assert charts.find_chrome() is None


def test_write_png_files_without_chrome_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    figures = {
        "latency_timeline": charts.latency_timeline(
            _windows([1.0]), slo_p95_ms=120, window_s=10
        ),
        "rate": charts.request_rate_timeline(
            _windows([1.0]), target_rate_per_s=1, window_s=10
        ),
    }
    with caplog.at_level(logging.WARNING, logger="canarykit.charts"):
        written = charts.write_png_files(figures, tmp_path / "charts")
    assert written == {}
    assert len(caplog.records) == 1
    assert "no Chrome or Chromium" in caplog.records[0].getMessage()


@pytest.mark.browser
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed"
)
def test_write_png_files_with_chromium(tmp_path: Path) -> None:
    figures = {
        "latency_timeline": charts.latency_timeline(
            _windows([40.0, 150.0]), slo_p95_ms=120, window_s=10
        ),
        "request_rate_timeline": charts.request_rate_timeline(
            _windows([40.0, 150.0]), target_rate_per_s=10, window_s=10
        ),
    }
    written = charts.write_png_files(figures, tmp_path / "charts")
    assert sorted(written) == ["latency_timeline", "request_rate_timeline"]
    for path in written.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 10_000


def test_chart_titles_state_window_length() -> None:
    latency = charts.latency_timeline(_windows([1.0]), slo_p95_ms=120, window_s=30)
    rate = charts.request_rate_timeline(
        _windows([1.0]), target_rate_per_s=None, window_s=30
    )
    assert "per 30 s window" in latency.layout.title.text
    assert "per 30 s window" in rate.layout.title.text


def test_latency_timeline_log_axis_for_sub_ms() -> None:
    figure = charts.latency_timeline(
        _windows([0.3, 0.4, 0.5]), slo_p95_ms=120, window_s=10
    )
    low, high = figure.layout.yaxis.range
    assert figure.layout.yaxis.type == "log"
    # The smallest line (P50 0.15 ms) and the SLO line both lie inside the range.
    assert 10**low < 0.15
    assert 10**high > 120


def test_latency_timeline_linear_axis_reaches_slo() -> None:
    figure = charts.latency_timeline(
        _windows([40.0, 150.0]), slo_p95_ms=120, window_s=10
    )
    low, high = figure.layout.yaxis.range
    assert figure.layout.yaxis.type in (None, "linear", "-")
    assert low == 0
    assert high > 225  # P99 of the second window is 150 x 1.5 ms


def test_add_window_coverage_measures_partial_windows() -> None:
    windows = _windows([1.0, 1.0, 1.0])
    times = pd.Series(
        pd.to_datetime(["2026-12-04T15:00:00.5Z", "2026-12-04T15:00:20.5Z"])
    )
    covered = charts.add_window_coverage(windows, times, window_s=10)
    assert covered["covered_s"].tolist() == pytest.approx([9.5, 10.0, 0.5])


def test_request_rate_timeline_leaves_out_partial_window() -> None:
    windows = _windows([1.0, 1.0, 1.0])
    windows["covered_s"] = [10.0, 10.0, 0.5]
    windows.loc[2, "rate_per_s"] = 0.5
    figure = charts.request_rate_timeline(windows, target_rate_per_s=10, window_s=10)
    assert list(figure.data[0].y) == [10.0, 10.0]
    assert "1 partial window(s) left out" in figure.layout.title.text


def test_request_rate_timeline_run_shorter_than_window() -> None:
    windows = _windows([1.0])
    windows["covered_s"] = [4.0]
    windows["requests"] = [80]
    figure = charts.request_rate_timeline(windows, target_rate_per_s=20, window_s=10)
    assert list(figure.data[0].y) == [20.0]
    assert "rate over the seconds covered" in figure.layout.title.text
