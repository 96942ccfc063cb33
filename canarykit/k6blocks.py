"""Cut a plain or gzip k6 output file into blocks of whole lines.

A plain file is mapped into memory and handed out as views, copying no text; a
gzip file is decompressed a block at a time.
"""

from __future__ import annotations

import functools
import io
import logging
import mmap
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

BLOCK_BYTES = 32 << 20
READ_BYTES = 4 << 20
JSON_WORKERS = 2
BLOCK_PADDING = 128


@dataclass
class Block:
    """Whole lines of text in `data[:size]`, followed by at least BLOCK_PADDING bytes.

    The padding (zeros, or the file's next bytes) lets the scanner load
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
    def from_bytes(cls, text: bytes) -> Block:
        data = np.zeros(len(text) + BLOCK_PADDING, dtype=np.uint8)
        data[: len(text)] = np.frombuffer(text, np.uint8)
        return cls(data, len(text))


@dataclass
class BlockSource:
    """Whole-line blocks of a plain or gzip file, with what was left at its end."""

    path: Path
    progress: Progress | None
    tail: bytes = b""
    is_gzip_truncated: bool = False

    def blocks(self) -> Iterator[Block]:
        total = self.path.stat().st_size
        with self.path.open("rb") as handle:
            is_gzip = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            if is_gzip:
                yield from self._text_blocks(handle, total)
            else:
                yield from self._plain_blocks(handle, total)

    def _plain_blocks(self, handle: io.BufferedReader, total: int) -> Iterator[Block]:
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
                yield Block(whole[start:], cut - start, release)
            else:
                yield Block.from_bytes(whole[start:cut].tobytes())
            start = cut
            if self.progress is not None:
                self.progress(start, total)
        self.tail = whole[start:total].tobytes()
        if self.progress is not None:
            self.progress(total, total)

    def _text_blocks(self, handle: io.BufferedReader, total: int) -> Iterator[Block]:
        carry = b""
        raw = iter(lambda: handle.read(READ_BYTES), b"")
        for chunk in self._gunzip(raw):
            if self.progress is not None:
                self.progress(handle.tell(), total)
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            yield Block.from_bytes(b"".join([carry, memoryview(chunk)[:cut]]))
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
