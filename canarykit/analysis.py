"""Analyze a k6 run into an evidence bundle; build the analysis notebook's tables.

`analyze_run` executes `notebooks/canary_analysis.ipynb` with papermill, renders
the executed notebook to HTML and Markdown, and writes the bundle manifest. The
other public functions are the notebook's building blocks: each returns a table
or Markdown text, so a notebook cell only calls and displays.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import orjson
import pandas as pd

from canarykit import stats
from canarykit.bundle import BundlePaths, new_bundle_paths, sha256_file, write_manifest
from canarykit.criteria import SloSettings
from canarykit.errors import InvalidInputError, NotebookExecutionError
from canarykit.notebooks import CellFailure, execute_notebook, find_failed_cell
from canarykit.paths import ANALYSIS_NOTEBOOK, PACKAGE_DIR, notebook_template
from canarykit.report import RenderedReport, render_report
from canarykit.verdict import SCHEMA_VERSION, write_verdict

if TYPE_CHECKING:
    from canarykit.criteria import Population
    from canarykit.k6output import K6Output
    from canarykit.verdict import Verdict

logger = logging.getLogger(__name__)

ERROR = "ERROR"
SAMPLE_K6_PATH = PACKAGE_DIR / "data" / "sample_k6.json.gz"
VERDICT_NAME = "verdict.json"
# The executed analysis notebook is still being written while the notebook hashes
# the run folder, so the notebook's own manifest table leaves it out.
_IN_PROGRESS = ("executed/" + ANALYSIS_NOTEBOOK,)
_SERVICE_CRITERIA = ("restarts", "health", "heap_growth", "db_pool", "critical_logs")


@dataclass(frozen=True)
class AnalysisResult:
    """The outcome of `analyze_run`; `status` is the verdict's status or ERROR."""

    status: str
    verdict: dict[str, Any]
    html_path: Path
    md_path: Path
    bundle_dir: Path
    executed_notebook: Path
    manifest_path: Path
    failure: CellFailure | None = None


def analyze_run(
    k6_path: Path,
    *,
    run_dir: Path | None,
    app: str,
    evidence_root: Path,
    kernel_name: str = "python3",
    target_rate_per_s: float | None = None,
    duration_s: float | None = None,
    progress: bool = False,
) -> AnalysisResult:
    """Execute the analysis notebook for one k6 output and render its bundle.

    The executed notebook goes to `run_dir/executed/canary_analysis.ipynb`, or into
    the bundle directory for a bare k6 file. When a notebook cell raises, the
    bundle is still rendered and manifested, with status ERROR and a banner naming
    the cell and the exception. Raises InvalidInputError for a missing k6 file or
    run folder, and NotebookExecutionError when the notebook could not run at all.
    """
    _check_inputs(k6_path, run_dir)
    paths = new_bundle_paths(evidence_root, app, datetime.now(UTC))
    executed = _executed_path(run_dir, paths)
    parameters = {
        "k6_path": str(k6_path.resolve()),
        "run_dir": str(run_dir.resolve()) if run_dir is not None else "",
        "app": app,
        "target_rate_per_s": target_rate_per_s,
        "duration_s": duration_s,
        "bundle_dir": str(paths.bundle_dir.resolve()),
    }
    try:
        failure = _execute(executed, parameters, kernel_name, progress)
    except NotebookExecutionError:
        _remove_unused_bundle(paths)
        raise

    verdict = _final_verdict(paths.bundle_dir, run_dir, failure)
    rendered = render_report(
        executed,
        html_path=paths.html_path,
        md_path=paths.md_path,
        charts_dir=paths.charts_dir,
        failure=failure,
        title=f"Canary report {app} {run_id(k6_path, run_dir)}",
    )
    manifest = write_manifest(
        paths.bundle_dir, _bundle_artefacts(k6_path, run_dir, executed, rendered)
    )

    status = str(verdict["status"])
    logger.info("analysis of %s: %s, bundle %s", k6_path, status, paths.bundle_dir)
    return AnalysisResult(
        status=status,
        verdict=verdict,
        html_path=rendered.html_path,
        md_path=rendered.md_path,
        bundle_dir=paths.bundle_dir,
        executed_notebook=executed,
        manifest_path=manifest,
        failure=failure,
    )


