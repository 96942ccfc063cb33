"""Read k6's JSON (NDJSON, plain or gzip) and CSV output into a `K6Output`.

The file is read in blocks of whole lines (`k6blocks`), so memory contains a few
blocks plus compact per-line arrays (metric code, time, value, tag-set id), never
the whole text. Three readers handle a JSON block, fastest first:

1. The scanner (`k6scan`, two blocks at a time in threads) takes blocks whose
   lines all have the exact shape k6 writes.
2. pyarrow's JSON reader (`k6json_fallback`) takes other blocks, such as other key
   orders.
3. The standard library's json module reads a block line by line when pyarrow
   rejects it, and names the line in an error.

CSV blocks are read by `k6csv`. `k6requests` then joins the samples of each HTTP
request into one row.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from canarykit.errors import InvalidK6OutputError
from canarykit.k6blocks import BLOCK_BYTES, Block, BlockSource, Progress
from canarykit.k6csv import CSV_HEADER_START, parse_csv_block
from canarykit.k6json_fallback import parse_json_block
from canarykit.k6output import K6Output
from canarykit.k6points import (
    EXPECTED_FORMAT,
    REQUEST_COLUMNS,
    REQUEST_TAGS,
    Accumulator,
    invalid_line_error,
)
from canarykit.k6requests import assemble
from canarykit.k6scan import LinePoints, read_k6_lines

_HEAD_BYTES = 64 * 1024

__all__ = [
    "BLOCK_BYTES",
    "REQUEST_COLUMNS",
    "REQUEST_TAGS",
    "Progress",
    "read_k6_output",
]

logger = logging.getLogger(__name__)

JSON_WORKERS = 2


def read_k6_output(
    path: str | os.PathLike[str], *, progress: Progress | None = None
) -> K6Output:
    """Read k6's `--out json` (plain or gzip) or `--out csv` output file.

    Raises InvalidK6OutputError when the file is empty or a complete line is not k6
    output; a cut-short last line is dropped and counted instead.
    """
    path = Path(path)
    started = time.perf_counter()
    source = BlockSource(path, progress)
    acc = Accumulator()
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
    output = assemble(path, acc, file_format, dropped, source.is_gzip_truncated)
    logger.info(
        "read %s: %d lines, %d requests in %.1f s",
        path,
        output.lines_read,
        len(output.requests),
        time.perf_counter() - started,
    )
    return output


def _first_block(
    path: Path, blocks: Iterator[Block]
) -> tuple[str, list[str], list[Block]]:
    """Detect the format from the first block; for CSV, drop the header line."""
    block = next(blocks, None)
    if block is None:
        return "", [], []
    file_format, csv_header, text = _detect_format(path, block.text)
    if file_format == "csv":
        return file_format, csv_header, [Block.from_bytes(text)] if text else []
    return file_format, csv_header, [block]


def _read_json_blocks(path: Path, acc: Accumulator, blocks: Iterator[Block]) -> None:
    """Read JSON blocks in JSON_WORKERS threads and merge them in file order."""
    with ThreadPoolExecutor(max_workers=JSON_WORKERS) as pool:
        pending: collections.deque[tuple[Block, Future[LinePoints | None]]]
        pending = collections.deque()
        for block in blocks:
            pending.append((block, pool.submit(read_k6_lines, block.data, block.size)))
            if len(pending) > JSON_WORKERS:
                _merge_json_block(path, acc, *pending.popleft())
        while pending:
            _merge_json_block(path, acc, *pending.popleft())


def _merge_json_block(
    path: Path,
    acc: Accumulator,
    block: Block,
    future: Future[LinePoints | None],
) -> None:
    points = future.result()
    if points is None or not acc.add_lines(path, points):
        _read_block(path, acc, block.text, "json", [])
    else:
        acc.lines += points.lines
        acc.blank_lines += points.lines - points.rows
    if block.release is not None:
        block.release()


def check_k6_output_start(path: str | os.PathLike[str]) -> None:
    """Raise InvalidK6OutputError unless the file starts as k6 JSON or CSV output.

    Reads at most the first 64 KiB, so a caller can reject an empty, binary or
    foreign file before slower work. A bad line further in is found only by
    `read_k6_output`.
    """
    file_path = Path(path)
    head = _read_head(file_path, _HEAD_BYTES)
    file_format, _, rest = _detect_format(file_path, head)
    if file_format != "json":
        return
    skipped = head[: len(head) - len(head.lstrip())].count(b"\n")
    first_line = rest.lstrip().split(b"\n", 1)[0]
    try:
        record = json.loads(first_line)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("type") not in ("Metric", "Point"):
        raise invalid_line_error(file_path, skipped + 1, first_line, "")


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        is_gzip = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if is_gzip else open
    with opener(path, "rb") as handle:
        try:
            return bytes(handle.read(size))
        except (EOFError, OSError):
            # A gzip stream cut short inside the head; read_k6_output reports it.
            return b""


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
    raise invalid_line_error(
        path, 1 + block[: len(block) - len(start)].count(b"\n"), start, ""
    )


def _read_block(
    path: Path, acc: Accumulator, block: bytes, file_format: str, csv_header: list[str]
) -> None:
    first_line = acc.lines + 1 + (1 if file_format == "csv" else 0)
    lines = block.count(b"\n")
    if file_format == "json":
        points, rows = parse_json_block(path, acc, block, first_line)
    else:
        points, rows = parse_csv_block(path, block, csv_header, first_line)
    acc.add(points)
    acc.lines += lines
    acc.blank_lines += lines - rows


def _read_tail(
    path: Path, acc: Accumulator, tail: bytes, file_format: str, csv_header: list[str]
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
