"""Tests for canarykit.k6scan: the scanner's output equals pyarrow's reader's on
varied k6-shaped files, and blocks it cannot read exactly fall back."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from canarykit.errors import InvalidK6OutputError
from canarykit.k6blocks import Block
from canarykit.k6reader import REQUEST_COLUMNS, read_k6_output
from canarykit.k6scan import read_k6_lines

OFFSETS = ["Z", "+01:00", "-05:00", "+05:30", "-00:00"]


def _varied_lines(count: int, seed: int) -> bytes:
    """Write k6-shaped lines with varied times, numbers, names and tags."""
    generator = random.Random(seed)
    lines = []
    for index in range(count):
        digits = generator.randrange(0, 10)
        fraction = f".{generator.randrange(10**digits):0{digits}d}" if digits else ""
        offset = OFFSETS[index % len(OFFSETS)]
        stamp = f"2026-12-{1 + index % 28:02d}T{index % 24:02d}:{index % 60:02d}:05"
        value: float | int = generator.choice(
            [
                generator.randrange(0, 10**6),
                round(generator.uniform(0, 5000), 6),
                generator.uniform(-1e-3, 1e300),
                generator.random() / 3,
            ]
        )
        tags = {"url": f"/r/{index % 300}", "note": 'café "q" <b>'}
        if index % 11 == 0:
            tags["release"] = "2026-12-04"
        metric = [*REQUEST_COLUMNS, "http_reqs", "vus", f"custom_{index % 40}"][
            index % 11
        ]
        if metric == "http_req_failed":
            value = index % 2
        point = {"time": stamp + fraction + offset, "value": value, "tags": tags}
        if index % 17 == 0:
            del point["tags"]
        record = {"metric": metric, "type": "Point", "data": point}
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def test_scanner_matches_json_reader(tmp_path: Path) -> None:
    text = _varied_lines(6000, seed=7)
    fast = tmp_path / "fast.json"
    fast.write_bytes(text)
    slow = tmp_path / "slow.json"
    # A whitespace-only line sends the block to pyarrow's JSON reader.
    slow.write_bytes(text + b"  \n")

    assert read_k6_lines(Block.from_bytes(text).data, len(text)) is not None
    by_scanner = read_k6_output(fast)
    by_reader = read_k6_output(slow)

    pd.testing.assert_frame_equal(by_scanner.requests, by_reader.requests)
    pd.testing.assert_frame_equal(by_scanner.samples, by_reader.samples)
    assert by_scanner.non_finite_values == by_reader.non_finite_values


def test_scanner_counts_blank_lines() -> None:
    point = _varied_lines(1, seed=1)
    text = b"\n" * 5000 + point + b"\n" * 3

    block = Block.from_bytes(text)
    points = read_k6_lines(block.data, block.size)

    assert points is not None
    assert points.lines == 5004
    assert points.rows == 1
    assert len(points.value) == 1


def test_scanner_inexact_number_parsed_by_float() -> None:
    text = (
        b'{"metric":"probe","type":"Point","data":{"time":"2026-12-04T15:50:27Z",'
        b'"value":0.30000000000000004}}\n'
    )

    block = Block.from_bytes(text)
    points = read_k6_lines(block.data, block.size)

    assert points is not None
    assert points.value.tolist() == [0.30000000000000004]


def test_scanner_rejects_invalid_utf8_name() -> None:
    text = (
        b'{"metric":"pr\xffbe","type":"Point","data":{"time":"2026-12-04T15:50:27Z",'
        b'"value":1}}\n'
    )

    block = Block.from_bytes(text)

    assert read_k6_lines(block.data, block.size) is None


def test_read_extra_data_key_falls_back(tmp_path: Path) -> None:
    """The scanner takes `{"a":"b"},"extra":1` as the tags text; json.loads rejects
    it, so pyarrow's reader reads the block and keeps the tags."""
    good = _varied_lines(3, seed=2)
    extra = (
        b'{"metric":"probe","type":"Point","data":{"time":"2026-12-04T15:50:27Z",'
        b'"value":1,"tags":{"a":"b"},"extra":1}}\n'
    )
    path = tmp_path / "extra.json"
    path.write_bytes(good + extra)

    samples = read_k6_output(path).samples

    probe = samples[samples["metric"] == "probe"]
    assert probe["a"].tolist() == ["b"]
    assert probe["value"].tolist() == [1.0]


def test_read_broken_metric_line_names_line(tmp_path: Path) -> None:
    good = _varied_lines(2, seed=4)
    path = tmp_path / "bad.json"
    path.write_bytes(good + b'{"type":"Metric","data":{"name":"x",\n')

    with pytest.raises(InvalidK6OutputError, match="line 3:"):
        read_k6_output(path)
