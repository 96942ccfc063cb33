"""Tests for canarykit.k6reader on small hand-written k6 output files."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canarykit import k6reader
from canarykit.errors import InvalidK6OutputError
from canarykit.k6reader import read_k6_output

DATA = Path(__file__).parent / "data"
TIMING_COLUMNS = [
    "duration_ms",
    "blocked_ms",
    "connecting_ms",
    "tls_handshaking_ms",
    "sending_ms",
    "waiting_ms",
    "receiving_ms",
]


def _request_lines(count: int, *, start_s: int = 1796399427) -> bytes:
    """Write lines in k6's exact shape for `count` requests, nine lines each."""
    lines = []
    for index in range(count):
        stamp = f"2026-12-04T15:{(index // 60) % 60:02d}:{index % 60:02d}.{index:09d}Z"
        tags = {"group": "", "method": "GET", "status": "200", "url": f"/r/{index % 7}"}
        for metric, value in [
            ("http_reqs", 1),
            *[(m, index / 10) for m in k6reader.REQUEST_COLUMNS],
        ]:
            point = {"time": stamp, "value": value, "tags": tags}
            if metric == "http_req_failed":
                point["value"] = index % 2
            record = {"metric": metric, "type": "Point", "data": point}
            lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def test_read_requests_columns_and_dtypes() -> None:
    output = read_k6_output(DATA / "requests.ndjson")
    requests = output.requests

    assert len(requests) == 2
    assert str(requests["time"].dtype) == "datetime64[ns, UTC]"
    for column in TIMING_COLUMNS:
        assert requests[column].dtype == np.float64
    assert str(requests["failed"].dtype) == "boolean"
    for column in ["status", "expected_response", "method", "url", "group", "tenant"]:
        assert isinstance(requests[column].dtype, pd.CategoricalDtype), column
    assert requests["duration_ms"].tolist() == [1.5, 7.25]
    assert requests["failed"].tolist() == [False, True]
    assert math.isnan(requests["blocked_ms"].iloc[0])


def test_read_decodes_escapes_and_non_ascii() -> None:
    requests = read_k6_output(DATA / "requests.ndjson").requests

    assert requests["url"].iloc[0] == "http://127.0.0.1:8080/search?q=<b>&x=1"
    assert requests["url"].iloc[1] == "http://127.0.0.1:8080/café"
    assert requests["name"].iloc[1] == "café/commande"
    assert requests["tenant"].iloc[1] == "zürich"
    assert pd.isna(requests["tenant"].iloc[0])


def test_read_accepts_key_order_and_unknown_keys() -> None:
    requests = read_k6_output(DATA / "requests.ndjson").requests

    # The second request's duration line lists data before type and metric, and
    # its http_req_failed line carries metadata, tainted and sub.
    assert requests["duration_ms"].iloc[1] == 7.25
    assert requests["failed"].iloc[1]


def test_read_counts_lines_and_blank_lines() -> None:
    output = read_k6_output(DATA / "requests.ndjson")

    assert output.lines_read == 19
    assert output.blank_lines == 2
    assert output.dropped_lines == 0
    assert not output.is_truncated
    assert output.has_expected_response


def test_read_samples_long_form_with_null_tags() -> None:
    samples = read_k6_output(DATA / "requests.ndjson").samples

    assert sorted(set(samples["metric"].astype(str))) == ["checks", "iterations", "vus"]
    vus = samples[samples["metric"] == "vus"]
    assert vus["value"].tolist() == [3.0, 2.0]
    assert vus["scenario"].isna().all()
    assert samples.loc[samples["metric"] == "iterations", "group"].iloc[0] == ""
    assert isinstance(samples["check"].dtype, pd.CategoricalDtype)


def test_read_metric_definitions() -> None:
    metrics = read_k6_output(DATA / "requests.ndjson").metrics

    duration = metrics["http_req_duration"]
    assert duration.type == "trend"
    assert duration.contains == "time"
    assert duration.thresholds == ("p(95)<500", "avg<1")
    assert duration.submetrics == (
        ("http_req_duration{status:200}", {"status": "200"}),
    )
    assert metrics["vus"].type == "gauge"
    assert metrics["checks"].type == "rate"


