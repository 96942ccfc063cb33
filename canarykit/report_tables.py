"""Build the analysis notebook's tables and Markdown, and write its verdict.json files.

Each table function returns a DataFrame of display text and each Markdown function
returns Markdown text, so a notebook cell only calls and displays.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pandas as pd

from canarykit import stats
from canarykit.bundle import ARTEFACTS_DIR, sha256_file
from canarykit.run_facts import SAMPLE_K6_PATH, display_path
from canarykit.verdict import write_verdict

if TYPE_CHECKING:
    from canarykit.criteria import Population
    from canarykit.k6output import K6Output
    from canarykit.verdict import Verdict

logger = logging.getLogger(__name__)

VERDICT_NAME = "verdict.json"
_SERVICE_CRITERIA = ("restarts", "health", "heap_growth", "db_pool", "critical_logs")


def title_markdown(app: str, run_label: str) -> str:
    """Return the report's title and subtitle in Markdown."""
    return f"# Canary report: {app}\n\nRun `{run_label}`\n"


def notes_markdown(verdict: Verdict) -> str:
    """Return the verdict's notes as a Markdown list, or a line when there are none."""
    if not verdict.notes:
        return "No notes: every input the verdict needs was present.\n"
    return "**Notes**\n\n" + "".join(f"- {note}\n" for note in verdict.notes)


def input_facts_table(
    k6: K6Output, k6_path: Path, verdict: Verdict, run_dir: Path | None = None
) -> pd.DataFrame:
    """Describe the k6 file and the request population behind the figures."""
    truncated = "no"
    if k6.is_truncated:
        truncated = f"yes: {k6.dropped_lines} incomplete line(s) dropped at the end"
    expected_rule = (
        "expected_response tag present"
        if k6.has_expected_response
        else "no expected_response tag: status 200-399 counts as expected"
    )
    rows = [
        ("file", display_path(k6_path, run_dir)),
        ("size", f"{k6_path.stat().st_size:,} bytes"),
        ("format", k6.format),
        ("lines read", f"{k6.lines_read:,}"),
        ("requests in file", f"{len(k6.requests):,}"),
        ("truncated", truncated),
        ("non-finite values left out", f"{k6.non_finite_values:,}"),
        ("population", str(verdict.population.get("description", ""))),
        ("expected responses", expected_rule),
        ("run folder", run_dir.name if run_dir is not None else "none (bare k6 file)"),
    ]
    return pd.DataFrame(rows, columns=["fact", "value"])


def criteria_table(verdict: Verdict) -> pd.DataFrame:
    """List every criterion with observed value, target, unit, method and reason."""
    rows = [
        (
            item.id,
            item.status,
            "yes" if item.required else "no",
            _number_text(item.observed),
            _number_text(item.target),
            str(item.evidence.get("unit", "")),
            item.method,
            item.reason,
        )
        for item in verdict.criteria
    ]
    columns = ["criterion", "status", "required", "observed", "target", "unit"]
    return pd.DataFrame(rows, columns=[*columns, "method", "reason"])


def latency_summary_table(population: Population) -> pd.DataFrame:
    """Return P50, P95, P99, average, min and max of http_req_duration in ms.

    The population is the expected scenario responses, as for the P95 SLO, and the
    percentiles use k6's method (linear interpolation between closest ranks).
    """
    durations = population.expected["duration_ms"].to_numpy(dtype=float)
    figures = stats.trend_stats(durations)
    rows = [
        ("P50", figures["med"]),
        ("P95", figures["p(95)"]),
        ("P99", figures["p(99)"]),
        ("average", figures["avg"]),
        ("min", figures["min"]),
        ("max", figures["max"]),
    ]
    table = pd.DataFrame(rows, columns=["statistic", "latency_ms"])
    table["latency_ms"] = table["latency_ms"].map(_milliseconds_text)
    table["requests"] = f"{len(durations):,}"
    return table


def sustained_windows_table(verdict: Verdict) -> pd.DataFrame:
    """List the sustained-P95 windows with their P95 and whether it is above target."""
    item = verdict.criterion("sustained_p95")
    windows = item.evidence.get("windows", [])
    target_ms = verdict.settings.p95_ms
    rows = [
        (
            window["start"],
            f"{window['requests']:,}",
            _milliseconds_text(window["p95_ms"]),
            _above_text(window["p95_ms"], target_ms),
        )
        for window in windows
    ]
    columns = ["window_start", "expected_requests", "p95_ms", "above_target"]
    return pd.DataFrame(rows, columns=columns)


def service_evidence_table(verdict: Verdict) -> pd.DataFrame:
    """List the criteria judged from health, metrics and log files."""
    rows = []
    for criterion_id in _SERVICE_CRITERIA:
        item = verdict.criterion(criterion_id)
        rows.append((item.id, item.status, _number_text(item.observed), item.reason))
    return pd.DataFrame(rows, columns=["criterion", "status", "observed", "reason"])


