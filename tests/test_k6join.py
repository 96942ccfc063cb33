"""Tests for canarykit.k6join and the request join in canarykit.k6requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from canarykit.k6join import join_by_position
from canarykit.k6reader import read_k6_output

NO_COLUMN = -1


def _line(metric: str, second: int, value: float, url: str) -> str:
    point = {
        "time": f"2026-12-04T15:50:{second:02d}Z",
        "value": value,
        "tags": {"url": url},
    }
    record = {"metric": metric, "type": "Point", "data": point}
    return json.dumps(record, separators=(",", ":"))


def test_join_by_position_fills_first_match() -> None:
    # Codes: 0 http_reqs, 1 http_req_duration (column 0), 2 vus (no column).
    metric = np.array([0, 1, 1, 2, 0, 1], dtype=np.int32)
    time_ns = np.array([5, 5, 5, 5, 7, 8], dtype=np.int64)
    tagset = np.array([1, 1, 1, 0, 2, 2], dtype=np.int32)
    value = np.array([1.0, 10.0, 11.0, 3.0, 1.0, 12.0])
    column_of = np.array([NO_COLUMN, 0, NO_COLUMN], dtype=np.int64)

    rows, values, joined, unjoined = join_by_position(
        metric, time_ns, tagset, value, 0, column_of, 1
    )

    assert rows.tolist() == [0, 4]
    assert values[0, 0] == 10.0
    assert np.isnan(values[0, 1])
    assert joined.tolist() == [True, True, False, False, True, False]
    # The second duration of request 0 and the one whose time differs.
    assert unjoined.tolist() == [2]


def test_read_joins_out_of_order_by_key(tmp_path: Path) -> None:
    lines = [
        _line("http_reqs", 1, 1, "/a"),
        _line("http_reqs", 2, 1, "/b"),
        _line("http_req_duration", 2, 7.5, "/b"),
        # Written after request /b's: joined to /a on (time, tags).
        _line("http_req_duration", 1, 3.25, "/a"),
        # A second duration for /b: no request is left, so it stays a sample.
        _line("http_req_duration", 2, 9.0, "/b"),
    ]
    path = tmp_path / "k6.json"
    path.write_text("\n".join(lines) + "\n")

    output = read_k6_output(path)

    assert output.requests["url"].tolist() == ["/a", "/b"]
    assert output.requests["duration_ms"].tolist() == [3.25, 7.5]
    assert output.samples["value"].tolist() == [9.0]
    assert output.samples["metric"].tolist() == ["http_req_duration"]


def test_read_timing_without_requests_stays_sample(tmp_path: Path) -> None:
    path = tmp_path / "k6.json"
    path.write_text(_line("http_req_duration", 1, 2.0, "/a") + "\n")

    output = read_k6_output(path)

    assert len(output.requests) == 0
    assert output.samples["value"].tolist() == [2.0]
