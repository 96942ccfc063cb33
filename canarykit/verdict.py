"""The SLO verdict of one canary run: criteria, overall status and verdict.json.

Which criteria are required (a required NO_DATA or INCONCLUSIVE makes the run
INCONCLUSIVE; any FAIL makes it FAIL, required or not):

- p95_latency, error_rate, sustained_p95 and load_delivered come from k6's output
  and are always required.
- restarts, health, heap_growth and db_pool come from the sampler files. Each is
  required when its samples file exists in the run folder; db_pool is required only
  when the target exposes the pool metrics. Without a run folder (`canarykit
  analyze` on a bare k6 file) they are NO_DATA and not required. The verdict
  then rests on the k6 criteria, and `notes` states that.
- critical_logs is required when logs/log_events.ndjson or logs/log_sources.json
  exists, that is when a log watcher ran. When log_sources.json shows that no file
  matched the log patterns, critical_logs is NO_DATA and the run INCONCLUSIVE.

A run shorter than the planned canary (`SloSettings.full_canary_s`, 30 min, or the
planned duration when longer) or than the sustained-P95 limit can still PASS: each
criterion judges what the run measured, and a rehearsal of a few seconds is expected
to exit 0. sustained_p95 cannot observe a breach in traffic that spans no more than
its limit; it then passes with a reason that says so. Such a verdict carries
`input["short_run_reason"]` and a note, and its recommendation says to run the full
canary before promoting instead of claiming the canary can be promoted.

A sampler-based PASS becomes INCONCLUSIVE when its samples start after the k6
traffic or stop before it ends by more than twice the sample interval plus 1 s.
A sampler that stopped early cannot vouch for the rest of the run.

A truncated k6 file (its last line cut short) cannot PASS: the status becomes
INCONCLUSIVE and `input["truncation_reason"]` explains why. A FAIL stays a FAIL.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from canarykit import criteria as traffic
from canarykit import logwatch, prom, sampler
from canarykit import service_criteria as service
from canarykit.criteria import (
    FAIL,
    INCONCLUSIVE,
    NO_DATA,
    PASS,
    Criterion,
    SloSettings,
)
from canarykit.errors import InvalidInputError
from canarykit.verdict_table import results_table

if TYPE_CHECKING:
    from canarykit.k6output import K6Output

__all__ = [
    "Criterion",
    "SloSettings",
    "Verdict",
    "evaluate",
    "load_verdict",
    "results_table",
    "write_verdict",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
LOG_SOURCES_PATH = "logs/log_sources.json"
# A run counts as full when its traffic, scaled from first-to-last request to n
# gaps, reaches the required length within this slack.
FULL_RUN_SLACK_S = 1.0


@dataclass(frozen=True)
class Verdict:
    """The overall status of a run with every criterion and the facts behind them.

    `population` describes the requests the latency and error figures use.
    `input` contains k6 file facts (`lines_read`, `dropped_lines`, `is_truncated`,
    `truncation_reason`, ...) and which run-folder files were read. `notes` lists
    what limits the verdict, in words.
    """

    status: str
    status_reason: str
    criteria: tuple[Criterion, ...]
    population: dict[str, Any]
    input: dict[str, Any]
    settings: SloSettings
    generated_at: str
    notes: tuple[str, ...] = ()
    schema_version: str = SCHEMA_VERSION

    def criterion(self, criterion_id: str) -> Criterion:
        """Return the criterion with this id; raise KeyError when there is none."""
        for item in self.criteria:
            if item.id == criterion_id:
                return item
        raise KeyError(criterion_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as the JSON object of verdict.json."""
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "status_reason": self.status_reason,
            "criteria": [item.to_dict() for item in self.criteria],
            "population": self.population,
            "input": self.input,
            "settings": dataclasses.asdict(self.settings),
            "notes": list(self.notes),
            "generated_at": self.generated_at,
        }


@dataclass(frozen=True)
class _RunFolder:
    """Sampler and log-watcher frames of a run folder; None where a file is absent."""

    metrics: pd.DataFrame | None = None
    health: pd.DataFrame | None = None
    log_events: pd.DataFrame | None = None
    log_sources: dict[str, Any] | None = None
    files: dict[str, bool] = field(default_factory=dict)


