"""Analyze a k6 run into an evidence bundle.

`analyze_run` executes `notebooks/canary_analysis.ipynb` with papermill, renders
the executed notebook to HTML and Markdown, copies the run folder's files into the
bundle and writes the bundle manifest. An analysis never overwrites an existing
file: the executed notebook and verdict.json go into the run folder only when it
has none yet (the first analysis, made by `canarykit run`), otherwise into the new
bundle only. The notebook's building blocks live in `canarykit.run_facts` and
`canarykit.report_tables`; this module re-exports the ones the notebook calls as
`analysis.<name>`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import orjson

from canarykit.bundle import (
    BundlePaths,
    copy_run_artefacts,
    new_bundle_paths,
    write_manifest,
)
from canarykit.criteria import SloSettings
from canarykit.errors import InvalidInputError, NotebookExecutionError
from canarykit.notebooks import CellFailure, execute_notebook, find_failed_cell
from canarykit.paths import ANALYSIS_NOTEBOOK, notebook_template
from canarykit.report import RenderedReport, render_report
from canarykit.report_tables import (
    VERDICT_NAME,
    criteria_table,
    evidence_files_table,
    input_facts_table,
    latency_summary_table,
    notes_markdown,
    recommendations_markdown,
    service_evidence_table,
    snapshot_files_table,
    sustained_windows_table,
    title_markdown,
    write_verdict_files,
    written_files_markdown,
)
from canarykit.run_facts import (
    SAMPLE_K6_PATH,
    optional_dir,
    resolve_k6_path,
    run_facts,
    run_facts_table,
    run_id,
)
from canarykit.verdict import SCHEMA_VERSION

__all__ = [
    "ERROR",
    "SAMPLE_K6_PATH",
    "AnalysisResult",
    "analyze_run",
    "criteria_table",
    "evidence_files_table",
    "input_facts_table",
    "latency_summary_table",
    "notes_markdown",
    "optional_dir",
    "recommendations_markdown",
    "resolve_k6_path",
    "run_facts",
    "run_facts_table",
    "service_evidence_table",
    "snapshot_files_table",
    "sustained_windows_table",
    "title_markdown",
    "write_verdict_files",
    "written_files_markdown",
]

logger = logging.getLogger(__name__)

ERROR = "ERROR"


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

    The executed notebook goes to `run_dir/executed/canary_analysis.ipynb` when
    that file does not exist yet. Otherwise, and for a bare k6 file, it goes into
    the bundle directory, and verdict.json follows the same rule.
    `target_rate_per_s` and `duration_s` default to the run folder's
    run_params.json. When a notebook cell raises, the bundle is still rendered
    and manifested, with status ERROR and a banner naming the cell and the
    exception. Raises InvalidInputError for a
    missing k6 file or run folder, and NotebookExecutionError when the notebook
    could not run at all.
    """
    _check_inputs(k6_path, run_dir)
    paths = new_bundle_paths(evidence_root, app, datetime.now(UTC))
    executed = _executed_path(run_dir, paths)
    run_verdict_is_new = run_dir is not None and not (run_dir / VERDICT_NAME).exists()
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

    verdict = _final_verdict(
        paths.bundle_dir, run_dir if run_verdict_is_new else None, failure
    )
    rendered = render_report(
        executed,
        html_path=paths.html_path,
        md_path=paths.md_path,
        charts_dir=paths.charts_dir,
        failure=failure,
        title=f"Canary report {app} {run_id(k6_path, run_dir)}",
    )
    copies = (
        copy_run_artefacts(run_dir, paths.bundle_dir, exclude=k6_path)
        if run_dir is not None
        else []
    )
    manifest = write_manifest(
        paths.bundle_dir,
        _bundle_artefacts(copies, executed, rendered),
        external=k6_path,
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
    """Return the run folder's notebook path when it is free, else the bundle's."""
    if run_dir is not None:
        in_run_dir = run_dir / "executed" / ANALYSIS_NOTEBOOK
        if not in_run_dir.exists():
            return in_run_dir
        logger.info("kept %s from an earlier analysis", in_run_dir)
    return paths.bundle_dir / ANALYSIS_NOTEBOOK


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
    copies: list[Path], executed: Path, rendered: RenderedReport
) -> list[Path]:
    """List the copied run files, then notebook, verdict, charts and reports.

    A notebook executed into the run folder is in the bundle as one of the copies.
    """
    bundle_dir = rendered.md_path.with_suffix("")
    in_bundle = [executed] if executed.parent == bundle_dir else []
    return [
        *copies,
        *in_bundle,
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
    """Read the verdict the notebook wrote; after a failed cell, write an ERROR one.

    `run_dir` is None when the run folder's verdict.json predates this analysis, so
    the ERROR verdict goes to the bundle only.
    """
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
