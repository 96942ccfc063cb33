"""Read k6's JSON (NDJSON, plain or gzip) and CSV output into a `K6Output`.

The file is read in blocks of whole lines, so memory contains a few blocks plus
compact per-line arrays (metric code, time, value, tag-set id), never the whole text.
Three readers handle a JSON block, fastest first:

1. A vectorized reader (numpy over the raw bytes, two blocks at a time in threads)
   takes blocks whose lines all have the exact shape k6 writes.
2. pyarrow's JSON reader takes other blocks, such as other key orders.
3. The standard library's json module reads a block line by line when pyarrow
   rejects it, and names the line in an error.

The samples of one HTTP request share time and tags, and k6 writes them one after
another. So they are joined by position and checked, and joined by (time, tags)
where that check fails.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import logging
import mmap
import os
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from canarykit.errors import InvalidK6OutputError
from canarykit.k6output import METRIC_TYPES, K6Output, MetricDefinition

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

# k6 metric name -> requests column; http_reqs itself makes the row.
REQUEST_COLUMNS = {
    "http_req_duration": "duration_ms",
    "http_req_blocked": "blocked_ms",
    "http_req_connecting": "connecting_ms",
    "http_req_tls_handshaking": "tls_handshaking_ms",
    "http_req_sending": "sending_ms",
    "http_req_waiting": "waiting_ms",
    "http_req_receiving": "receiving_ms",
    "http_req_failed": "failed",
}
REQUEST_TAGS = (
    "status",
    "expected_response",
    "error_code",
    "method",
    "name",
    "url",
    "group",
    "scenario",
    "proto",
)
CSV_HEADER_START = b"metric_name,timestamp,metric_value"
# Columns of k6's CSV output that are not tags.
CSV_NON_TAG_COLUMNS = (
    "metric_name",
    "timestamp",
    "metric_value",
    "extra_tags",
    "metadata",
)
# Types of k6's built-in metrics, for CSV output, which carries no Metric lines.
BUILTIN_METRIC_TYPES = {
    "http_reqs": ("counter", "default"),
    "http_req_failed": ("rate", "default"),
    "iterations": ("counter", "default"),
    "iteration_duration": ("trend", "time"),
    "group_duration": ("trend", "time"),
    "data_sent": ("counter", "data"),
    "data_received": ("counter", "data"),
    "checks": ("rate", "default"),
    "vus": ("gauge", "default"),
    "vus_max": ("gauge", "default"),
    "dropped_iterations": ("counter", "default"),
    **{
        name: ("trend", "time") for name in REQUEST_COLUMNS if name != "http_req_failed"
    },
}
# k6 adds this sub-metric to every run for its end-of-test summary.
BUILTIN_SUBMETRICS = {
    "http_req_duration": (
        ("http_req_duration{expected_response:true}", {"expected_response": "true"}),
    )
}
EXPECTED_FORMAT = (
    'one JSON object per line with "type" "Metric" or "Point", as '
    "`k6 run --out json=FILE` writes it, or k6's CSV output (`--out csv=FILE`)"
)
BLOCK_BYTES = 32 << 20
READ_BYTES = 4 << 20
JSON_WORKERS = 2
BLOCK_PADDING = 128
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


class _FallbackNeededError(Exception):
    """The fast path cannot read this block exactly; parse it line by line."""


@dataclass
class _Points:
    """The Point lines of one block, before global encoding."""

    metric: pa.Array
    time_ns: np.ndarray
    value: np.ndarray
    tags: dict[str, pa.Array]


@dataclass
class _Block:
    """Whole lines of text in `data[:size]`, followed by at least BLOCK_PADDING bytes.

    The padding (zeros, or the file's next bytes) lets the vectorized reader load
    words past a line end safely. `release`, when set, unmaps the block's pages once
    the block is read, so the resident set stays small.
    """

    data: np.ndarray
    size: int
    release: Callable[[], None] | None = None

    @property
    def text(self) -> bytes:
        return self.data[: self.size].tobytes()

    @classmethod
    def from_bytes(cls, text: bytes) -> _Block:
        data = np.zeros(len(text) + BLOCK_PADDING, dtype=np.uint8)
        data[: len(text)] = np.frombuffer(text, np.uint8)
        return cls(data, len(text))


@dataclass
class _BlockSource:
    """Whole-line blocks of a plain or gzip file, with what was left at its end."""

    path: Path
    progress: Progress | None
    tail: bytes = b""
    is_gzip_truncated: bool = False

    def blocks(self) -> Iterator[_Block]:
        total = self.path.stat().st_size
        with self.path.open("rb") as handle:
            is_gzip = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            if is_gzip:
                yield from self._text_blocks(handle, total)
            else:
                yield from self._plain_blocks(handle, total)

    def _plain_blocks(self, handle: io.BufferedReader, total: int) -> Iterator[_Block]:
        """Map the file into memory and hand out views of it, copying no text.

        A block's padding is the file's next bytes, which the readers only compare
        and never use, except for the last block, which is copied and padded. The
        mapping is released when the last view of it is gone.
        """
        if total == 0:
            return
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        whole = np.frombuffer(mapped, dtype=np.uint8)
        start = 0
        while start < total:
            end = min(start + BLOCK_BYTES, total)
            cut = start + _after_last_newline(whole[start:end], end - start)
            if cut == start and end < total:
                end = total  # a line longer than a block: take the rest at once
                cut = start + _after_last_newline(whole[start:end], end - start)
            if cut == start:
                break
            if total - cut >= BLOCK_PADDING:
                release = functools.partial(_drop_pages, mapped, start, cut)
                yield _Block(whole[start:], cut - start, release)
            else:
                yield _Block.from_bytes(whole[start:cut].tobytes())
            start = cut
            if self.progress is not None:
                self.progress(start, total)
        self.tail = whole[start:total].tobytes()
        if self.progress is not None:
            self.progress(total, total)

    def _text_blocks(self, handle: io.BufferedReader, total: int) -> Iterator[_Block]:
        carry = b""
        raw = iter(lambda: handle.read(READ_BYTES), b"")
        for chunk in self._gunzip(raw):
            if self.progress is not None:
                self.progress(handle.tell(), total)
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            yield _Block.from_bytes(b"".join([carry, memoryview(chunk)[:cut]]))
            carry = chunk[cut:]
        self.tail = carry

    def _gunzip(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        """Decompress gzip members one after another, at most BLOCK_BYTES at a time."""
        decoder = zlib.decompressobj(wbits=31)
        for compressed in raw:
            data = compressed
            while data:
                try:
                    yield decoder.decompress(data, BLOCK_BYTES)
                except zlib.error as exc:
                    logger.warning(
                        "%s: gzip data is damaged (%s); kept what came before",
                        self.path,
                        exc,
                    )
                    self.is_gzip_truncated = True
                    return
                if decoder.unconsumed_tail:
                    data = decoder.unconsumed_tail
                elif decoder.eof and decoder.unused_data:
                    data = decoder.unused_data
                    decoder = zlib.decompressobj(wbits=31)
                else:
                    data = b""
        self.is_gzip_truncated = not decoder.eof


def _drop_pages(mapped: mmap.mmap, start: int, end: int) -> None:
    """Unmap pages of a read-only file mapping; a later access maps them again."""
    page_start = start - start % mmap.PAGESIZE
    mapped.madvise(mmap.MADV_DONTNEED, page_start, end - page_start)


def _after_last_newline(data: np.ndarray, size: int) -> int:
    """Return the index after the last newline in data[:size], or 0 without one."""
    start = size
    while start > 0:
        start = max(0, start - 65536)
        newlines = np.flatnonzero(data[start:size] == 10)
        if len(newlines):
            return start + int(newlines[-1]) + 1
        size = start
    return 0


@dataclass
class _Accumulator:
    """Global encodings and the per-line arrays of every block read so far."""

    metric_codes: dict[str, int] = field(default_factory=dict)
    tag_values: dict[str, dict[str, int]] = field(default_factory=dict)
    tagset_codes: dict[tuple[tuple[str, int], ...], int] = field(default_factory=dict)
    metric: list[np.ndarray] = field(default_factory=list)
    time_ns: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    tagset: list[np.ndarray] = field(default_factory=list)
    definitions: dict[str, MetricDefinition] = field(default_factory=dict)
    lines: int = 0
    blank_lines: int = 0

    def add(self, points: _Points) -> None:
        self.metric.append(_encode(points.metric, self.metric_codes).astype(np.int32))
        self.time_ns.append(points.time_ns)
        self.value.append(points.value)
        self.tagset.append(self._encode_tagsets(points))

    def add_lines(self, path: Path, points: _LinePoints) -> bool:
        """Add a block from the vectorized reader.

        Returns False, adding nothing, when a tags text is not a JSON object of strings;
        the caller then reads the block with the other readers.
        """
        tagsets = np.empty(len(points.tag_texts) + 1, dtype=np.int32)
        for index, text in enumerate(points.tag_texts):
            tagset = self._tagset_from_text(text)
            if tagset is None:
                return False
            tagsets[index] = tagset
        for line_no, line in points.metric_lines:
            _add_definition(path, self, json.loads(line), self.lines + line_no)
        metric_codes = [
            self.metric_codes.setdefault(n, len(self.metric_codes))
            for n in points.names
        ]
        self.metric.append(np.array(metric_codes, dtype=np.int32)[points.name_index])
        self.time_ns.append(points.time_ns)
        self.value.append(points.value)
        self.tagset.append(tagsets[points.tag_index])
        return True

    def _tagset_from_text(self, text: str) -> int | None:
        if text in ("", "null"):
            tags: dict[str, Any] = {}
        else:
            try:
                tags = json.loads(text)
            except ValueError:
                return None
            if not isinstance(tags, dict):
                return None
        if not all(isinstance(value, str) for value in tags.values()):
            return None
        tagset = tuple(
            (
                key,
                self.tag_values.setdefault(key, {}).setdefault(
                    tags[key], len(self.tag_values[key])
                ),
            )
            for key in sorted(tags)
        )
        return self.tagset_codes.setdefault(tagset, len(self.tagset_codes))

    def _encode_tagsets(self, points: _Points) -> np.ndarray:
        keys = sorted(points.tags)
        rows = len(points.value)
        codes = [
            _encode(points.tags[k], self.tag_values.setdefault(k, {})) for k in keys
        ]
        combined = np.zeros(rows, dtype=np.int64)
        for key_codes in codes:
            width = int(key_codes.max(initial=-1)) + 2
            if width and combined.max(initial=0) > (1 << 62) // width:
                return self._encode_tagsets_slowly(keys, codes)
            combined = combined * width + (key_codes + 1)
        local, uniques = pd.factorize(combined)
        first_rows = pd.Series(np.arange(rows)).groupby(local).first().to_numpy()
        mapping = np.array(
            [self._tagset_code(keys, codes, int(row)) for row in first_rows],
            dtype=np.int32,
        )
        return mapping[local] if len(mapping) else np.zeros(0, dtype=np.int32)

    def _encode_tagsets_slowly(
        self, keys: list[str], codes: list[np.ndarray]
    ) -> np.ndarray:
        rows = len(codes[0])
        return np.array(
            [self._tagset_code(keys, codes, r) for r in range(rows)], dtype=np.int32
        )

    def _tagset_code(self, keys: list[str], codes: list[np.ndarray], row: int) -> int:
        tagset = tuple(
            (k, int(c[row])) for k, c in zip(keys, codes, strict=True) if c[row] >= 0
        )
        return self.tagset_codes.setdefault(tagset, len(self.tagset_codes))


def read_k6_output(
    path: str | os.PathLike[str], *, progress: Progress | None = None
) -> K6Output:
    """Read k6's `--out json` (plain or gzip) or `--out csv` output file.

    Raises InvalidK6OutputError when the file is empty or a complete line is not k6
    output; a cut-short last line is dropped and counted instead.
    """
    path = Path(path)
    started = time.perf_counter()
    source = _BlockSource(path, progress)
    acc = _Accumulator()
    blocks = source.blocks()
    file_format, csv_header, first = _first_block(path, blocks)
    if file_format == "json":
        _read_json_blocks(path, acc, itertools.chain(first, blocks))
    else:
        for block in itertools.chain(first, blocks):
            _read_block(path, acc, block.text, file_format, csv_header)
            if block.release is not None:
                block.release()
    if not file_format:
        file_format, csv_header, _ = _detect_format(path, source.tail)
    dropped = _read_tail(path, acc, source.tail, file_format, csv_header)
    output = _assemble(path, acc, file_format, dropped, source.is_gzip_truncated)
    logger.info(
        "read %s: %d lines, %d requests in %.1f s",
        path,
        output.lines_read,
        len(output.requests),
        time.perf_counter() - started,
    )
    return output


def _first_block(
    path: Path, blocks: Iterator[_Block]
) -> tuple[str, list[str], list[_Block]]:
    """Detect the format from the first block; for CSV, drop the header line."""
    block = next(blocks, None)
    if block is None:
        return "", [], []
    file_format, csv_header, text = _detect_format(path, block.text)
    if file_format == "csv":
        return file_format, csv_header, [_Block.from_bytes(text)] if text else []
    return file_format, csv_header, [block]


def _read_json_blocks(path: Path, acc: _Accumulator, blocks: Iterator[_Block]) -> None:
    """Read JSON blocks in JSON_WORKERS threads and merge them in file order."""
    with ThreadPoolExecutor(max_workers=JSON_WORKERS) as pool:
        pending: collections.deque[tuple[_Block, Future[_LinePoints | None]]]
        pending = collections.deque()
        for block in blocks:
            pending.append((block, pool.submit(_read_k6_lines, block.data, block.size)))
            if len(pending) > JSON_WORKERS:
                _merge_json_block(path, acc, *pending.popleft())
        while pending:
            _merge_json_block(path, acc, *pending.popleft())


def _merge_json_block(
    path: Path,
    acc: _Accumulator,
    block: _Block,
    future: Future[_LinePoints | None],
) -> None:
    points = future.result()
    if points is None or not acc.add_lines(path, points):
        _read_block(path, acc, block.text, "json", [])
    else:
        acc.lines += points.lines
        acc.blank_lines += points.lines - points.rows
    if block.release is not None:
        block.release()


def _detect_format(path: Path, block: bytes) -> tuple[str, list[str], bytes]:
    start = block.lstrip()
    if not start:
        raise InvalidK6OutputError(
            f"{path}: the file is empty or contains only blank lines; "
            f"expected {EXPECTED_FORMAT}"
        )
    if start.startswith(b"{"):
        return "json", [], block
    if start.startswith(CSV_HEADER_START):
        header_line, _, rest = start.partition(b"\n")
        return "csv", header_line.decode().strip().split(","), rest
    raise _invalid(path, 1 + block[: len(block) - len(start)].count(b"\n"), start, "")


def _invalid(
    path: Path, line_no: int, found: bytes | str, problem: str
) -> InvalidK6OutputError:
    text = found if isinstance(found, str) else found[:200].decode("utf-8", "replace")
    excerpt = text.splitlines()[0] if text.strip() else text
    if len(excerpt) > 80:
        excerpt = excerpt[:77] + "..."
    reason = f" ({problem})" if problem else ""
    return InvalidK6OutputError(
        f"{path}, line {line_no}: not k6 output{reason}; found {excerpt!r}; "
        f"expected {EXPECTED_FORMAT}"
    )


def _read_block(
    path: Path, acc: _Accumulator, block: bytes, file_format: str, csv_header: list[str]
) -> None:
    first_line = acc.lines + 1 + (1 if file_format == "csv" else 0)
    lines = block.count(b"\n")
    if file_format == "json":
        points, rows = _json_block(path, acc, block, first_line)
    else:
        points, rows = _csv_block(path, block, csv_header, first_line)
    acc.add(points)
    acc.lines += lines
    acc.blank_lines += lines - rows


def _read_tail(
    path: Path, acc: _Accumulator, tail: bytes, file_format: str, csv_header: list[str]
) -> int:
    """Read an unterminated last line if it is complete; return 1 if it was dropped."""
    if not tail.strip():
        return 0
    try:
        _read_block(path, acc, tail + b"\n", file_format, csv_header)
    except InvalidK6OutputError:
        logger.warning(
            "%s: dropped the last line, which is cut short: %r", path, tail[:80]
        )
        return 1
    return 0


def _json_block(
    path: Path, acc: _Accumulator, block: bytes, first_line: int
) -> tuple[_Points, int]:
    """Parse a JSON block; return its points and the count of non-blank lines."""
    try:
        points_block, metric_lines = _split_metric_lines(block)
        for line in metric_lines:
            _add_definition(path, acc, json.loads(line), first_line)
        table = pajson.read_json(
            pa.BufferReader(points_block), parse_options=_PARSE_OPTIONS
        )
        points = _points_from_table(table)
        return points, table.num_rows + len(metric_lines)
    except (pa.ArrowInvalid, pa.ArrowTypeError, _FallbackNeededError, ValueError):
        return _json_block_by_line(path, acc, block, first_line)


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


def _points_from_table(table: pa.Table) -> _Points:
    if table.num_rows == 0:
        return _empty_points()
    kinds = table.column("type")
    if kinds.null_count or not pc.all(pc.equal(kinds, "Point")).as_py():
        raise _FallbackNeededError
    data = table.column("data").combine_chunks()
    metric = table.column("metric").combine_chunks()
    value = data.field("value")
    if metric.null_count or data.null_count or value.null_count:
        raise _FallbackNeededError
    return _Points(
        metric=metric,
        time_ns=_parse_times(data.field("time")),
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
        raise _FallbackNeededError
    columns = {}
    for index in range(tags.type.num_fields):
        column = tags.field(index)
        if pa.types.is_null(column.type):
            continue
        if not pa.types.is_string(column.type):
            # pyarrow infers a date-like tag value as a timestamp.
            raise _FallbackNeededError
        if tags.null_count:
            column = pc.if_else(tags.is_valid(), column, pa.scalar(None, pa.string()))
        columns[tags.type.field(index).name] = column
    return columns


def _parse_times(times: pa.Array) -> np.ndarray:
    if times.null_count:
        raise _FallbackNeededError
    try:
        parsed = times.cast(pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _FallbackNeededError from exc
    return parsed.to_numpy(zero_copy_only=False).view(np.int64)


def _json_block_by_line(
    path: Path, acc: _Accumulator, block: bytes, first_line: int
) -> tuple[_Points, int]:
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
            _add_definition(path, acc, record, line_no)
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
        raise _invalid(path, line_no, raw, f"invalid JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise _invalid(
            path, line_no, raw, f"a JSON {type(record).__name__}, not an object"
        )
    if record.get("type") not in ("Metric", "Point"):
        raise _invalid(path, line_no, raw, f'"type" is {record.get("type")!r}')
    return record


def _check_point(
    path: Path, line_no: int, raw: bytes, record: dict[str, Any]
) -> tuple[str, str, float, dict[str, str] | None]:
    data = record.get("data")
    metric = record.get("metric")
    if not isinstance(data, dict) or not isinstance(metric, str):
        raise _invalid(path, line_no, raw, 'a Point needs "metric" and a "data" object')
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, line_no, raw, f'"value" is {value!r}, not a number')
    if not isinstance(data.get("time"), str):
        raise _invalid(path, line_no, raw, '"time" is missing or not a string')
    tags = data.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
    ):
        raise _invalid(path, line_no, raw, '"tags" is not an object of strings')
    return metric, data["time"], float(value), tags


def _points_from_lists(
    path: Path,
    metrics: list[str],
    times: list[str],
    values: list[float],
    tags: list[dict[str, str] | None],
    line_numbers: list[int],
) -> _Points:
    keys = sorted({key for row in tags if row for key in row})
    columns = {
        key: pa.array([row.get(key) if row else None for row in tags], pa.string())
        for key in keys
    }
    time_strings = pa.array(times, pa.string())
    try:
        time_ns = _parse_times(time_strings)
    except _FallbackNeededError:
        index = _first_bad_time(time_strings)
        raise _invalid(
            path, line_numbers[index], times[index], "time is not RFC 3339"
        ) from None
    return _Points(
        metric=pa.array(metrics, pa.string()),
        time_ns=time_ns,
        value=np.array(values, dtype=np.float64),
        tags=columns,
    )


def _first_bad_time(times: pa.Array) -> int:
    for index in range(len(times)):
        try:
            times[index : index + 1].cast(pa.timestamp("ns", "UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index
    return 0


def _add_definition(
    path: Path, acc: _Accumulator, record: dict[str, Any], line_no: int
) -> None:
    data = record.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise _invalid(path, line_no, json.dumps(record), 'a Metric needs "data.name"')
    if data.get("type") not in METRIC_TYPES:
        raise _invalid(
            path, line_no, json.dumps(record), f"metric type {data.get('type')!r}"
        )
    submetrics = tuple(
        (str(sub["name"]), {str(k): str(v) for k, v in (sub.get("tags") or {}).items()})
        for sub in data.get("submetrics") or ()
    )
    acc.definitions[data["name"]] = MetricDefinition(
        name=data["name"],
        type=data["type"],
        contains=str(data.get("contains") or "default"),
        thresholds=tuple(str(t) for t in data.get("thresholds") or ()),
        submetrics=submetrics,
    )


def _csv_block(
    path: Path, block: bytes, header: list[str], first_line: int
) -> tuple[_Points, int]:
    types = {name: pa.string() for name in header}
    types["metric_value"] = pa.float64()
    try:
        table = pacsv.read_csv(
            pa.BufferReader(block),
            read_options=pacsv.ReadOptions(column_names=header),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, block, header, first_line, str(exc)) from exc
    if table.num_rows == 0:
        return _empty_points(), 0
    metric = table.column("metric_name").combine_chunks()
    if metric.null_count or table.column("metric_value").null_count:
        raise _csv_error(
            path, block, header, first_line, "empty metric_name or metric_value"
        )
    tags = {
        name: table.column(name).combine_chunks()
        for name in header
        if name not in CSV_NON_TAG_COLUMNS
    }
    if "extra_tags" in header:
        tags.update(_extra_tags(table.column("extra_tags").combine_chunks()))
    points = _Points(
        metric=metric,
        time_ns=_csv_times(
            path, table.column("timestamp").combine_chunks(), first_line
        ),
        value=table.column("metric_value").to_numpy(),
        tags={k: v for k, v in tags.items() if v.null_count < len(v)},
    )
    return points, table.num_rows


def _csv_times(path: Path, stamps: pa.Array, first_line: int) -> np.ndarray:
    """Parse k6 CSV timestamps: Unix seconds by default, or RFC 3339 text."""
    try:
        seconds = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        try:
            return _parse_times(stamps)
        except _FallbackNeededError:
            index = _first_bad_time(stamps)
            raise _invalid(
                path, first_line + index, str(stamps[index]), "bad timestamp"
            ) from None
    return seconds * 1_000_000_000


def _extra_tags(extra: pa.Array) -> dict[str, pa.Array]:
    """Split k6's CSV `extra_tags` column (`key=value&key=value`) into tag columns."""
    from urllib.parse import parse_qsl

    codes, uniques = pd.factorize(extra.to_pandas(), use_na_sentinel=True)
    parsed = [dict(parse_qsl(text, keep_blank_values=True)) for text in uniques]
    keys = sorted({key for row in parsed for key in row})
    columns = {}
    for key in keys:
        per_unique = np.array([row.get(key) for row in parsed] + [None], dtype=object)
        columns[key] = pa.array(per_unique[codes], pa.string())
    return columns


def _csv_error(
    path: Path, block: bytes, header: list[str], first_line: int, problem: str
) -> InvalidK6OutputError:
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        fields = raw.decode("utf-8", "replace").split(",")
        if raw.strip() and (len(fields) < len(header) or not _is_number(fields[2])):
            return _invalid(
                path, first_line + offset, raw, f"expected {len(header)} CSV fields"
            )
    return _invalid(path, first_line, block, problem)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _empty_points() -> _Points:
    return _Points(
        metric=pa.array([], pa.string()),
        time_ns=np.zeros(0, dtype=np.int64),
        value=np.zeros(0, dtype=np.float64),
        tags={},
    )


def _encode(values: pa.Array, codes: dict[str, int]) -> np.ndarray:
    """Map strings to codes that stay the same across blocks; None becomes -1."""
    encoded = values.dictionary_encode()
    local = [
        codes.setdefault(text, len(codes)) for text in encoded.dictionary.to_pylist()
    ]
    mapping = np.array(local + [-1], dtype=np.int32)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return mapping[indices]


def _assemble(
    path: Path, acc: _Accumulator, file_format: str, dropped: int, gzip_truncated: bool
) -> K6Output:
    metric = _concat(acc.metric, np.int32)
    time_ns = _concat(acc.time_ns, np.int64)
    value = _concat(acc.value, np.float64)
    tagset = _concat(acc.tagset, np.int32)
    non_finite = ~np.isfinite(value)
    value[non_finite] = np.nan

    tag_table = _TagTable.build(acc)
    names = np.array(list(acc.metric_codes), dtype=object)
    requests, joined = _join_requests(metric, time_ns, value, tagset, names, tag_table)
    samples = _samples_frame(metric, time_ns, value, tagset, names, tag_table, ~joined)

    definitions = dict(acc.definitions)
    if file_format == "csv":
        _add_builtin_definitions(definitions, names)
    if non_finite.any():
        logger.warning(
            "%s: %d NaN or infinite values left out", path, int(non_finite.sum())
        )
    return K6Output(
        path=str(path),
        format=file_format,
        requests=requests,
        samples=samples,
        metrics=definitions,
        lines_read=acc.lines + (1 if file_format == "csv" else 0),
        blank_lines=acc.blank_lines,
        dropped_lines=dropped,
        is_truncated=bool(dropped) or gzip_truncated,
        non_finite_values=int(non_finite.sum()),
        has_expected_response=bool(requests["expected_response"].notna().any()),
        time_resolution_ns=1_000_000_000 if file_format == "csv" else 1,
        tag_keys=tuple(tag_table.keys),
    )


def _utc_times(time_ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(time_ns.view("datetime64[ns]")).tz_localize("UTC")


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return (
        np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    )


@dataclass
class _TagTable:
    """Tag-set id -> code of each tag key, and the categories of each key."""

    keys: list[str]
    codes: dict[str, np.ndarray]
    categories: dict[str, list[str]]

    @classmethod
    def build(cls, acc: _Accumulator) -> _TagTable:
        keys = sorted(acc.tag_values)
        codes = {
            key: np.full(len(acc.tagset_codes), -1, dtype=np.int32) for key in keys
        }
        for tagset, tagset_id in acc.tagset_codes.items():
            for key, code in tagset:
                codes[key][tagset_id] = code
        categories = {key: list(acc.tag_values[key]) for key in keys}
        return cls(keys, codes, categories)

    def keys_used(self, tagset: np.ndarray) -> list[str]:
        """Return the tag keys that at least one of the given tag sets contains."""
        used = np.unique(tagset)
        return [key for key in self.keys if (self.codes[key][used] >= 0).any()]

    def column(self, key: str, tagset: np.ndarray) -> pd.Categorical:
        categories = self.categories.get(key, [])
        if key not in self.codes or not len(self.codes[key]):
            return pd.Categorical.from_codes(
                np.full(len(tagset), -1), categories=categories
            )
        return pd.Categorical.from_codes(self.codes[key][tagset], categories=categories)


def _join_requests(
    metric: np.ndarray,
    time_ns: np.ndarray,
    value: np.ndarray,
    tagset: np.ndarray,
    names: np.ndarray,
    tags: _TagTable,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Build one row per http_reqs sample; return it and a mask of the lines used."""
    code = {name: index for index, name in enumerate(names)}
    joined = np.zeros(len(metric), dtype=bool)
    request_rows = np.flatnonzero(metric == code.get("http_reqs", -1))
    joined[request_rows] = True
    frame: dict[str, Any] = {
        "time": _utc_times(time_ns[request_rows]),
    }
    for metric_name, column in REQUEST_COLUMNS.items():
        rows = np.flatnonzero(metric == code.get(metric_name, -1))
        target = _match_rows(rows, request_rows, time_ns, tagset)
        filled = np.full(len(request_rows), np.nan)
        hit = target >= 0
        filled[target[hit]] = value[rows[hit]]
        joined[rows[hit]] = True
        frame[column] = filled
    failed = frame["failed"]
    frame["failed"] = pd.array(
        np.where(np.isnan(failed), None, failed != 0), dtype="boolean"
    )
    request_tagsets = tagset[request_rows]
    for key in dict.fromkeys([*REQUEST_TAGS, *tags.keys_used(request_tagsets)]):
        frame[key] = tags.column(key, request_tagsets)
    return pd.DataFrame(frame), joined


def _match_rows(
    rows: np.ndarray, request_rows: np.ndarray, time_ns: np.ndarray, tagset: np.ndarray
) -> np.ndarray:
    """Return for each line the index of its request, or -1.

    k6 writes a request's samples right after its http_reqs line, so the nearest
    http_reqs line above is tried first. A line whose time or tags differ from that
    request's is then matched on (time, tags) to a request without such a sample.
    """
    if not len(rows) or not len(request_rows):
        return np.full(len(rows), -1, dtype=np.int64)
    target = np.searchsorted(request_rows, rows, side="right") - 1
    candidate = request_rows[np.clip(target, 0, None)]
    ok = (
        (target >= 0)
        & (time_ns[candidate] == time_ns[rows])
        & (tagset[candidate] == tagset[rows])
    )
    first_use = np.zeros(len(rows), dtype=bool)
    _, first_index = np.unique(np.where(ok, target, -1), return_index=True)
    first_use[first_index] = True
    ok &= first_use
    target[~ok] = -1
    if ok.all():
        return target
    return _match_by_key(rows, request_rows, time_ns, tagset, target)


def _match_by_key(
    rows: np.ndarray,
    request_rows: np.ndarray,
    time_ns: np.ndarray,
    tagset: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    taken = np.zeros(len(request_rows), dtype=bool)
    taken[target[target >= 0]] = True
    free: dict[tuple[int, int], list[int]] = {}
    for index in np.flatnonzero(~taken):
        row = request_rows[index]
        free.setdefault((int(time_ns[row]), int(tagset[row])), []).append(int(index))
    for position in np.flatnonzero(target < 0):
        row = rows[position]
        waiting = free.get((int(time_ns[row]), int(tagset[row])))
        if waiting:
            target[position] = waiting.pop(0)
    return target


def _samples_frame(
    metric: np.ndarray,
    time_ns: np.ndarray,
    value: np.ndarray,
    tagset: np.ndarray,
    names: np.ndarray,
    tags: _TagTable,
    keep: np.ndarray,
) -> pd.DataFrame:
    rows = np.flatnonzero(keep)
    frame: dict[str, Any] = {
        "time": _utc_times(time_ns[rows]),
        "metric": pd.Categorical.from_codes(metric[rows], categories=list(names)),
        "value": value[rows],
    }
    sample_tagsets = tagset[rows]
    for key in tags.keys_used(sample_tagsets):
        frame[key] = tags.column(key, sample_tagsets)
    return pd.DataFrame(frame)


def _add_builtin_definitions(
    definitions: dict[str, MetricDefinition], names: np.ndarray
) -> None:
    unknown = []
    for name in names:
        if name in BUILTIN_METRIC_TYPES:
            kind, contains = BUILTIN_METRIC_TYPES[name]
            submetrics = BUILTIN_SUBMETRICS.get(name, ())
            definitions[name] = MetricDefinition(
                name=name, type=kind, contains=contains, submetrics=submetrics
            )
        else:
            unknown.append(name)
    if unknown:
        # NOTE: k6's CSV output has no Metric lines, so custom metrics have no known
        # type and summarize() leaves them out.
        logger.warning(
            "CSV output: custom metrics of unknown type left out: %s", unknown
        )


# --- Vectorized reading of the line shape k6 writes -------------------------------
#
# k6 1.1.0 writes every Point as
#   {"metric":"NAME","type":"Point","data":{"time":"TIME","value":NUMBER,"tags":TAGS}}
# with keys in this order. A block whose non-blank lines all have this shape (Metric
# lines aside) is read with numpy over the raw bytes. The metric name starts at a
# fixed offset, and the other fields are found by comparing 8-byte words loaded at
# any byte offset. Time and value text are parsed by pyarrow casts, and tags by
# json.loads once per distinct tags text. Any other block goes to pyarrow's reader.


_LINE_PREFIX = np.frombuffer(b'{"metric":"', np.uint8)
_LINE_PREFIX_BYTES = len(_LINE_PREFIX)
_POINT_KEYS = np.frombuffer(b'","type":"Point","data":{"time":"', np.uint8)
_VALUE_KEY = np.frombuffer(b'","value":', np.uint8)
_TAGS_KEY = np.frombuffer(b',"tags":', np.uint8)
# A metric name shorter than NAME_KEY_WORDS * 8 bytes is identified by the first
# NAME_KEY_WORDS words after `{"metric":"`, which then include its closing quote.
# Blocks with a longer name go to pyarrow's JSON reader.
NAME_KEY_WORDS = 6
_TIME_BYTES = 40  # RFC 3339 with nanoseconds and an offset has at most 35 bytes
_NUMBER_BYTES = 32
_HASH_FACTORS = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
    ],
    dtype=np.uint64,
)


@dataclass
class _LinePoints:
    """Points of one block read by the vectorized path, not yet globally encoded."""

    names: list[str]
    name_index: np.ndarray
    time_ns: np.ndarray
    value: np.ndarray
    tag_texts: list[str]
    tag_index: np.ndarray
    metric_lines: list[tuple[int, bytes]]  # (line number within the block, text)
    lines: int
    rows: int


def _read_k6_lines(data: np.ndarray, size: int) -> _LinePoints | None:
    """Read a block of k6-shaped lines; None when any line has another shape.

    `data[:size]` contains whole lines and is followed by at least BLOCK_PADDING
    readable bytes.
    """
    ends = np.flatnonzero(data[:size] == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    filled = ends > starts
    lines = len(ends)
    starts, ends = starts[filled], ends[filled]
    if not len(starts):
        return None
    head = _byte_windows(data, starts, _LINE_PREFIX_BYTES + 8 * NAME_KEY_WORDS)
    metric_lines = _metric_lines(data, head, starts, ends)
    if metric_lines is None:
        return None
    if metric_lines:
        is_point = np.ones(len(starts), dtype=bool)
        is_point[[index for index, _ in metric_lines]] = False
        line_numbers = np.flatnonzero(filled)
        metric_lines = [(int(line_numbers[i]) + 1, text) for i, text in metric_lines]
        starts, ends, head = starts[is_point], ends[is_point], head[is_point]
    names = _read_names(head, starts)
    fields = None if names is None else _locate_fields(data, names[2], ends)
    if names is None or fields is None:
        return None
    return _parse_fields(data, fields, names, metric_lines, lines, int(filled.sum()))


def _parse_fields(
    data: np.ndarray,
    fields: _Fields,
    names: tuple[list[str], np.ndarray, np.ndarray],
    metric_lines: list[tuple[int, bytes]],
    lines: int,
    rows: int,
) -> _LinePoints | None:
    try:
        time_text = _string_view(
            data, fields.time_start, fields.time_length, fields.time_head
        )
        time_ns = time_text.cast(pa.string()).cast(pa.timestamp("ns", "UTC"))
        value_text = _string_view(
            data, fields.value_start, fields.value_length, fields.value_head
        )
        value = value_text.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    tag_text = _string_view(data, fields.tag_start, fields.tag_length, fields.tag_head)
    tags = tag_text.dictionary_encode()
    return _LinePoints(
        names=names[0],
        name_index=names[1],
        time_ns=time_ns.to_numpy(zero_copy_only=False).view(np.int64),
        value=value.to_numpy(zero_copy_only=False),
        tag_texts=tags.dictionary.to_pylist(),
        tag_index=tags.indices.to_numpy(zero_copy_only=False),
        metric_lines=metric_lines,
        lines=lines,
        rows=rows,
    )


def _metric_lines(
    data: np.ndarray, head: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> list[tuple[int, bytes]] | None:
    """Return (index, text) of the Metric lines.

    Returns None if any other line does not start like a Point in k6's shape.
    """
    is_point = (head[:, :_LINE_PREFIX_BYTES] == _LINE_PREFIX).all(axis=1)
    found = []
    for index in np.flatnonzero(~is_point):
        text = data[starts[index] : ends[index]].tobytes()
        if b'"type":"Metric"' not in text:
            return None
        found.append((int(index), text))
    return found


def _byte_windows(data: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """Copy `width` bytes from each position into a (lines, width) array."""
    return np.lib.stride_tricks.sliding_window_view(data, width)[positions]


def _as_words(windows: np.ndarray) -> np.ndarray:
    """View byte windows whose width is a multiple of 8 as little-endian words."""
    return np.ascontiguousarray(windows).view("<u8")


def _read_names(
    head: np.ndarray, starts: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Return metric names, each line's name index and each line's name end."""
    key = _as_words(head[:, _LINE_PREFIX_BYTES:])
    hashed = (key * _HASH_FACTORS).sum(axis=1, dtype=np.uint64)
    name_index, _ = pd.factorize(hashed)
    _, first_rows = np.unique(name_index, return_index=True)
    if not (key == key[first_rows][name_index]).all():
        return None  # two different keys with the same hash
    names = []
    lengths = []
    for row in first_rows:
        raw = key[row].tobytes()
        length = raw.find(b'"')
        if length < 0 or b"\\" in raw[:length]:
            return None
        names.append(raw[:length].decode("utf-8"))
        lengths.append(length)
    name_end = starts + _LINE_PREFIX_BYTES
    name_end += np.array(lengths, dtype=np.int64)[name_index]
    return names, name_index.astype(np.int32), name_end


@dataclass
class _Fields:
    """Start, length and first 16 bytes of the time, value and tags text per line."""

    time_start: np.ndarray
    time_length: np.ndarray
    time_head: np.ndarray
    value_start: np.ndarray
    value_length: np.ndarray
    value_head: np.ndarray
    tag_start: np.ndarray
    tag_length: np.ndarray
    tag_head: np.ndarray


def _locate_fields(
    data: np.ndarray, name_end: np.ndarray, ends: np.ndarray
) -> _Fields | None:
    """Locate time, value and tags text; None when a line differs from k6's shape."""
    keys = len(_POINT_KEYS)
    window = _byte_windows(data, name_end, keys + _TIME_BYTES)
    if not (window[:, :keys] == _POINT_KEYS).all():
        return None
    time_length = _first_of(window[:, keys:] == 34)
    if (time_length < 20).any():
        return None

    time_start = name_end + keys
    value_key = time_start + time_length
    window_value = _byte_windows(data, value_key, len(_VALUE_KEY) + _NUMBER_BYTES)
    if not (window_value[:, : len(_VALUE_KEY)] == _VALUE_KEY).all():
        return None
    number = window_value[:, len(_VALUE_KEY) :]
    value_length = _first_of((number == 44) | (number == 125))
    if (value_length <= 0).any():
        return None

    value_start = value_key + len(_VALUE_KEY)
    after_value = value_start + value_length
    window_tags = _byte_windows(data, after_value, len(_TAGS_KEY) + 16)
    has_tags = (window_tags[:, : len(_TAGS_KEY)] == _TAGS_KEY).all(axis=1)
    closing = _byte_windows(data, ends - 2, 2)
    if not ((closing == 125).all() and (has_tags | (after_value == ends - 2)).all()):
        return None
    tag_start = np.where(has_tags, after_value + len(_TAGS_KEY), ends - 2)
    return _Fields(
        time_start=time_start,
        time_length=time_length,
        time_head=_as_words(window[:, keys : keys + 16]),
        value_start=value_start,
        value_length=value_length,
        value_head=_as_words(number[:, :16]),
        tag_start=tag_start,
        tag_length=ends - 2 - tag_start,
        tag_head=_as_words(window_tags[:, len(_TAGS_KEY) :]),
    )


def _first_of(found: np.ndarray) -> np.ndarray:
    """Return the column of the first True in each row, or -1."""
    index = found.argmax(axis=1)
    return np.where(found[np.arange(len(index)), index], index, -1)


def _string_view(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, head: np.ndarray
) -> pa.Array:
    """Build an Arrow string_view array over slices of `data`, copying no text.

    `head` contains the first 16 bytes of each slice as two words. Each view is 16
    bytes: the length, then the text inline when it has at most 12 bytes, otherwise
    a 4-byte prefix, buffer index 0 and the offset into `data`.
    """
    lengths = lengths.astype(np.uint64)
    keep = np.minimum(lengths, np.uint64(12)) * np.uint64(8)
    # Bits of the text within the 12 inline bytes: up to 4 in word 0, 8 in word 1.
    low_bits = np.minimum(keep, np.uint64(32))
    high_bits = keep - low_bits
    all_ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    low_mask = (np.uint64(1) << low_bits) - np.uint64(1)
    high_mask = np.where(
        high_bits >= 64, all_ones, (np.uint64(1) << (high_bits % np.uint64(64))) - 1
    ).astype(np.uint64)
    first = head[:, 0]
    second = (first >> np.uint64(32)) | (head[:, 1] << np.uint64(32))
    views = np.empty((len(starts), 2), dtype=np.uint64)
    views[:, 0] = lengths | ((first & low_mask) << np.uint64(32))
    offsets = starts.astype(np.uint64) << np.uint64(32)
    views[:, 1] = np.where(lengths > 12, offsets, second & high_mask)
    buffers = [None, pa.py_buffer(views), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string_view(), len(starts), buffers)
