"""Progress lines on standard error for long reads, used by the CLI only."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class ProgressPrinter:
    """Print `label: 42% (760 of 1800 MB)` to a stream as a long read advances.

    On a terminal the line is redrawn in place. Elsewhere, such as in CI logs, a
    new line is written at most every `min_interval_s` seconds to keep logs short.
    """

    def __init__(
        self, label: str, *, stream: TextIO | None = None, min_interval_s: float = 2.0
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval_s = min_interval_s
        self._is_tty = self.stream.isatty()
        self._last_print = 0.0
        self._printed = False

    def __call__(self, bytes_done: int, bytes_total: int) -> None:
        now = time.monotonic()
        interval = 0.2 if self._is_tty else self.min_interval_s
        if now - self._last_print < interval:
            return
        self._last_print = now
        self._write(bytes_done, bytes_total)

    def __enter__(self) -> ProgressPrinter:
        self._last_print = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._printed and self._is_tty:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, bytes_done: int, bytes_total: int) -> None:
        megabytes = 1_000_000
        if bytes_total > 0:
            percent = min(100.0, 100.0 * bytes_done / bytes_total)
            text = (
                f"{self.label}: {percent:3.0f}% "
                f"({bytes_done / megabytes:,.0f} of {bytes_total / megabytes:,.0f} MB)"
            )
        else:
            text = f"{self.label}: {bytes_done / megabytes:,.0f} MB"
        end = "\r" if self._is_tty else "\n"
        self.stream.write(text + end)
        self.stream.flush()
        self._printed = True
