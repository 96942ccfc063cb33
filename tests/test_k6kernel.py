"""Tests for canarykit.k6kernel: which lines the block scanner accepts, what it
records for them, and its time and number parsers against pyarrow's cast and
Python's float()."""

from __future__ import annotations

import random
import struct

import numpy as np
import pyarrow as pa
import pytest

from canarykit import k6kernel
from canarykit.k6blocks import BLOCK_PADDING
from canarykit.k6kernel import parse_number, parse_time, same_bytes

POINT = (
    b'{"metric":"http_reqs","type":"Point","data":{"time":"2026-12-04T15:50:27.5Z",'
    b'"value":1,"tags":{"status":"200"}}}\n'
)
METRIC = (
    b'{"type":"Metric","data":{"name":"http_reqs","type":"counter",'
    b'"contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}\n'
)


def _scan(text: bytes, capacity: int = 1000) -> k6kernel.ScanResult:
    data = np.frombuffer(text + b"\0" * BLOCK_PADDING, dtype=np.uint8)
    return k6kernel.scan_block(data, len(text), capacity)


def _texts(text: bytes, spans: np.ndarray) -> list[bytes]:
    return [text[start:end] for start, end in spans]


def test_scan_block_records_fields() -> None:
    text = METRIC + POINT + b"\n" + POINT.replace(b'"value":1', b'"value":2.5')

    scan = _scan(text)

    status, points, lines, rows = scan[:4]
    name_id, time_ns, value, tag_id, name_spans, tag_spans, slow, metric = scan[4:]
    assert status == k6kernel.OK
    assert (points, lines, rows) == (2, 4, 3)
    assert _texts(text, name_spans) == [b"http_reqs"]
    assert _texts(text, tag_spans) == [b'{"status":"200"}']
    assert name_id[:2].tolist() == [0, 0]
    assert tag_id[:2].tolist() == [0, 0]
    assert time_ns[:2].tolist() == [1796399427_500_000_000] * 2
    assert value[:2].tolist() == [1.0, 2.5]
    assert len(slow) == 0
    assert metric.tolist() == [[1, 0, len(METRIC) - 1]]


def test_scan_block_point_without_tags() -> None:
    text = POINT.replace(b',"tags":{"status":"200"}', b"")

    scan = _scan(text)

    assert scan[0] == k6kernel.OK
    assert _texts(text, scan[9]) == [b""]


def test_scan_block_flags_inexact_number() -> None:
    text = POINT.replace(b'"value":1', b'"value":0.30000000000000004')

    scan = _scan(text)

    assert scan[0] == k6kernel.OK
    index, start, end = scan[10][0]
    assert index == 0
    assert text[start:end] == b"0.30000000000000004"
    assert np.isnan(scan[6][0])


def test_scan_block_interns_many_texts() -> None:
    """More names and tags texts than the first hash tables hold make them grow."""
    lines = []
    for index in range(3000):
        lines.append(
            POINT.replace(b"http_reqs", b"metric_%d" % (index % 70)).replace(
                b'"200"', b'"%d"' % index
            )
        )
    text = b"".join(lines * 2)

    scan = _scan(text, capacity=len(lines) * 2)

    assert scan[0] == k6kernel.OK
    name_spans, tag_spans = scan[8], scan[9]
    assert len(name_spans) == 70
    assert len(tag_spans) == 3000
    assert scan[4][: len(lines) * 2].tolist() == [i % 70 for i in range(3000)] * 2
    assert scan[7][: len(lines) * 2].tolist() == list(range(3000)) * 2


def test_scan_block_reports_capacity_exceeded() -> None:
    scan = _scan(POINT * 3, capacity=2)

    assert scan[0] == k6kernel.CAPACITY_EXCEEDED


@pytest.mark.parametrize(
    "line",
    [
        b"  \n",
        b'{"type":"Point","metric":"x","data":{"time":"2026-12-04T15:50:27Z","value":1}}\n',
        POINT.replace(b"http_reqs", b"http\\u005freqs"),
        POINT.replace(b'{"status":"200"}', b""),
        POINT.replace(b'"value":1', b'"value":NaN'),
        POINT.replace(b'"value":1', b'"value":"1"'),
        POINT.replace(b"2026-12-04T15:50:27.5Z", b"2026-12-04 15:50:27Z"),
        POINT.replace(b'"data":{', b'"data": {'),
        POINT.replace(b"}}}\n", b"}}} \n"),
    ],
)
def test_scan_block_rejects_other_shapes(line: bytes) -> None:
    scan = _scan(POINT + line + POINT)

    assert scan[0] == k6kernel.SHAPE_MISMATCH