def test_read_time_formats_become_utc() -> None:
    samples = read_k6_output(DATA / "times.ndjson").samples
    raw = [
        json.loads(line)["data"]["time"]
        for line in (DATA / "times.ndjson").read_text().splitlines()[1:]
    ]

    assert len(samples) == len(raw)
    for text, parsed in zip(raw, samples["time"], strict=True):
        assert parsed == pd.Timestamp(text).tz_convert("UTC"), text
    assert samples["time"].iloc[9].value % 1_000_000_000 == 123456789
    # 01:59:59.5+01:00 and 03:00:00.5+02:00 are one second apart across the DST switch.
    gap = samples["time"].iloc[11] - samples["time"].iloc[10]
    assert gap == pd.Timedelta(seconds=1)


def test_read_non_finite_values_counted() -> None:
    output = read_k6_output(DATA / "nonfinite.ndjson")
    values = output.samples["value"]

    assert output.non_finite_values == 4
    assert values.isna().sum() == 4
    assert values.dropna().tolist() == [1.0, 3.0]


def test_read_truncated_last_line_dropped(tmp_path: Path) -> None:
    text = (DATA / "requests.ndjson").read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(text[:-40])

    output = read_k6_output(path)

    assert output.is_truncated
    assert output.dropped_lines == 1
    assert output.lines_read == 18
    assert len(output.requests) == 2
    assert (output.samples["metric"] == "checks").sum() == 1


def test_read_unterminated_complete_line_kept(tmp_path: Path) -> None:
    path = tmp_path / "no-newline.json"
    path.write_bytes((DATA / "requests.ndjson").read_bytes().rstrip(b"\n"))

    output = read_k6_output(path)

    assert not output.is_truncated
    assert output.dropped_lines == 0
    assert (output.samples["metric"] == "checks").sum() == 2


def test_read_gzip_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "k6-output.json"
    path.write_bytes(gzip.compress((DATA / "requests.ndjson").read_bytes()))

    output = read_k6_output(path)
    plain = read_k6_output(DATA / "requests.ndjson")

    assert not output.is_truncated
    pd.testing.assert_frame_equal(output.requests, plain.requests)
    pd.testing.assert_frame_equal(output.samples, plain.samples)