def run_artefacts(k6_path: Path, run_dir: Path | None) -> list[Path]:
    """List the k6 output and every file of the run folder, sorted by path."""
    files = [k6_path]
    if run_dir is not None:
        files += sorted(path for path in run_dir.rglob("*") if path.is_file())
    return files


def resolve_k6_path(k6_path: str) -> Path:
    """Return the k6 output to analyze; an empty string means the shipped sample."""
    if not k6_path:
        return SAMPLE_K6_PATH
    path = Path(k6_path)
    if not path.is_file():
        raise InvalidInputError(
            f"k6 output file not found: {path}; set k6_path to a k6 --out json file, "
            "or leave it empty to analyze the sample shipped with canarykit"
        )
    return path


def optional_dir(text: str) -> Path | None:
    """Return the folder a notebook parameter names, or None for an empty string."""
    if not text:
        return None
    path = Path(text)
    if not path.is_dir():
        raise InvalidInputError(
            f"folder not found: {path}; pass an existing folder or an empty string"
        )
    return path


def run_id(k6_path: Path, run_dir: Path | None) -> str:
    """Return the run folder's name, or the k6 file name without its suffixes."""
    if run_dir is not None:
        return run_dir.name
    return k6_path.name.split(".")[0]


def title_markdown(app: str, run_label: str) -> str:
    """Return the report's title and subtitle in Markdown."""
    return f"# Canary report: {app}\n\nRun `{run_label}`\n"


def notes_markdown(verdict: Verdict) -> str:
    """Return the verdict's notes as a Markdown list, or a line when there are none."""
    if not verdict.notes:
        return "No notes: every input the verdict needs was present.\n"
    return "**Notes**\n\n" + "".join(f"- {note}\n" for note in verdict.notes)


def input_facts_table(k6: K6Output, k6_path: Path, verdict: Verdict) -> pd.DataFrame:
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
        ("file", str(k6_path)),
        ("size", f"{k6_path.stat().st_size:,} bytes"),
        ("format", k6.format),
        ("lines read", f"{k6.lines_read:,}"),
        ("requests in file", f"{len(k6.requests):,}"),
        ("truncated", truncated),
        ("non-finite values left out", f"{k6.non_finite_values:,}"),
        ("population", str(verdict.population.get("description", ""))),
        ("expected responses", expected_rule),
        ("run folder", str(verdict.input.get("run_dir") or "none (bare k6 file)")),
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
    table["latency_ms"] = table["latency_ms"].map(_number_text)
    table["requests"] = len(durations)
    return table


