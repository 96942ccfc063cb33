"""Scan blocks of lines in the exact shape k6 writes, in one compiled pass.

k6 1.1.0 writes every Point as
  {"metric":"NAME","type":"Point","data":{"time":"TIME","value":NUMBER,"tags":TAGS}}
with keys in this order. `read_k6_lines` reads a block whose non-blank lines all
have this shape (Metric lines aside) with a numba kernel that walks the bytes once.
It finds each line's fields, parses the RFC 3339 time to int64 nanoseconds and the
number to float64, and numbers distinct metric names and tags texts. Tags texts are
then parsed by json.loads once per distinct text. Any other block, or any line
whose time or number falls outside the subset parsed here, sends the block to
pyarrow's reader, so the result never differs from the other readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canarykit import k6kernel


@dataclass
class LinePoints:
    """Points of one block read by the scanner, not yet globally encoded."""

    names: list[str]
    name_index: np.ndarray
    time_ns: np.ndarray
    value: np.ndarray
    tag_texts: list[str]
    tag_index: np.ndarray
    metric_lines: list[tuple[int, bytes]]  # (line number within the block, text)
    lines: int
    rows: int


# Shortest Point line k6 can write, with a one-letter name, no fraction, no tags.
_MIN_POINT_BYTES = 72


def read_k6_lines(data: np.ndarray, size: int) -> LinePoints | None:
    """Read a block of k6-shaped lines; None when any line has another shape.

    `data[:size]` contains whole lines and is followed by at least
    `k6blocks.BLOCK_PADDING` readable bytes.
    """
    capacity = size // _MIN_POINT_BYTES + 64
    scan = k6kernel.scan_block(data, size, capacity)
    if scan[0] == k6kernel.CAPACITY_EXCEEDED:
        # Blank or short Metric lines only; count lines to size the arrays exactly.
        capacity = int(np.count_nonzero(data[:size] == 10)) + 1
        scan = k6kernel.scan_block(data, size, capacity)
    if scan[0] != k6kernel.OK:
        return None
    return _line_points(data, scan)


def _line_points(data: np.ndarray, scan: k6kernel.ScanResult) -> LinePoints | None:
    (
        _,
        points,
        lines,
        rows,
        name_id,
        time_ns,
        value,
        tag_id,
        name_spans,
        tag_spans,
        slow_values,
        metric_spans,
    ) = scan
    if not points and not len(metric_spans):
        return None
    try:
        names = _texts(data, name_spans)
        tag_texts = _texts(data, tag_spans)
    except UnicodeDecodeError:
        return None
    value = value[:points]
    for index, start, end in slow_values:
        # Numbers past the exact float64 fast path: Python's float() rounds
        # correctly, as the other readers do.
        value[index] = float(data[start:end].tobytes())
    return LinePoints(
        names=names,
        name_index=name_id[:points],
        time_ns=time_ns[:points],
        value=value,
        tag_texts=tag_texts,
        tag_index=tag_id[:points],
        metric_lines=[
            (int(line_no), data[start:end].tobytes())
            for line_no, start, end in metric_spans
        ],
        lines=int(lines),
        rows=int(rows),
    )


def _texts(data: np.ndarray, spans: np.ndarray) -> list[str]:
    return [data[start:end].tobytes().decode("utf-8") for start, end in spans]
