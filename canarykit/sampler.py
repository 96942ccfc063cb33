"""Scrape the target's /metrics and probe its /health every few seconds during a run.

Each scrape and probe is appended to ``samples/metrics.ndjson`` and
``samples/health.ndjson`` and flushed at once, so a crash loses at most the line
being written. Snapshots go to ``snapshots/`` at 5/30, 15/30 and 25/30 of the
planned duration (T+5, T+15 and T+25 minutes of a 30-minute canary), and the
last scrape and probe to ``canary_final_metrics.txt`` and ``canary_final_health.json``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import orjson
import pandas as pd

from canarykit.errors import InvalidInputError
from canarykit.prom import read_ndjson
from canarykit.redact import redact

logger = logging.getLogger(__name__)

METRICS_SAMPLES_PATH = Path("samples") / "metrics.ndjson"
HEALTH_SAMPLES_PATH = Path("samples") / "health.ndjson"
SNAPSHOT_DIR = Path("snapshots")
FINAL_METRICS_PATH = Path("canary_final_metrics.txt")
FINAL_HEALTH_PATH = Path("canary_final_health.json")
# Snapshot marks as fractions of the planned duration: minutes 5, 15, 25 of 30.
SNAPSHOT_FRACTIONS = (5 / 30, 15 / 30, 25 / 30)
HEALTH_COLUMNS = ("time", "elapsed_s", "ok", "status", "error", "healthy", "body")
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _Probe:
    """One metrics scrape or health probe, as written to its NDJSON file."""

    record: dict[str, Any]
    body_text: str | None


class Sampler:
    """Scrape /metrics and probe /health on a background thread until ``stop()``.

    A failed request (refused, timed out, bad status) is written as a sample with
    ``ok`` false and the error, and sampling goes on. Every body and error message
    passes through ``redact`` with ``secrets`` before it is stored or logged.
    """

    def __init__(
        self,
        *,
        base_url: str,
        run_dir: Path,
        interval_s: float = 5.0,
        duration_s: float,
        timeout_s: float = 2.0,
        secrets: Iterable[str] = (),
    ) -> None:
        if interval_s <= 0 or duration_s <= 0 or timeout_s <= 0:
            raise InvalidInputError(
                "Sampler needs positive interval_s, duration_s and timeout_s, got "
                f"{interval_s!r}, {duration_s!r} and {timeout_s!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.run_dir = run_dir
        self.interval_s = interval_s
        self.duration_s = duration_s
        self.timeout_s = timeout_s
        self.sample_count = 0
        self.failed_count = 0
        self._secrets = [secret for secret in secrets if secret]
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_monotonic = 0.0
        self._snapshot_marks_s = [
            fraction * duration_s for fraction in SNAPSHOT_FRACTIONS
        ]
        self._snapshot_labels = snapshot_labels(duration_s)
        self._failing_paths: set[str] = set()

    def start(self) -> None:
        """Create the output folders and start sampling; the first sample is at once."""
        if self._thread is not None:
            raise InvalidInputError(f"Sampler for {self.base_url} was already started")
        for folder in (METRICS_SAMPLES_PATH.parent, SNAPSHOT_DIR):
            (self.run_dir / folder).mkdir(parents=True, exist_ok=True)
        self._started_monotonic = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name="canarykit-sampler", daemon=True
        )
        self._thread.start()
        logger.info(
            "sampling %s every %g s into %s",
            self.base_url,
            self.interval_s,
            self.run_dir,
        )

    def stop(self) -> None:
        """Stop sampling, then take the final scrape and probe; safe to call twice."""
        thread = self._thread
        if thread is None or self._stop_event.is_set():
            return
        self._stop_event.set()
        thread.join(_STOP_TIMEOUT_S)
        logger.info(
            "sampler stopped after %d samples, %d failed",
            self.sample_count,
            self.failed_count,
        )

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception:
            # Nothing can catch an error raised on this thread, so it is logged.
            logger.exception("sampler of %s stopped by an error", self.base_url)

    def _sample_until_stopped(self) -> None:
        metrics_path = self.run_dir / METRICS_SAMPLES_PATH
        health_path = self.run_dir / HEALTH_SAMPLES_PATH
        with (
            httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client,
            metrics_path.open("ab") as metrics_file,
            health_path.open("ab") as health_file,
        ):
            tick = 0
            while True:
                scrape, probe = self._sample(client, metrics_file, health_file)
                self._write_due_snapshots(scrape, probe)
                tick += 1
                next_at = self._started_monotonic + tick * self.interval_s
                if self._stop_event.wait(max(0.0, next_at - time.monotonic())):
                    break
            scrape, probe = self._sample(client, metrics_file, health_file)
            self._write_final(scrape, probe)

    def _sample(
        self, client: httpx.Client, metrics_file: IO[bytes], health_file: IO[bytes]
    ) -> tuple[_Probe, _Probe]:
        scrape = self._scrape_metrics(client)
        probe = self._probe_health(client)
        for sample, file in ((scrape, metrics_file), (probe, health_file)):
            file.write(orjson.dumps(sample.record) + b"\n")
            file.flush()
            self.sample_count += 1
            if not sample.record["ok"]:
                self.failed_count += 1
        return scrape, probe

    def _scrape_metrics(self, client: httpx.Client) -> _Probe:
        record = self._new_record()
        try:
            response = client.get("/metrics")
        except httpx.HTTPError as error:
            return self._failed(record, "/metrics", error)
        self._failing_paths.discard("/metrics")
        text = redact(response.text, self._secrets)
        record.update(
            ok=response.status_code == 200,
            status=response.status_code,
            error=_status_error(response),
            text=text,
        )
        return _Probe(record, text)

    def _probe_health(self, client: httpx.Client) -> _Probe:
        record = self._new_record()
        try:
            response = client.get("/health")
        except httpx.HTTPError as error:
            return self._failed(record, "/health", error, healthy=False)
        self._failing_paths.discard("/health")
        # The body is redacted as text before it is parsed, so a secret in any
        # JSON member or in a non-JSON body is caught.
        text = redact(response.text, self._secrets)
        body = _json_or_text(text)
        is_healthy = (
            response.status_code == 200
            and isinstance(body, dict)
            and body.get("status") == "healthy"
        )
        record.update(
            ok=response.status_code == 200,
            status=response.status_code,
            error=_status_error(response),
            healthy=is_healthy,
            body=body,
        )
        return _Probe(record, text)

    def _new_record(self) -> dict[str, Any]:
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "elapsed_s": round(time.monotonic() - self._started_monotonic, 3),
        }

    def _failed(
        self, record: dict[str, Any], path: str, error: httpx.HTTPError, **extra: Any
    ) -> _Probe:
        message = redact(f"{type(error).__name__}: {error}", self._secrets)
        # One warning per failing streak, so a long outage does not flood the log.
        if path not in self._failing_paths:
            self._failing_paths.add(path)
            logger.warning("request %s%s failed: %s", self.base_url, path, message)
        if "healthy" in extra:
            record.update(
                ok=False, status=None, error=message, healthy=False, body=None
            )
        else:
            record.update(ok=False, status=None, error=message, text=None)
        return _Probe(record, None)

    def _write_due_snapshots(self, scrape: _Probe, probe: _Probe) -> None:
        elapsed_s = scrape.record["elapsed_s"]
        while self._snapshot_marks_s and elapsed_s >= self._snapshot_marks_s[0]:
            self._snapshot_marks_s.pop(0)
            label = self._snapshot_labels.pop(0)
            snapshot_dir = self.run_dir / SNAPSHOT_DIR
            self._write_pair(
                scrape,
                probe,
                metrics_path=snapshot_dir / f"metrics_{label}.txt",
                health_path=snapshot_dir / f"health_{label}.json",
            )

    def _write_final(self, scrape: _Probe, probe: _Probe) -> None:
        self._write_pair(
            scrape,
            probe,
            metrics_path=self.run_dir / FINAL_METRICS_PATH,
            health_path=self.run_dir / FINAL_HEALTH_PATH,
        )

    def _write_pair(
        self, scrape: _Probe, probe: _Probe, *, metrics_path: Path, health_path: Path
    ) -> None:
        if scrape.body_text is None:
            logger.warning(
                "no metrics body for %s: %s", metrics_path, scrape.record["error"]
            )
        else:
            metrics_path.write_text(scrape.body_text, encoding="utf-8")
        health_path.write_bytes(orjson.dumps(probe.record, option=orjson.OPT_INDENT_2))


def snapshot_labels(duration_s: float) -> list[str]:
    """Name the snapshots of a run: ``T+05m`` when every mark is a whole minute.

    Otherwise marks are named in seconds, e.g. ``T+10s`` or ``T+0.5s``.
    """
    marks_s = [round(fraction * duration_s, 3) for fraction in SNAPSHOT_FRACTIONS]
    if all(mark_s > 0 and mark_s % 60 == 0 for mark_s in marks_s):
        return [f"T+{int(mark_s) // 60:02d}m" for mark_s in marks_s]
    return [f"T+{mark_s:02g}s" for mark_s in marks_s]


def load_health_samples(run_dir: Path) -> pd.DataFrame:
    """Read ``samples/health.ndjson`` of a run, one row per probe.

    Columns: ``time`` (UTC), ``elapsed_s`` (float64), ``ok`` and ``healthy``
    (bool), ``status`` (nullable Int64, ``<NA>`` when no response came),
    ``error`` (str or None) and ``body`` (parsed JSON, text or None). A missing
    file gives an empty frame with these columns.
    """
    path = run_dir / HEALTH_SAMPLES_PATH
    records = list(read_ndjson(path)) if path.exists() else []
    if not path.exists():
        logger.warning("no health samples: %s does not exist", path)
    frame = pd.DataFrame(
        [[record.get(column) for column in HEALTH_COLUMNS] for record in records],
        columns=list(HEALTH_COLUMNS),
    )
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    frame["elapsed_s"] = frame["elapsed_s"].astype("float64")
    frame["ok"] = frame["ok"].astype("bool")
    frame["healthy"] = frame["healthy"].astype("bool")
    frame["status"] = frame["status"].astype("Int64")
    return frame


def _status_error(response: httpx.Response) -> str | None:
    if response.status_code == 200:
        return None
    return f"HTTP {response.status_code} from {response.request.url}"


def _json_or_text(text: str) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
