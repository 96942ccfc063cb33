"""Tests for canarykit.report: show_* outputs rendered to offline HTML and Markdown."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from canarykit.errors import NotebookExecutionError
from canarykit.notebooks import execute_notebook, find_failed_cell
from canarykit.report import (
    find_external_references,
    html_table,
    markdown_table,
    render_report,
)

# The header plotly.js carries once per embedded copy.
PLOTLY_JS_HEADER = re.compile(r"\* plotly\.js v\d+\.\d+\.\d+")

_SETUP = """\
import pandas as pd
from canarykit import charts, report
windows = pd.DataFrame({
    "window_start": pd.date_range("2026-12-04T15:00:00Z", periods=3, freq="10s"),
    "requests": [20, 20, 20], "failed": [0, 1, 0], "rate_per_s": [2.0, 2.0, 2.0],
    "p50_ms": [10.0, 11.0, 12.0], "p95_ms": [30.0, 131.0, 32.0],
    "p99_ms": [40.0, 150.0, 42.0], "avg_ms": [12.0, 13.0, 14.0],
})
"""
_SHOW = """\
report.show_banner("FAIL", "failed: p95_latency")
table = pd.DataFrame({"criterion": ["P95 | latency"], "actual": ["131.0 ms"]})
report.show_table(table)
report.show_table(pd.DataFrame({"file": []}), empty_text="No snapshot files.")
report.show_figure(
    charts.latency_timeline(windows, slo_p95_ms=120, window_s=10), "latency_timeline"
)
report.show_figure(
    charts.request_rate_timeline(windows, target_rate_per_s=2, window_s=10),
    "request_rate_timeline",
)
"""


def _executed(tmp_path: Path, *extra_cells: str) -> tuple[Path, object]:
    """Execute a small notebook that uses every show_* function."""
    parameters = nbformat.v4.new_code_cell("marker = 'secret-free'")
    parameters.metadata["tags"] = ["parameters"]
    cells = [
        nbformat.v4.new_markdown_cell("## Section heading"),
        parameters,
        nbformat.v4.new_code_cell(_SETUP),
        nbformat.v4.new_code_cell(_SHOW),
        *(nbformat.v4.new_code_cell(cell) for cell in extra_cells),
    ]
    template = tmp_path / "template.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), template)
    output = tmp_path / "executed.ipynb"
    failure = None
    try:
        execute_notebook(template, output, parameters={})
    except NotebookExecutionError:
        failure = find_failed_cell(nbformat.read(output, as_version=4))
    return output, failure


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("report")
    executed, _ = _executed(tmp_path)
    bundle_dir = tmp_path / "CANARY_REPORT_20261204T154500Z"
    report = render_report(
        executed,
        html_path=tmp_path / "CANARY_REPORT_20261204T154500Z.html",
        md_path=tmp_path / "CANARY_REPORT_20261204T154500Z.md",
        charts_dir=bundle_dir / "charts",
    )
    return {"html": report.html_path, "md": report.md_path, "dir": tmp_path}


def test_render_report_embeds_plotly_once(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text(encoding="utf-8")
    assert len(PLOTLY_JS_HEADER.findall(html)) == 1
    assert html.count('id="canary-chart-latency_timeline"') == 1
    assert html.count('id="canary-chart-request_rate_timeline"') == 1
    assert html.index("plotly.js v") < html.index("canary-chart-latency_timeline")


def test_render_report_html_is_offline(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text(encoding="utf-8")
    assert find_external_references(html) == []
    assert re.search(r"<script[^>]*\bsrc\s*=", html) is None
    assert re.search(r"<link[^>]*\bhref\s*=", html) is None


def test_render_report_hides_inputs(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text(encoding="utf-8")
    markdown = rendered["md"].read_text(encoding="utf-8")
    for text in (html, markdown):
        assert "secret-free" not in text
        assert "report.show_banner" not in text
    assert "Section heading" in html
    assert "## Section heading" in markdown


def test_render_report_html_tables_and_banner(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text(encoding="utf-8")
    assert "Verdict: FAIL" in html
    assert "<td>P95 | latency</td>" in html
    assert "No snapshot files." in html


def test_render_report_markdown_tables(rendered: dict[str, Path]) -> None:
    markdown = rendered["md"].read_text(encoding="utf-8")
    assert "> **Verdict: FAIL**" in markdown
    assert "| criterion | actual |" in markdown
    assert "| P95 \\| latency | 131.0 ms |" in markdown
    assert "No snapshot files." in markdown
    assert "<table" not in markdown


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_render_report_markdown_images_exist(rendered: dict[str, Path]) -> None:
    markdown = rendered["md"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links == [
        "CANARY_REPORT_20261204T154500Z/charts/latency_timeline.png",
        "CANARY_REPORT_20261204T154500Z/charts/request_rate_timeline.png",
    ]
    for link in links:
        assert (rendered["md"].parent / link).is_file()


def test_render_report_without_chrome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    executed, _ = _executed(tmp_path)
    with caplog.at_level(logging.WARNING):
        report = render_report(
            executed,
            html_path=tmp_path / "r.html",
            md_path=tmp_path / "r.md",
            charts_dir=tmp_path / "charts",
        )
    markdown = report.md_path.read_text(encoding="utf-8")
    warnings = [
        record for record in caplog.records if record.levelno >= logging.WARNING
    ]
    assert report.chart_paths == []
    assert markdown.count("not drawn: no usable Chrome") == 2
    assert "![" not in markdown
    assert len(warnings) == 1
    assert len(PLOTLY_JS_HEADER.findall(report.html_path.read_text())) == 1


def test_render_report_error_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    executed, failure = _executed(tmp_path, "1 / 0")
    assert failure is not None
    report = render_report(
        executed,
        html_path=tmp_path / "r.html",
        md_path=tmp_path / "r.md",
        charts_dir=tmp_path / "charts",
        failure=failure,
    )
    html = report.html_path.read_text(encoding="utf-8")
    markdown = report.md_path.read_text(encoding="utf-8")
    for text in (html, markdown):
        assert "ERROR: the analysis did not finish" in text
        assert "ZeroDivisionError: division by zero" in text
        assert "`1 / 0`" in text
    assert markdown.startswith("## ERROR")
    assert "An Exception was encountered" not in html


def test_markdown_table_escapes_pipes_and_lines() -> None:
    table = pd.DataFrame({"a|b": ["x|y", "two\nlines"], "n": [1.5, None]})
    assert markdown_table(table) == (
        "| a\\|b | n |\n| :--- | ---: |\n| x\\|y | 1.5 |\n| two lines |  |\n"
    )


def test_find_external_references_flags_cdn_script() -> None:
    html = (
        '<script src="https://cdn.example/require.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css">'
        "<style>@import url(https://fonts.example/x.css);</style>"
    )
    assert len(find_external_references(html)) == 4


def test_find_external_references_ignores_script_bodies() -> None:
    html = "<script>var logo = '<a href=\"https://plotly.com/\">';</script><p>ok</p>"
    assert find_external_references(html) == []


def test_markdown_table_aligns_numbers_right() -> None:
    table = pd.DataFrame({"file": ["a.json", "b.json"], "size_bytes": ["1,024", "7"]})
    lines = markdown_table(table).splitlines()
    assert lines[1] == "| :--- | ---: |"


def test_html_table_marks_number_columns() -> None:
    table = pd.DataFrame({"statistic": ["P95"], "latency_ms": ["0.250"]})
    text = html_table(table)
    assert '<td class="canary-number">0.250</td>' in text
    assert "<td>P95</td>" in text
    assert 'style="text-align: right' not in text


def test_render_report_drops_stderr_outputs(tmp_path: Path) -> None:
    executed, _ = _executed(
        tmp_path,
        "import sys\nsys.stderr.write('WARNING stray log line\\n')\n"
        "report.show_markdown('after the warning')",
    )
    notebook = nbformat.read(executed, as_version=4)
    assert "stray log line" in json.dumps(notebook.cells[-1].outputs)
    result = render_report(
        executed,
        html_path=tmp_path / "r.html",
        md_path=tmp_path / "r.md",
        charts_dir=tmp_path / "charts",
    )
    for path in (result.html_path, result.md_path):
        text = path.read_text(encoding="utf-8")
        assert "stray log line" not in text
        assert "after the warning" in text


def test_render_report_markdown_has_no_blank_runs(rendered: dict[str, Path]) -> None:
    markdown = rendered["md"].read_text(encoding="utf-8")
    assert "\n\n\n" not in markdown
    assert not markdown.startswith("\n")
