"""Fault injection of the rehearsal target: latency, errors, rate limit, leak, pool."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from canarykit.target.config import TargetConfig
from canarykit.target.metrics import TargetMetrics

logger = logging.getLogger(__name__)

# Exit status of a worker that restarts on purpose; the supervisor starts a new one.
RESTART_EXIT_CODE = 75
_BYTES_PER_MB = 1_000_000
_LEAK_STEP_S = 1.0
_APP_LOG_INTERVAL_S = 1.0


class ConnectionPool:
    """A database connection pool stand-in: an asyncio semaphore with gauges."""

    def __init__(self, size: int, metrics: TargetMetrics) -> None:
        self.size = size
        self.in_use = 0
        self.waiters = 0
        self._semaphore = asyncio.Semaphore(size)
        self._metrics = metrics
        metrics.pool_max.set(size)
        self._publish()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        """Hold one connection for the body of the ``async with`` block."""
        self.waiters += 1
        self._publish()
        try:
            await self._semaphore.acquire()
        finally:
            self.waiters -= 1
        self.in_use += 1
        self._publish()
        try:
            yield
        finally:
            self.in_use -= 1
            self._semaphore.release()
            self._publish()

    def _publish(self) -> None:
        self._metrics.pool_in_use.set(self.in_use)
        self._metrics.pool_waiters.set(self.waiters)


class AppLog:
    """The target's own application log: one line per record, flushed at once.

    Line format: ``<ISO 8601 UTC time> <LEVEL> canarykit.target: <message>``.
    """

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a", encoding="utf-8")

    def write(self, level: str, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._file.write(f"{stamp} {level} canarykit.target: {message}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class FaultInjector:
    """Runtime state of every fault of one target process."""

    def __init__(self, config: TargetConfig, metrics: TargetMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.pool = ConnectionPool(config.pool_size, metrics)
        self.is_critical = False
        self.app_log = AppLog(config.log_file) if config.log_file else None
        self._started_at = time.time()
        self._leaked: list[bytes] = []
        self._rate_window = -1
        self._rate_count = 0
        self._is_rate_limit_logged = False
        self._window_counts = {"requests": 0, "injected_500": 0, "rejected_429": 0}
        self._tasks: list[asyncio.Task[None]] = []

    def elapsed_s(self) -> float:
        """Seconds since the clock origin of the fault schedule."""
        return time.time() - self.config.clock_origin

    async def delay(self) -> None:
        """Sleep for the fixed latency plus the spike when inside the spike window."""
        delay_ms = self.config.latency_ms
        if self._is_in_spike():
            delay_ms += self.config.spike_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)

    def is_rate_limited(self) -> bool:
        """Count one event post; return True when it exceeds this second's limit."""
        limit = self.config.rate_limit_per_s
        if limit <= 0:
            return False
        window = int(time.monotonic())
        if window != self._rate_window:
            self._rate_window = window
            self._rate_count = 0
        self._rate_count += 1
        if self._rate_count <= limit:
            return False
        self._window_counts["rejected_429"] += 1
        if not self._is_rate_limit_logged:
            self._is_rate_limit_logged = True
            logger.info(
                "fault active: rate limit of %d/s reached, returning 429", limit
            )
        return True

    def is_error_injected(self) -> bool:
        """Count one event post; return True when it must fail with HTTP 500."""
        if self.config.error_ratio <= 0 or random.random() >= self.config.error_ratio:
            return False
        self._window_counts["injected_500"] += 1
        return True

    def count_request(self) -> None:
        self._window_counts["requests"] += 1

    def start(self) -> None:
        """Start the timed faults as tasks of the running event loop."""
        for description in self.config.fault_descriptions():
            logger.info("fault configured: %s", description)
        coroutines = [self._log_spike_window()]
        if self.config.leak_mb_per_min > 0:
            coroutines.append(self._leak_memory())
        if self.app_log is not None:
            coroutines.append(self._write_app_log())
        if self.config.critical_after_s > 0:
            coroutines.append(self._raise_critical())
        if self.config.restart_after_s > 0 and self._is_future(
            self.config.restart_after_s
        ):
            coroutines.append(self._restart())
        self._tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.app_log is not None:
            self.app_log.close()

    def _is_in_spike(self) -> bool:
        if self.config.spike_ms <= 0:
            return False
        elapsed_s = self.elapsed_s()
        start_s = self.config.spike_start_s
        return start_s <= elapsed_s < start_s + self.config.spike_duration_s

    def _is_future(self, offset_s: float) -> bool:
        # A restarted process keeps the clock origin, so events of the first
        # process that already happened are not repeated.
        return self.config.clock_origin + offset_s >= self._started_at

    async def _sleep_until(self, offset_s: float) -> None:
        await asyncio.sleep(max(0.0, offset_s - self.elapsed_s()))

    async def _log_spike_window(self) -> None:
        if self.config.spike_ms <= 0:
            return
        end_s = self.config.spike_start_s + self.config.spike_duration_s
        if self.elapsed_s() < end_s:
            await self._sleep_until(self.config.spike_start_s)
            logger.info(
                "fault activated: latency spike of %g ms for %g s",
                self.config.spike_ms,
                self.config.spike_duration_s,
            )
            await self._sleep_until(end_s)
            logger.info("fault ended: latency spike")

    async def _leak_memory(self) -> None:
        step_bytes = int(
            self.config.leak_mb_per_min * _BYTES_PER_MB * _LEAK_STEP_S / 60.0
        )
        logger.info("fault activated: leaking %d bytes per second", step_bytes)
        while True:
            # Bytes built by repetition are written page by page, so the resident
            # set grows; a zero-filled buffer could stay unbacked by the kernel.
            self._leaked.append(b"\x5a" * step_bytes)
            self.metrics.leaked_bytes.set(step_bytes * len(self._leaked))
            await asyncio.sleep(_LEAK_STEP_S)

    async def _write_app_log(self) -> None:
        assert self.app_log is not None
        self.app_log.write("INFO", f"started, pid {os.getpid()}")
        while True:
            await asyncio.sleep(_APP_LOG_INTERVAL_S)
            counts = self._window_counts
            self._window_counts = dict.fromkeys(counts, 0)
            self.app_log.write(
                "INFO", f"served {counts['requests']} requests in the last second"
            )
            if counts["injected_500"]:
                self.app_log.write(
                    "ERROR", f"{counts['injected_500']} event posts failed with 500"
                )
            if counts["rejected_429"]:
                self.app_log.write(
                    "WARNING", f"{counts['rejected_429']} event posts rate limited"
                )

    async def _raise_critical(self) -> None:
        if not self._is_future(self.config.critical_after_s):
            self.is_critical = True
            return
        await self._sleep_until(self.config.critical_after_s)
        self.is_critical = True
        logger.info("fault activated: CRITICAL log line, /health now unhealthy")
        if self.app_log is not None:
            self.app_log.write(
                "CRITICAL",
                "event store unreachable, giving up\n"
                "Traceback (most recent call last):\n"
                '  File "canarykit/target/faults.py", line 1, in store_event\n'
                "ConnectionError: event store refused the connection",
            )

    async def _restart(self) -> None:
        await self._sleep_until(self.config.restart_after_s)
        logger.info("fault activated: restarting the target process %d", os.getpid())
        if self.app_log is not None:
            self.app_log.write("WARNING", "restarting on purpose")
            self.app_log.close()
        # Leave at once, cutting in-flight requests the way a crash does.
        os._exit(RESTART_EXIT_CODE)