def sustained_windows_table(verdict: Verdict) -> pd.DataFrame:
    """List the sustained-P95 windows with their P95 and whether it is above target."""
    item = verdict.criterion("sustained_p95")
    windows = item.evidence.get("windows", [])
    target_ms = verdict.settings.p95_ms
    rows = [
        (
            window["start"],
            window["requests"],
            _number_text(window["p95_ms"]),
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


def write_verdict_files(
    verdict: Verdict, run_dir: Path | None, bundle_dir: Path | None
) -> list[Path]:
    """Write verdict.json into the run folder and the bundle directory, where given."""
    folders = [folder for folder in (run_dir, bundle_dir) if folder is not None]
    return [write_verdict(verdict, folder / VERDICT_NAME) for folder in folders]


def written_files_markdown(paths: list[Path]) -> str:
    """Return a Markdown list of written files, or a line when none was written."""
    if not paths:
        return "verdict.json was not written: neither run_dir nor bundle_dir is set.\n"
    return "".join(f"- `{path}`\n" for path in paths)


def run_manifest_table(k6_path: Path, run_dir: Path | None) -> pd.DataFrame:
    """Hash the run's evidence files as they are now: path, size and SHA-256.

    Paths are relative to the run folder; the k6 file of a bare analysis is named
    as given. The analysis notebook being executed is left out.
    """
    rows = []
    for path in run_artefacts(k6_path, run_dir):
        label = _label(path, run_dir)
        if label in _IN_PROGRESS:
            continue
        rows.append((label, path.stat().st_size, sha256_file(path)))
    return pd.DataFrame(rows, columns=["file", "size_bytes", "sha256"])


def recommendations_markdown(recommendations: list[str]) -> str:
    """Return recommendations as a numbered Markdown list."""
    if not recommendations:
        return "No recommendations.\n"
    return "".join(
        f"{number}. {text}\n" for number, text in enumerate(recommendations, 1)
    )


def _check_inputs(k6_path: Path, run_dir: Path | None) -> None:
    if not k6_path.is_file():
        raise InvalidInputError(
            f"k6 output file not found: {k6_path}; pass a k6 --out json or csv file"
        )
    if run_dir is not None and not run_dir.is_dir():
        raise InvalidInputError(
            f"run folder not found: {run_dir}; pass an existing results/<run_id> "
            "folder, or None for a bare k6 file"
        )


def _executed_path(run_dir: Path | None, paths: BundlePaths) -> Path:
    if run_dir is None:
        return paths.bundle_dir / ANALYSIS_NOTEBOOK
    return run_dir / "executed" / ANALYSIS_NOTEBOOK


def _execute(
    executed: Path, parameters: dict[str, Any], kernel_name: str, progress: bool
) -> CellFailure | None:
    """Run the notebook; return the failed cell, or None when every cell ran."""
    try:
        execute_notebook(
            notebook_template(ANALYSIS_NOTEBOOK),
            executed,
            parameters=parameters,
            kernel_name=kernel_name,
            progress_bar=progress,
        )
    except NotebookExecutionError:
        failure = (
            find_failed_cell(nbformat.read(executed, as_version=4))
            if executed.is_file()
            else None
        )
        if failure is None:
            raise
        return failure
    return None


def _bundle_artefacts(
    k6_path: Path, run_dir: Path | None, executed: Path, rendered: RenderedReport
) -> list[Path]:
    """List the run's files, then the executed notebook, verdict, charts and reports."""
    bundle_dir = rendered.md_path.with_suffix("")
    return run_artefacts(k6_path, run_dir) + [
        executed,
        bundle_dir / VERDICT_NAME,
        *rendered.chart_paths,
        rendered.html_path,
        rendered.md_path,
    ]


def _remove_unused_bundle(paths: BundlePaths) -> None:
    """Remove the reserved bundle after the notebook could not run at all.

    Papermill writes the output notebook before the kernel starts, so the notebook
    of a bare k6 file is removed too. Any other file keeps the bundle in place.
    """
    (paths.bundle_dir / ANALYSIS_NOTEBOOK).unlink(missing_ok=True)
    for folder in (paths.charts_dir, paths.bundle_dir):
        try:
            folder.rmdir()
        except OSError:
            return


def _final_verdict(
    bundle_dir: Path, run_dir: Path | None, failure: CellFailure | None
) -> dict[str, Any]:
    """Read the verdict the notebook wrote; after a failed cell, write an ERROR one."""
    path = bundle_dir / VERDICT_NAME
    written = orjson.loads(path.read_bytes()) if path.is_file() else None
    if failure is None:
        if written is None:
            raise NotebookExecutionError(
                f"the analysis notebook ran without error but wrote no {path}; "
                "check that its template still calls write_verdict_files"
            )
        return dict(written)

    verdict = _error_verdict(failure, written)
    for folder in (bundle_dir, run_dir):
        if folder is not None:
            target = folder / VERDICT_NAME
            target.write_bytes(orjson.dumps(verdict, option=orjson.OPT_INDENT_2))
    return verdict


def _error_verdict(
    failure: CellFailure, written: dict[str, Any] | None
) -> dict[str, Any]:
    """Build an ERROR verdict, keeping any criteria judged before the failure."""
    verdict: dict[str, Any] = written or {
        "schema_version": SCHEMA_VERSION,
        "criteria": [],
        "population": {},
        "input": {},
        "settings": dataclasses.asdict(SloSettings()),
        "notes": [],
        "generated_at": datetime.now(UTC).isoformat(),
    }
    verdict["status"] = ERROR
    verdict["status_reason"] = f"the analysis notebook failed: {failure.describe()}"
    verdict["error"] = dataclasses.asdict(failure)
    return verdict


def _label(path: Path, run_dir: Path | None) -> str:
    if run_dir is not None and path.resolve().is_relative_to(run_dir.resolve()):
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    return str(path)


def _number_text(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "no data"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"


def _above_text(p95_ms: float | None, target_ms: float) -> str:
    if p95_ms is None:
        return "no data"
    return "yes" if p95_ms > target_ms else "no"