def test_read_gzip_ended_early_keeps_lines(tmp_path: Path) -> None:
    data = _request_lines(400)
    compressed = gzip.compress(data)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(compressed[: len(compressed) // 2])

    output = read_k6_output(path)

    assert output.is_truncated
    assert 0 < len(output.requests) < 400
    assert output.lines_read + output.dropped_lines > 0
    assert output.requests["duration_ms"].notna().sum() >= len(output.requests) - 1


def test_read_request_split_across_blocks(tmp_path: Path) -> None:
    data = _request_lines(20_000)
    repeats = k6reader.BLOCK_BYTES // len(data) + 2
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        for _ in range(repeats):
            handle.write(data)

    output = read_k6_output(path)

    assert len(output.requests) == 20_000 * repeats
    assert output.requests["duration_ms"].notna().all()
    assert output.requests["failed"].notna().all()
    assert len(output.samples) == 0


def test_read_fallback_matches_fast_path(tmp_path: Path) -> None:
    forced = tmp_path / "forced.json"
    huge = (
        b'{"metric":"probe","type":"Point",'
        b'"data":{"time":"2026-12-04T15:50:31Z","value":1e999}}\n'
    )
    forced.write_bytes((DATA / "requests.ndjson").read_bytes() + huge)

    fast = read_k6_output(DATA / "requests.ndjson")
    by_line = read_k6_output(forced)

    pd.testing.assert_frame_equal(fast.requests, by_line.requests)
    assert by_line.non_finite_values == 1


def test_read_date_like_tag_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "date-tag.json"
    line = (
        '{"metric":"probe","type":"Point","data":{"time":"2026-12-04T15:50:31Z",'
        '"value":1,"tags":{"release":"2026-12-04"}}}\n'
    )
    path.write_text(line * 3)

    samples = read_k6_output(path).samples

    assert samples["release"].tolist() == ["2026-12-04"] * 3


def test_read_progress_reports_file_size(tmp_path: Path) -> None:
    path = tmp_path / "k6.json"
    path.write_bytes(_request_lines(50))
    calls: list[tuple[int, int]] = []

    read_k6_output(path, progress=lambda done, total: calls.append((done, total)))

    assert calls
    assert calls[-1] == (path.stat().st_size, path.stat().st_size)


def test_read_csv_output() -> None:
    output = read_k6_output(DATA / "requests.csv")
    requests = output.requests

    assert output.format == "csv"
    assert len(requests) == 2
    assert requests["time"].iloc[1] == pd.Timestamp(1796399428, unit="s", tz="UTC")
    assert requests["duration_ms"].tolist() == [1.5, 7.25]
    assert requests["failed"].tolist() == [False, True]
    assert requests["tenant"].iloc[1] == "zürich"
    assert output.metrics["http_req_duration"].type == "trend"
    assert output.time_resolution_ns == 1_000_000_000


def test_read_csv_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes((DATA / "requests.csv").read_bytes()[:-20])

    output = read_k6_output(path)

    assert output.is_truncated
    assert output.dropped_lines == 1
    assert len(output.requests) == 2
    assert len(output.samples) == 0


@pytest.mark.parametrize(
    ("content", "line_no", "excerpt"),
    [
        (b'[{"type":"Point"}]\n', 1, "[{"),
        (b'{\n  "type": "Point",\n  "metric": "x"\n}\n', 1, "{"),
        (
            b'{\n  "metric": "http_reqs",\n  "type": "Point",\n  "data": {"time": '
            b'"2026-12-04T15:46:45Z", "value": 1, "tags": {}}\n}\n',
            1,
            "{",
        ),
        (b"time,latency_ms\n2026-12-04,3\n", 1, "time,latency_ms"),
        (b"\x00\x9f\x92\x96binary\xff\n", 1, "binary"),
        (
            b'{"type":"Metric","data":{"name":"x","type":"trend"}}\nnot json\n',
            2,
            "not json",
        ),
        (
            b'{"type":"Point","metric":"x","data":{"time":"t","value":"1"}}\n',
            1,
            "Point",
        ),
        (b'{"type":"Sample","metric":"x","data":{}}\n', 1, "Sample"),
        (
            b'{"type":"Point","metric":"x","data":{"time":"yesterday","value":1}}\n',
            1,
            "yesterday",
        ),
    ],
)
def test_read_invalid_file_names_line(
    tmp_path: Path, content: bytes, line_no: int, excerpt: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)

    with pytest.raises(InvalidK6OutputError) as caught:
        read_k6_output(path)

    message = str(caught.value)
    assert str(path) in message
    assert f"line {line_no}:" in message
    assert excerpt in message
    assert "--out json=FILE" in message


def test_read_empty_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"\n  \n")

    with pytest.raises(InvalidK6OutputError, match="empty"):
        read_k6_output(path)


def test_read_k6_lines_match_json_reader(tmp_path: Path) -> None:
    """Lines in k6's own shape take the vectorized path; compare with pyarrow's."""
    text = (DATA / "k6_v1.1.0.ndjson").read_bytes()
    odd = tmp_path / "odd.json"
    # A whitespace-only line sends the block to pyarrow's JSON reader.
    odd.write_bytes(text + b"  \n")

    vectorized = read_k6_output(DATA / "k6_v1.1.0.ndjson")
    by_reader = read_k6_output(odd)

    expected_requests = text.count(b'"metric":"http_reqs","type":"Point"')
    assert len(vectorized.requests) == expected_requests
    pd.testing.assert_frame_equal(vectorized.requests, by_reader.requests)
    pd.testing.assert_frame_equal(vectorized.samples, by_reader.samples)
    assert vectorized.metrics == by_reader.metrics
    assert by_reader.blank_lines == 1
    assert vectorized.blank_lines == 0
    assert vectorized.requests["name"].iloc[-1] == "héllo"
    assert "<b>&c=1" in vectorized.requests["url"].iloc[0]


def test_read_k6_lines_decode_escaped_tags(tmp_path: Path) -> None:
    path = tmp_path / "k6.json"
    line = (
        '{"metric":"iterations","type":"Point","data":{"time":"2026-12-04T15:50:27Z",'
        '"value":1,"tags":{"note":"\\u003cq\\u003e \\"x\\" caf\\u00e9"}}}\n'
    )
    path.write_text(line * 2)

    samples = read_k6_output(path).samples

    assert samples["note"].tolist() == ['<q> "x" café'] * 2
