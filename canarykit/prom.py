"""Parse Prometheus text and OpenMetrics scrapes with prometheus_client's parsers.

A malformed line does not lose the scrape: it is returned as a ``ParseError`` with
its line number, logged as a WARNING and skipped, and every other sample is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

METRICS_SAMPLES_PATH = Path("samples") / "metrics.ndjson"
SAMPLE_COLUMNS = ("time", "elapsed_s", "metric", "labels", "value")
_MAX_WARNINGS_PER_SCRAPE = 5


@dataclass(frozen=True)
class Sample:
    """One sample line: metric name as exposed (``_total``, ``_bucket`` kept)."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class ParseError:
    """A line that the parser rejected; ``line_no`` counts from 1."""

    line_no: int
    line: str
    message: str


@dataclass(frozen=True)
class Scrape:
    """The samples of one scrape, in exposition order, and its rejected lines."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Return the first sample value named ``name`` whose labels include ``labels``.

        ``None`` when no sample matches, never 0.
        """
        expected_labels = (labels or {}).items()
        for sample in self.samples:
            if sample.name == name and expected_labels <= sample.labels.items():
                return sample.value
        return None


def parse_exposition(text: str) -> Scrape:
    """Parse a scrape body as OpenMetrics when it ends with ``# EOF``, else as text."""
    is_openmetrics = text.rstrip().endswith("# EOF")
    try:
        return Scrape(samples=_parse_whole(text, is_openmetrics=is_openmetrics))
    except ValueError:
        pass

    scrape = _parse_line_by_line(text, is_openmetrics=is_openmetrics)
    _log_errors(scrape.errors)
    return scrape


def format_labels(labels: dict[str, str]) -> str:
    """Format labels as ``a="x",b="y"``, sorted by name, with Prometheus escaping."""
    return ",".join(
        f'{name}="{_escape_label_value(labels[name])}"' for name in sorted(labels)
    )


def load_metric_samples(run_dir: Path) -> pd.DataFrame:
    """Read ``samples/metrics.ndjson`` of a run into one row per sample.

    Columns: ``time`` (UTC scrape time), ``elapsed_s`` (seconds since the sampler
    started), ``metric`` and ``labels`` (``format_labels`` text, ``""`` without
    labels) as categories, ``value`` (float64). Failed scrapes add no rows. A
    missing file or one without samples gives an empty frame with these columns.
    """
    rows = [row for record in _read_scrapes(run_dir) for row in _scrape_rows(record)]
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    frame["elapsed_s"] = frame["elapsed_s"].astype("float64")
    frame["metric"] = frame["metric"].astype("category")
    frame["labels"] = frame["labels"].astype("category")
    frame["value"] = frame["value"].astype("float64")
    return frame


def _parse_whole(text: str, *, is_openmetrics: bool) -> list[Sample]:
    if is_openmetrics:
        families = openmetrics_parser.text_string_to_metric_families(text)
    else:
        families = text_string_to_metric_families(text)
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in families
        for sample in family.samples
    ]


def _parse_line_by_line(text: str, *, is_openmetrics: bool) -> Scrape:
    # Each sample line is parsed on its own, without its family's TYPE line, so a
    # histogram bucket does not need the rest of its histogram to be accepted.
    samples: list[Sample] = []
    errors: list[ParseError] = []
    suffix = "\n# EOF\n" if is_openmetrics else "\n"
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            samples += _parse_whole(line + suffix, is_openmetrics=is_openmetrics)
        except ValueError as error:
            errors.append(ParseError(line_no, line, str(error)))
    return Scrape(samples=samples, errors=errors)


def _log_errors(errors: list[ParseError]) -> None:
    for error in errors[:_MAX_WARNINGS_PER_SCRAPE]:
        logger.warning(
            "skipped malformed metrics line %d %r: %s",
            error.line_no,
            error.line[:200],
            error.message,
        )
    if len(errors) > _MAX_WARNINGS_PER_SCRAPE:
        logger.warning(
            "skipped %d more malformed metrics lines in the same scrape",
            len(errors) - _MAX_WARNINGS_PER_SCRAPE,
        )


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _read_scrapes(run_dir: Path) -> Iterator[dict[str, object]]:
    path = run_dir / METRICS_SAMPLES_PATH
    if not path.exists():
        logger.warning("no metrics samples: %s does not exist", path)
        return
    yield from read_ndjson(path)


def read_ndjson(path: Path) -> Iterator[dict[str, object]]:
    """Yield the JSON objects of an NDJSON file, skipping blank and broken lines.

    A broken line (the last one, when the writer stopped mid-line) is logged as a
    WARNING.
    """
    with path.open("rb") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                logger.warning(
                    "skipped invalid JSON at %s:%d: %s", path, line_no, error
                )
                continue
            if isinstance(record, dict):
                yield record


def _scrape_rows(record: dict[str, object]) -> Iterable[tuple[object, ...]]:
    text = record.get("text")
    if not record.get("ok") or not isinstance(text, str):
        return []
    scrape = parse_exposition(text)
    time, elapsed_s = record.get("time"), record.get("elapsed_s")
    return [
        (time, elapsed_s, sample.name, format_labels(sample.labels), sample.value)
        for sample in scrape.samples
    ]