def evaluate(
    *,
    k6: K6Output,
    run_dir: Path | None,
    settings: SloSettings = SloSettings(),  # noqa: B008 (frozen, so sharing is safe)
    target_rate_per_s: float | None = None,
    duration_s: float | None = None,
    generated_at: datetime | None = None,
) -> Verdict:
    """Judge every criterion for one run and combine them into the overall status.

    `run_dir` is the run folder with the sampler and log-watcher files, or None for
    a bare k6 file. `target_rate_per_s` and `duration_s` are the planned load; without
    them load_delivered checks dropped iterations only and uses the traffic span.
    """
    population = traffic.select_population(k6)
    folder = _read_run_folder(run_dir)

    items: tuple[Criterion, ...] = (
        traffic.p95_latency(population, settings),
        traffic.error_rate(population, k6, settings),
        traffic.sustained_p95(population, settings),
        service.restarts(folder.metrics, folder.health, settings),
        service.critical_logs(folder.log_events, folder.log_sources),
        service.health(folder.health),
        service.heap_growth(folder.metrics, settings),
        service.db_pool(folder.metrics, settings),
        traffic.load_delivered(
            population,
            k6,
            settings,
            target_rate_per_s=target_rate_per_s,
            duration_s=duration_s,
        ),
    )
    items = _limit_to_sampled_time(items, folder, population)
    input_facts = _input_facts(k6, run_dir, folder)
    input_facts.update(_length_facts(population, settings, duration_s))
    status, status_reason = _overall_status(items, input_facts)
    logger.info("verdict %s: %s", status, status_reason)

    return Verdict(
        status=status,
        status_reason=status_reason,
        criteria=items,
        population=_population_facts(population),
        input=input_facts,
        settings=settings,
        generated_at=(generated_at or datetime.now(UTC)).isoformat(),
        notes=tuple(_notes(items, input_facts, run_dir)),
    )


def _read_run_folder(run_dir: Path | None) -> _RunFolder:
    """Load the sampler and log-watcher files that exist in the run folder."""
    if run_dir is None:
        return _RunFolder()
    files = {
        "samples/metrics.ndjson": (run_dir / "samples" / "metrics.ndjson").is_file(),
        "samples/health.ndjson": (run_dir / "samples" / "health.ndjson").is_file(),
        "logs/log_events.ndjson": (run_dir / "logs" / "log_events.ndjson").is_file(),
        LOG_SOURCES_PATH: (run_dir / LOG_SOURCES_PATH).is_file(),
    }
    return _RunFolder(
        metrics=prom.load_metric_samples(run_dir)
        if files["samples/metrics.ndjson"]
        else None,
        health=sampler.load_health_samples(run_dir)
        if files["samples/health.ndjson"]
        else None,
        log_events=(
            logwatch.load_log_events(run_dir)
            if files["logs/log_events.ndjson"]
            else None
        ),
        log_sources=(
            _read_log_sources(run_dir / LOG_SOURCES_PATH)
            if files[LOG_SOURCES_PATH]
            else None
        ),
        files=files,
    )


def _read_log_sources(path: Path) -> dict[str, Any]:
    """Read logs/log_sources.json: `patterns`, `files` and `unmatched_patterns`."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path} is not valid JSON ({error}); expected the log watcher's "
            "{patterns, files, unmatched_patterns} object; remove the file or run "
            "the canary again"
        ) from error
    lists = ("patterns", "files", "unmatched_patterns")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key, []), list) for key in lists
    ):
        raise InvalidInputError(
            f"{path} contains {str(data)[:200]!r}; expected an object whose patterns, "
            "files and unmatched_patterns are lists; remove the file or run the "
            "canary again"
        )
    if not all(
        isinstance(entry, dict) and "path" in entry for entry in data.get("files", [])
    ):
        raise InvalidInputError(
            f"{path} lists a file entry without a path; expected "
            '{"path": ..., "first_seen": ...} objects; remove the file or run the '
            "canary again"
        )
    return dict(data)


def _limit_to_sampled_time(
    items: tuple[Criterion, ...], folder: _RunFolder, population: traffic.Population
) -> tuple[Criterion, ...]:
    """Make sampler-based passes INCONCLUSIVE when the samples miss part of the run."""
    times = population.scenario["time"]
    if times.empty:
        return items
    start, end = times.min(), times.max()
    gaps: dict[str, list[str]] = {"metrics": [], "health": []}
    if folder.metrics is not None:
        scrapes = pd.Series(folder.metrics["time"].unique())
        gap = service.coverage_gap(scrapes, start, end, "metrics scrapes")
        gaps["metrics"] += [gap] if gap else []
    if folder.health is not None:
        gap = service.coverage_gap(folder.health["time"], start, end, "health probes")
        gaps["health"] += [gap] if gap else []
    for gap in gaps["metrics"] + gaps["health"]:
        logger.warning("sampler files miss part of the run: %s", gap)

    sources = {
        "restarts": gaps["metrics"] + gaps["health"],
        "heap_growth": gaps["metrics"],
        "db_pool": gaps["metrics"],
        "health": gaps["health"],
    }
    return tuple(
        service.limit_to_coverage(item, sources.get(item.id, [])) for item in items
    )


def _input_facts(
    k6: K6Output, run_dir: Path | None, folder: _RunFolder
) -> dict[str, Any]:
    """Collect k6 file facts and which run-folder files were read."""
    facts: dict[str, Any] = {
        "lines_read": int(k6.lines_read),
        "blank_lines": int(k6.blank_lines),
        "dropped_lines": int(k6.dropped_lines),
        "is_truncated": bool(k6.is_truncated),
        "truncation_reason": None,
        "non_finite_values": int(k6.non_finite_values),
        "has_expected_response": bool(k6.has_expected_response),
        "run_dir": str(run_dir) if run_dir is not None else None,
        "run_files": folder.files,
    }
    if k6.is_truncated:
        facts["truncation_reason"] = (
            f"the k6 output ends with an incomplete line ({k6.dropped_lines} line(s) "
            "dropped), so k6 was likely stopped while writing and the end of the run "
            "is missing"
        )
        logger.warning("k6 output is truncated: %s", facts["truncation_reason"])
    return facts


def _length_facts(
    population: traffic.Population, settings: SloSettings, duration_s: float | None
) -> dict[str, Any]:
    """Compare the traffic's length with the planned canary and the sustained limit."""
    span_s = traffic.traffic_span_s(population)
    facts: dict[str, Any] = {
        "traffic_span_s": span_s,
        "planned_duration_s": duration_s,
        "short_run_reason": None,
    }
    required_s = max(settings.full_canary_s, settings.sustained_max_s, duration_s or 0)
    requests = len(population.scenario)
    covered_s = span_s * requests / (requests - 1) if span_s else 0.0
    if covered_s + FULL_RUN_SLACK_S >= required_s:
        return facts
    facts["short_run_reason"] = (
        f"the traffic spans {covered_s:.1f} s, shorter than the "
        f"{traffic.format_span(required_s)} canary, so this run is a rehearsal and "
        "cannot show what the full canary would"
    )
    if covered_s <= settings.sustained_max_s:
        facts["short_run_reason"] += (
            "; sustained_p95 cannot observe a stretch over "
            f"{traffic.format_span(settings.sustained_max_s)} in it"
        )
    return facts