def snapshot_files_table(run_dir: Path | None) -> pd.DataFrame:
    """List the sampler's snapshot and final files of the run folder with sizes."""
    columns = ["file", "size_bytes"]
    if run_dir is None:
        return pd.DataFrame([], columns=columns)

    files = sorted((run_dir / "snapshots").glob("*"))
    files += sorted(run_dir.glob("canary_final_*"))
    rows = [
        (path.relative_to(run_dir).as_posix(), path.stat().st_size)
        for path in files
        if path.is_file()
    ]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class VerdictFiles:
    """Paths of the verdict.json files the notebook wrote and the existing ones kept."""

    written: list[Path]
    kept: list[Path]


def write_verdict_files(
    verdict: Verdict, run_dir: Path | None, bundle_dir: Path | None
) -> VerdictFiles:
    """Write verdict.json into the run folder and the bundle directory, where given.

    An existing verdict.json is never overwritten: the run folder's file comes
    from the first analysis of the run and is kept.
    """
    written, kept = [], []
    for folder in (run_dir, bundle_dir):
        if folder is None:
            continue
        path = folder / VERDICT_NAME
        if path.exists():
            logger.info("kept %s from an earlier analysis", path)
            kept.append(path)
            continue
        written.append(write_verdict(verdict, path))
    return VerdictFiles(written=written, kept=kept)


def written_files_markdown(files: VerdictFiles, run_dir: Path | None) -> str:
    """Describe where verdict.json was written and kept, without absolute paths."""
    lines = [f"- written: `{_folder_label(path, run_dir)}`\n" for path in files.written]
    lines += [
        f"- kept unchanged: `{_folder_label(path, run_dir)}`, written by an earlier "
        "analysis of this run\n"
        for path in files.kept
    ]
    if not files.written:
        lines.append(
            "- this verdict was written to no file: set bundle_dir to a new folder "
            "to keep it (the executed notebook shows it)\n"
        )
    return "".join(lines)


def run_artefacts(k6_path: Path, run_dir: Path | None) -> list[Path]:
    """List the k6 output, then every other file of the run folder sorted by path."""
    files = [k6_path]
    if run_dir is not None:
        files += sorted(
            path
            for path in run_dir.rglob("*")
            if path.is_file() and path.resolve() != k6_path.resolve()
        )
    return files


def evidence_files_table(
    k6_path: Path, run_dir: Path | None, bundle_dir: Path | None
) -> pd.DataFrame:
    """Hash the run's evidence files as they are now: path, place, size and SHA-256.

    Paths are relative to the bundle directory when one is given, because the run
    folder's files are copied under its `artefacts/`. Without one they are relative
    to the run folder. The k6 output is listed once and stays outside the bundle.
    A notebook that papermill is still executing is left out, and manifest.json
    hashes it later.
    """
    rows = []
    for path in run_artefacts(k6_path, run_dir):
        if path.suffix == ".ipynb" and _is_notebook_running(path):
            continue
        is_k6 = path == k6_path
        rows.append(
            (
                _evidence_label(path, run_dir, bundle_dir, is_k6=is_k6),
                "no: k6 output, kept outside the bundle" if is_k6 else "yes",
                f"{path.stat().st_size:,}",
                sha256_file(path),
            )
        )
    return pd.DataFrame(rows, columns=["file", "in bundle", "size_bytes", "sha256"])


def recommendations_markdown(recommendations: list[str]) -> str:
    """Return recommendations as a numbered Markdown list."""
    if not recommendations:
        return "No recommendations.\n"
    return "".join(
        f"{number}. {text}\n" for number, text in enumerate(recommendations, 1)
    )


def _evidence_label(
    path: Path, run_dir: Path | None, bundle_dir: Path | None, *, is_k6: bool
) -> str:
    in_run_dir = run_dir is not None and path.resolve().is_relative_to(
        run_dir.resolve()
    )
    if bundle_dir is None or path.resolve() == SAMPLE_K6_PATH.resolve():
        return display_path(path, run_dir)
    if is_k6 or not in_run_dir or run_dir is None:
        relative = os.path.relpath(path.resolve(), bundle_dir.resolve())
        return Path(relative).as_posix()
    return f"{ARTEFACTS_DIR}/{path.relative_to(run_dir).as_posix()}"


def _folder_label(path: Path, run_dir: Path | None) -> str:
    if run_dir is not None and path.parent == run_dir:
        return f"{run_dir.name}/{path.name} (run folder)"
    return f"{path.parent.name}/{path.name} (bundle directory)"


def _is_notebook_running(path: Path) -> bool:
    """Return True for a notebook papermill started and has not finished yet."""
    try:
        metadata = orjson.loads(path.read_bytes()).get("metadata", {})
    except (orjson.JSONDecodeError, AttributeError):
        return False
    papermill = metadata.get("papermill", {})
    return "start_time" in papermill and papermill.get("end_time") is None


def _number_text(value: float | None) -> str:
    """Format counts as integers and other values with two decimals.

    Values below 0.01, such as error rates, keep three significant digits.
    """
    if value is None or pd.isna(value):
        return "no data"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:,.2f}"


def _milliseconds_text(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "no data"
    return f"{value:,.3f}"


def _above_text(p95_ms: float | None, target_ms: float) -> str:
    if p95_ms is None:
        return "no data"
    return "yes" if p95_ms > target_ms else "no"
