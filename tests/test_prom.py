"""Tests of prom: parsing scrapes from the target, malformed lines, samples on disk."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from canarykit.prom import format_labels, load_metric_samples, parse_exposition

StartTarget = Callable[..., str]

TEXT_WITH_BAD_LINE = """\
# HELP jobs_total Jobs done.
# TYPE jobs_total counter
jobs_total{queue="a"} 3
jobs_total{queue="b"} 4
this line is not a sample
# TYPE temperature_celsius gauge
temperature_celsius 21.5
"""


def test_parse_target_text(rehearsal_target: StartTarget) -> None:
    text = httpx.get(f"{rehearsal_target()}/metrics").text

    scrape = parse_exposition(text)

    assert scrape.errors == []
    start = scrape.value("process_start_time_seconds")
    assert start is not None and start > 1e9
    assert scrape.value("db_pool_connections_max", {"pool": "main"}) == 100
    assert scrape.value("http_requests_total", {"route": "/health"}) == 1
    assert scrape.value("no_such_metric") is None


def test_parse_target_openmetrics(rehearsal_target: StartTarget) -> None:
    response = httpx.get(
        f"{rehearsal_target()}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )

    scrape = parse_exposition(response.text)

    assert response.text.rstrip().endswith("# EOF")
    assert scrape.errors == []
    assert scrape.value("db_pool_waiters", {"pool": "main"}) == 0


def test_parse_keeps_samples_around_bad_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="canarykit.prom"):
        scrape = parse_exposition(TEXT_WITH_BAD_LINE)

    assert [error.line_no for error in scrape.errors] == [5]
    assert scrape.errors[0].line == "this line is not a sample"
    assert scrape.value("jobs_total", {"queue": "b"}) == 4
    assert scrape.value("temperature_celsius") == 21.5
    assert len(scrape.samples) == 3
    assert "line 5" in caplog.text


def test_parse_openmetrics_bad_line() -> None:
    text = "# TYPE up gauge\nup 1\nup{job= 2\n# TYPE ok gauge\nok 7\n# EOF\n"

    scrape = parse_exposition(text)

    assert [error.line_no for error in scrape.errors] == [3]
    assert scrape.value("up") == 1
    assert scrape.value("ok") == 7


def test_scrape_value_label_subset() -> None:
    scrape = parse_exposition('x{a="1",b="2"} 5\nx{a="3",b="2"} 6\n')

    assert scrape.value("x", {"a": "3"}) == 6
    assert scrape.value("x", {"b": "2"}) == 5
    assert scrape.value("x", {"a": "9"}) is None
    assert scrape.value("missing") is None


def test_format_labels_sorted_and_escaped() -> None:
    labels = {"route": "/a", "method": 'say "hi"\\'}

    assert format_labels(labels) == 'method="say \\"hi\\"\\\\",route="/a"'
    assert format_labels({}) == ""


def _write_samples(run_dir: Path, lines: list[str]) -> None:
    samples = run_dir / "samples"
    samples.mkdir(parents=True)
    (samples / "metrics.ndjson").write_text("\n".join(lines), encoding="utf-8")


def test_load_metric_samples_long_form(tmp_path: Path) -> None:
    ok = {"ok": True, "status": 200, "error": None}
    _write_samples(
        tmp_path,
        [
            json.dumps({"time": "2025-01-01T00:00:00+00:00", "elapsed_s": 0.0, **ok,
                        "text": 'pool_waiters{pool="main"} 2\nup 1\n'}),
            json.dumps({"time": "2025-01-01T00:00:05+00:00", "elapsed_s": 5.0,
                        "ok": False, "status": None, "error": "refused", "text": None}),
            json.dumps({"time": "2025-01-01T00:00:10+00:00", "elapsed_s": 10.0, **ok,
                        "text": "up 0\n"}),
            '{"time": "2025-01-01T00:00:15+00:00", "elapsed_s": 15.0, "ok": tr',
        ],
    )  # fmt: skip

    frame = load_metric_samples(tmp_path)

    assert list(frame.columns) == ["time", "elapsed_s", "metric", "labels", "value"]
    assert len(frame) == 3
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["metric"].dtype == "category"
    assert frame["labels"].tolist() == ['pool="main"', "", ""]
    assert frame["value"].tolist() == [2.0, 1.0, 0.0]
    assert frame["elapsed_s"].tolist() == [0.0, 0.0, 10.0]


def test_load_metric_samples_missing_file(tmp_path: Path) -> None:
    frame = load_metric_samples(tmp_path)

    assert frame.empty
    assert list(frame.columns) == ["time", "elapsed_s", "metric", "labels", "value"]
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