def _population_facts(population: traffic.Population) -> dict[str, Any]:
    """Describe the request populations the latency and error figures use."""
    return {
        "scenario_requests": len(population.scenario),
        "expected_requests": len(population.expected),
        "description": population.description,
        "expected_rule": (
            "status 200-399 (fallback: no expected_response tag)"
            if population.used_status_fallback
            else "expected_response:true"
        ),
        "status_fallback": population.used_status_fallback,
    }


def _overall_status(
    items: tuple[Criterion, ...], input_facts: dict[str, Any]
) -> tuple[str, str]:
    """Combine criteria: a FAIL fails; a required gap or truncation is inconclusive."""
    failed = [item.id for item in items if item.status == FAIL]
    if failed:
        return FAIL, f"failed: {', '.join(failed)}"
    gaps = [
        f"{item.id} ({item.status})"
        for item in items
        if item.required and item.status in (NO_DATA, INCONCLUSIVE)
    ]
    if gaps:
        return INCONCLUSIVE, f"required criteria without a result: {', '.join(gaps)}"
    if input_facts["is_truncated"]:
        return INCONCLUSIVE, str(input_facts["truncation_reason"])
    return PASS, "every required criterion passed"


def _notes(
    items: tuple[Criterion, ...], input_facts: dict[str, Any], run_dir: Path | None
) -> list[str]:
    """List what limits the verdict, in words."""
    notes = []
    if run_dir is None:
        notes.append(
            "no run folder was given, so restarts, health, memory, database pool and "
            "logs were not judged; the verdict rests on the k6 output alone"
        )
    if input_facts["truncation_reason"]:
        notes.append(input_facts["truncation_reason"])
    if input_facts["short_run_reason"]:
        notes.append(input_facts["short_run_reason"])
    if not input_facts["has_expected_response"]:
        notes.append(
            "no request carries the expected_response tag, so status 200-399 stands "
            "in for expected responses"
        )
    if input_facts["non_finite_values"]:
        notes.append(
            f"{input_facts['non_finite_values']} NaN or infinite values were left out"
        )
    if run_dir is not None:
        notes.extend(
            f"{item.id} not required: {item.reason}"
            for item in items
            if not item.required and item.status == NO_DATA
        )
    return notes


def write_verdict(verdict: Verdict, path: Path) -> Path:
    """Write the verdict as indented JSON to `path` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(verdict.to_dict(), option=orjson.OPT_INDENT_2))
    logger.info("verdict written to %s", path)
    return path


def load_verdict(path: Path) -> Verdict:
    """Read a verdict.json written by `write_verdict`.

    Raises InvalidInputError when the file is not JSON, or not a verdict of
    schema version 1.
    """
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path} is not valid JSON ({error}); expected a verdict.json written by "
            "canarykit"
        ) from error
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise InvalidInputError(
            f"{path} has schema_version {version!r}, expected {SCHEMA_VERSION!r}; "
            "analyze the run again with this canarykit version"
        )
    try:
        return _verdict_from_dict(data)
    except (KeyError, TypeError) as error:
        raise InvalidInputError(
            f"{path} lacks verdict field {error}; expected a verdict.json written by "
            "canarykit"
        ) from error


def _verdict_from_dict(data: dict[str, Any]) -> Verdict:
    """Build a Verdict from its JSON object."""
    settings = dict(data["settings"])
    settings["heap_metric_names"] = tuple(settings["heap_metric_names"])
    return Verdict(
        status=data["status"],
        status_reason=data["status_reason"],
        criteria=tuple(Criterion(**item) for item in data["criteria"]),
        population=data["population"],
        input=data["input"],
        settings=SloSettings(**settings),
        generated_at=data["generated_at"],
        notes=tuple(data["notes"]),
        schema_version=data["schema_version"],
    )