PADDING = 64


def _padded(text: str) -> np.ndarray:
    """Return the text, a closing quote and padding, as the scanner reads a line."""
    raw = text.encode() + b'"' + b"\n" * PADDING
    return np.frombuffer(raw, dtype=np.uint8)


def _pyarrow_ns(text: str) -> int:
    parsed = pa.array([text]).cast(pa.timestamp("ns", "UTC"))
    return int(parsed.cast(pa.int64())[0].as_py())


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T15:50:27Z",
        "2026-12-04T15:50:27.3Z",
        "2026-12-04T15:50:27.306532527Z",
        "2026-12-04T15:50:27.30653Z",
        "2026-03-29T01:59:59.5+01:00",
        "2026-03-28T20:00:01-05:00",
        "2026-01-01T00:00:00+23:59",
        "2026-01-01T00:00:00-00:00",
        "2024-02-29T23:59:59.999999999Z",
        "2000-02-29T00:00:00Z",
        "1678-01-01T00:00:00Z",
        "2261-12-31T23:59:59.999999999Z",
        "1969-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
    ],
)
def test_parse_time_matches_pyarrow(text: str) -> None:
    data = _padded(text)

    time_ns, end = parse_time(data, 0)

    assert end == len(text)
    assert time_ns == _pyarrow_ns(text)


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00.1234567891Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00",
        "2026-01-01t00:00:00Z",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+0100",
        "1677-12-31T00:00:00Z",
        "2262-01-01T00:00:00Z",
        "yesterday",
    ],
)
def test_parse_time_rejects_other_text(text: str) -> None:
    _, end = parse_time(_padded(text), 0)

    assert end == -1


def _float_texts() -> list[str]:
    """Return number texts as Go's encoder writes float64 values, and harder ones."""
    generator = random.Random(20261204)
    texts = [
        "0",
        "-0",
        "1",
        "86",
        "4.340108",
        "0.000123",
        "1e5",
        "1E-5",
        "2.5e+3",
        "-7.25",
        "0.30000000000000004",
        "9007199254740993",
        "123456789012345678901234",
        "9999999999999999999",
        "9223372036854775808",
        "18446744073709551617.5",
        "1e999",
        "-1e-400",
        "1.7976931348623157e308",
        "5e-324",
    ]
    for _ in range(3000):
        bits = generator.getrandbits(64)
        value = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if np.isfinite(value):
            texts.append(repr(value).replace("+", ""))
        texts.append(f"{generator.uniform(0, 5000):.6f}".rstrip("0").rstrip("."))
        texts.append(str(generator.randrange(0, 10**12)))
    return texts


def test_parse_number_exact_or_flagged() -> None:
    exact = 0
    for text in _float_texts():
        data = np.frombuffer(text.encode() + b"}}\n" + b"\n" * PADDING, np.uint8)

        value, end, is_exact = parse_number(data, 0)

        assert end == len(text), text
        if is_exact:
            exact += 1
            expected = struct.pack("<d", float(text))
            assert struct.pack("<d", value) == expected, text
    # Most texts Go writes for k6 (durations in ms, counts) take the exact path.
    assert exact > 6000


@pytest.mark.parametrize(
    "text", ["01", ".5", "1.", "-", "NaN", "Infinity", "+1", "1e", "1e+", "-.5"]
)
def test_parse_number_rejects_non_json(text: str) -> None:
    data = np.frombuffer(text.encode() + b"}}\n" + b"\n" * PADDING, np.uint8)

    _, end, _ = parse_number(data, 0)

    assert end == -1


def test_same_bytes_every_length_and_offset() -> None:
    text = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789" * 2, np.uint8)
    other = text.copy()
    for length in range(0, 30):
        for offset in range(0, 5):
            assert same_bytes(text, offset, other, offset, length)
            if length:
                changed = other.copy()
                changed[offset + length - 1] ^= 1
                assert not same_bytes(text, offset, changed, offset, length)
