"""Read JSON blocks that the scanner rejects: pyarrow's reader, then line by line.

pyarrow's JSON reader takes blocks in any key order. The standard library's json
module reads a block line by line when pyarrow rejects it, and names the bad line
in the error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from canarykit.k6points import (
    Accumulator,
    Points,
    add_definition,
    empty_points,
    invalid_line_error,
)

_POINT_SCHEMA = pa.schema(
    [
        ("metric", pa.string()),
        ("type", pa.string()),
        ("data", pa.struct([("time", pa.string()), ("value", pa.float64())])),
    ]
)
_PARSE_OPTIONS = pajson.ParseOptions(
    explicit_schema=_POINT_SCHEMA, unexpected_field_behavior="infer"
)


class FallbackNeededError(Exception):
    """The fast path cannot read this block exactly; parse it line by line."""


def parse_json_block(
    path: Path, acc: Accumulator, block: bytes, first_line: int
) -> tuple[Points, int]:
    """Parse a JSON block; return its points and the count of non-blank lines."""
    try:
        points_block, metric_lines = _split_metric_lines(block)
        for line in metric_lines:
            add_definition(path, acc, json.loads(line), first_line)
        table = pajson.read_json(
            pa.BufferReader(points_block), parse_options=_PARSE_OPTIONS
        )
        # pyarrow also accepts objects spread over several lines, which k6 never
        # writes; the line-by-line reader then names the first such line.
        if table.num_rows != _count_nonblank_lines(points_block):
            raise FallbackNeededError("not one JSON object per line")
        points = _points_from_table(table)
        return points, table.num_rows + len(metric_lines)
    except (pa.ArrowInvalid, pa.ArrowTypeError, FallbackNeededError, ValueError):
        return _json_block_by_line(path, acc, block, first_line)


def _count_nonblank_lines(block: bytes) -> int:
    return sum(1 for line in block.split(b"\n") if line.strip())


def _split_metric_lines(block: bytes) -> tuple[bytes, list[bytes]]:
    """Cut k6's Metric lines (a few per file) out of a block of Point lines."""
    if b'"type":"Metric"' not in block:
        return block, []
    kept: list[bytes] = []
    metric_lines: list[bytes] = []
    start = 0
    position = block.find(b'"type":"Metric"')
    while position >= 0:
        line_start = block.rfind(b"\n", 0, position) + 1
        line_end = block.find(b"\n", position) + 1 or len(block)
        kept.append(block[start:line_start])
        metric_lines.append(block[line_start:line_end])
        start = line_end
        position = block.find(b'"type":"Metric"', start)
    kept.append(block[start:])
    return b"".join(kept), metric_lines


def _points_from_table(table: pa.Table) -> Points:
    if table.num_rows == 0:
        return empty_points()
    kinds = table.column("type")
    if kinds.null_count or not pc.all(pc.equal(kinds, "Point")).as_py():
        raise FallbackNeededError
    data = table.column("data").combine_chunks()
    metric = table.column("metric").combine_chunks()
    value = data.field("value")
    if metric.null_count or data.null_count or value.null_count:
        raise FallbackNeededError
    return Points(
        metric=metric,
        time_ns=parse_times(data.field("time")),
        value=value.to_numpy(zero_copy_only=False),
        tags=_tags_from_struct(data),
    )


def _tags_from_struct(data: pa.StructArray) -> dict[str, pa.Array]:
    if data.type.get_field_index("tags") < 0:
        return {}
    tags = data.field("tags")
    if not pa.types.is_struct(tags.type):
        if pa.types.is_null(tags.type):
            return {}
        raise FallbackNeededError
    columns = {}
    for index in range(tags.type.num_fields):
        column = tags.field(index)
        if pa.types.is_null(column.type):
            continue
        if not pa.types.is_string(column.type):
            # pyarrow infers a date-like tag value as a timestamp.
            raise FallbackNeededError
        if tags.null_count:
            column = pc.if_else(tags.is_valid(), column, pa.scalar(None, pa.string()))
        columns[tags.type.field(index).name] = column
    return columns


def parse_times(times: pa.Array) -> np.ndarray:
    if times.null_count:
        raise FallbackNeededError
    try:
        parsed = times.cast(pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FallbackNeededError from exc
    return parsed.to_numpy(zero_copy_only=False).view(np.int64)


def _json_block_by_line(
    path: Path, acc: Accumulator, block: bytes, first_line: int
) -> tuple[Points, int]:
    metrics: list[str] = []
    times: list[str] = []
    values: list[float] = []
    tags: list[dict[str, str] | None] = []
    line_numbers: list[int] = []
    rows = 0
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        if not raw.strip():
            continue
        line_no = first_line + offset
        record = _load_line(path, line_no, raw)
        rows += 1
        if record["type"] == "Metric":
            add_definition(path, acc, record, line_no)
            continue
        point = _check_point(path, line_no, raw, record)
        metrics.append(point[0])
        times.append(point[1])
        values.append(point[2])
        tags.append(point[3])
        line_numbers.append(line_no)
    return _points_from_lists(path, metrics, times, values, tags, line_numbers), rows


def _load_line(path: Path, line_no: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid_line_error(path, line_no, raw, f"invalid JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise invalid_line_error(
            path, line_no, raw, f"a JSON {type(record).__name__}, not an object"
        )
    if record.get("type") not in ("Metric", "Point"):
        raise invalid_line_error(
            path, line_no, raw, f'"type" is {record.get("type")!r}'
        )
    return record


def _check_point(
    path: Path, line_no: int, raw: bytes, record: dict[str, Any]
) -> tuple[str, str, float, dict[str, str] | None]:
    data = record.get("data")
    metric = record.get("metric")
    if not isinstance(data, dict) or not isinstance(metric, str):
        raise invalid_line_error(
            path, line_no, raw, 'a Point needs "metric" and a "data" object'
        )
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_line_error(
            path, line_no, raw, f'"value" is {value!r}, not a number'
        )
    if not isinstance(data.get("time"), str):
        raise invalid_line_error(
            path, line_no, raw, '"time" is missing or not a string'
        )
    tags = data.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
    ):
        raise invalid_line_error(
            path, line_no, raw, '"tags" is not an object of strings'
        )
    return metric, data["time"], float(value), tags


def _points_from_lists(
    path: Path,
    metrics: list[str],
    times: list[str],
    values: list[float],
    tags: list[dict[str, str] | None],
    line_numbers: list[int],
) -> Points:
    keys = sorted({key for row in tags if row for key in row})
    columns = {
        key: pa.array([row.get(key) if row else None for row in tags], pa.string())
        for key in keys
    }
    time_strings = pa.array(times, pa.string())
    try:
        time_ns = parse_times(time_strings)
    except FallbackNeededError:
        index = first_bad_time(time_strings)
        raise invalid_line_error(
            path, line_numbers[index], times[index], "time is not RFC 3339"
        ) from None
    return Points(
        metric=pa.array(metrics, pa.string()),
        time_ns=time_ns,
        value=np.array(values, dtype=np.float64),
        tags=columns,
    )


def first_bad_time(times: pa.Array) -> int:
    for index in range(len(times)):
        try:
            times[index : index + 1].cast(pa.timestamp("ns", "UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index
    return 0
