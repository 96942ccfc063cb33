"""Render the executed analysis notebook to an offline HTML and a Markdown report.

The analysis notebook shows everything through the `show_*` functions below, which
emit outputs that this module renders: tables carry HTML and Markdown,
figures carry plotly JSON plus their chart name, and banners carry HTML and
Markdown. Rendering then

- hides every input cell (report style),
- leaves out what cells wrote to stderr (logged warnings), which the executed
  notebook keeps,
- turns each figure into an inline plotly div for the HTML, with plotly.js embedded
  once before the first figure, and into a PNG in the bundle's `charts/` folder
  (or a placeholder line without Chrome) for the Markdown,
- uses the JupyterLab template without its CDN scripts (require.js, MathJax,
  Mermaid, widgets), so the HTML loads nothing from other hosts.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import nbformat
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from nbconvert import HTMLExporter, MarkdownExporter

from canarykit import charts
from canarykit.notebooks import PAPERMILL_ERROR_TAG, CellFailure

logger = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
# Output metadata key naming a figure, so its PNG gets a stable file name.
CHART_METADATA_KEY = "canarykit_chart"
_STATUS_COLORS = {
    "PASS": "#1e8449",
    "FAIL": "#c0392b",
    "INCONCLUSIVE": "#b9770e",
    "ERROR": "#7b241c",
}
_REPORT_TEMPLATE = "canary_report.html.j2"
# The lab template minus every block that loads a script from a CDN.
_REPORT_TEMPLATE_SOURCE = """\
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
main { max-width: 1200px; margin: 0 auto; }
.jp-RenderedHTMLCommon table { font-size: 13px; }
main .jp-RenderedHTMLCommon td, main .jp-RenderedHTMLCommon th { text-align: left; }
main .jp-RenderedHTMLCommon .canary-number { text-align: right; }
.canary-banner { padding: 12px 16px; margin: 8px 0; border-radius: 4px;
  color: #ffffff; font-size: 18px; font-weight: bold; }
</style>
{%- endblock extra_css -%}
"""
_EXTERNAL_ATTRIBUTE = re.compile(
    r"""\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)
_EXTERNAL_CSS = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//|@import""", re.IGNORECASE)
_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?(</script>)", re.IGNORECASE | re.DOTALL)
# A cell that reads as a number: counts with separators, decimals, hashes excluded.
_NUMBER_CELL = re.compile(r"-?[\d,]*\.?\d+( ?%)?")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class RenderedReport:
    """The two report files and the PNG charts the Markdown references."""

    html_path: Path
    md_path: Path
    chart_paths: list[Path] = field(default_factory=list)


def show_markdown(text: str) -> None:
    """Display Markdown text in the notebook and both reports."""
    _display({"text/markdown": text, "text/plain": text})


def show_table(table: pd.DataFrame, *, empty_text: str = "No rows.") -> None:
    """Display a table as HTML in the notebook and HTML report, Markdown in the .md.

    An empty table is shown as `empty_text` instead.
    """
    if table.empty:
        show_markdown(empty_text)
        return
    _display(
        {
            "text/html": html_table(table),
            "text/markdown": markdown_table(table),
            "text/plain": table.to_string(index=False),
        }
    )


def show_figure(figure: go.Figure, name: str) -> None:
    """Display a plotly figure; `name` becomes `charts/<name>.png` in the bundle."""
    _display(
        {
            PLOTLY_MIME: json.loads(pio.to_json(figure, validate=False)),
            "text/plain": f"[chart {name}]",
        },
        metadata={CHART_METADATA_KEY: name},
    )


def show_banner(status: str, text: str) -> None:
    """Display the verdict as a coloured banner (HTML) or a bold line (Markdown)."""
    color = _STATUS_COLORS.get(status, "#555555")
    banner_html = (
        f'<div class="canary-banner" style="background:{color};color:#ffffff;'
        f'padding:12px 16px;font-size:18px;font-weight:bold;border-radius:4px">'
        f"Verdict: {html.escape(status)}</div><p>{html.escape(text)}</p>"
    )
    _display(
        {
            "text/html": banner_html,
            "text/markdown": f"> **Verdict: {status}**\n>\n> {text}\n",
            "text/plain": f"Verdict: {status}: {text}",
        }
    )


def markdown_table(table: pd.DataFrame) -> str:
    """Return a GitHub-flavoured Markdown table; `|` and line breaks are escaped.

    Number columns are right-aligned and text columns left-aligned.
    """
    header = [_markdown_cell(column) for column in table.columns]
    rule = ["---:" if is_number else ":---" for is_number in _number_columns(table)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule) + " |",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def html_table(table: pd.DataFrame) -> str:
    """Return an HTML table; number columns carry the class `canary-number`."""
    classes = [
        ' class="canary-number"' if is_number else ""
        for is_number in _number_columns(table)
    ]
    header = "".join(
        f"<th{css}>{html.escape(str(column))}</th>"
        for css, column in zip(classes, table.columns, strict=True)
    )
    rows = [
        "<tr>"
        + "".join(
            f"<td{css}>{html.escape(_cell_text(value))}</td>"
            for css, value in zip(classes, row, strict=True)
        )
        + "</tr>"
        for row in table.itertuples(index=False)
    ]
    body = "\n".join(rows)
    head = f"<thead><tr>{header}</tr></thead>"
    return f"<table>\n{head}\n<tbody>\n{body}\n</tbody>\n</table>"


def render_report(
    executed: Path,
    *,
    html_path: Path,
    md_path: Path,
    charts_dir: Path,
    failure: CellFailure | None = None,
    title: str = "Canary report",
) -> RenderedReport:
    """Render the executed notebook to `html_path` and `md_path`.

    With `failure`, both reports open with an ERROR banner naming the cell and the
    exception. PNG charts go to `charts_dir`; without a usable Chrome each chart is a
    placeholder line in the Markdown, and one warning is logged.
    """
    notebook = _prepared_notebook(executed, failure, title)
    figures = _figures(notebook)

    html_text = _render_html(notebook, failure)
    html_path.write_text(html_text, encoding="utf-8")
    _warn_external_references(html_path, html_text)

    png_paths = charts.write_png_files(figures, charts_dir)
    md_text = _render_markdown(notebook, failure, png_paths, md_path)
    md_path.write_text(md_text, encoding="utf-8")
    logger.info("reports written: %s and %s", html_path, md_path)
    return RenderedReport(html_path, md_path, [png_paths[name] for name in png_paths])


def find_external_references(html_text: str) -> list[str]:
    """List src/href attributes and CSS urls that point at another host.

    Script bodies are skipped, because plotly.js contains URLs in strings that the
    browser never loads.
    """
    without_scripts = _SCRIPT_BODY.sub(r"\1\2", html_text)
    found = []
    for pattern in (_EXTERNAL_ATTRIBUTE, _EXTERNAL_CSS):
        for match in pattern.finditer(without_scripts):
            start = max(match.start() - 40, 0)
            found.append(without_scripts[start : match.end() + 60])
    return found


def _display(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
    from IPython.display import display

    display(data, raw=True, metadata=metadata or {})


def _number_columns(table: pd.DataFrame) -> list[bool]:
    """Tell, per column, whether every filled cell is a number or "no data"."""
    flags = []
    for column in table.columns:
        values = [
            text
            for value in table[column]
            if (text := _cell_text(value)) and text != "no data"
        ]
        flags.append(
            bool(values) and all(_NUMBER_CELL.fullmatch(text) for text in values)
        )
    return flags


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return " ".join(str(value).splitlines())


def _markdown_cell(value: Any) -> str:
    return _cell_text(value).replace("|", "\\|")


def _prepared_notebook(
    executed: Path, failure: CellFailure | None, title: str
) -> nbformat.NotebookNode:
    """Read the notebook, drop papermill's error markers and stderr, name the report."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.cells = [
        cell
        for cell in notebook.cells
        if PAPERMILL_ERROR_TAG not in cell.get("metadata", {}).get("tags", [])
    ]
    for cell in notebook.cells:
        if "outputs" in cell:
            cell.outputs = [
                output
                for output in cell.outputs
                if not (
                    output.get("output_type") == "stream"
                    and output.get("name") == "stderr"
                )
            ]
    notebook.metadata["title"] = title if failure is None else f"ERROR: {title}"
    return notebook


def _figures(notebook: nbformat.NotebookNode) -> dict[str, go.Figure]:
    figures: dict[str, go.Figure] = {}
    for output in _plotly_outputs(notebook):
        name = _chart_name(output, len(figures))
        figures[name] = pio.from_json(json.dumps(output["data"][PLOTLY_MIME]))
    return figures


def _plotly_outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if PLOTLY_MIME in output.get("data", {})
    ]


def _chart_name(output: nbformat.NotebookNode, position: int) -> str:
    name = str(output.get("metadata", {}).get(CHART_METADATA_KEY, ""))
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return safe or f"chart_{position + 1}"


def _render_html(notebook: nbformat.NotebookNode, failure: CellFailure | None) -> str:
    html_notebook = copy.deepcopy(notebook)
    for position, output in enumerate(_plotly_outputs(html_notebook)):
        figure = pio.from_json(json.dumps(output["data"][PLOTLY_MIME]))
        div = pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=position == 0,
            div_id=f"canary-chart-{_chart_name(output, position)}",
            config={"displaylogo": False, "responsive": True},
        )
        output["data"] = {"text/html": div}
    if failure is not None:
        html_notebook.cells.insert(0, _html_error_cell(failure))

    exporter = HTMLExporter(
        template_name="lab",
        template_file=_REPORT_TEMPLATE,
        extra_loaders=[jinja2.DictLoader({_REPORT_TEMPLATE: _REPORT_TEMPLATE_SOURCE})],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(html_notebook)
    return str(body)


def _render_markdown(
    notebook: nbformat.NotebookNode,
    failure: CellFailure | None,
    png_paths: dict[str, Path],
    md_path: Path,
) -> str:
    md_notebook = copy.deepcopy(notebook)
    for position, output in enumerate(_plotly_outputs(md_notebook)):
        name = _chart_name(output, position)
        output["data"] = {"text/markdown": _chart_markdown(name, png_paths, md_path)}
    for cell in md_notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                output["data"] = {"text/markdown": data["text/markdown"]}
    if failure is not None:
        md_notebook.cells.insert(0, nbformat.v4.new_markdown_cell(_error_text(failure)))

    exporter = MarkdownExporter(exclude_input=True)
    body, _ = exporter.from_notebook_node(md_notebook)
    return _BLANK_LINES.sub("\n\n", str(body)).strip() + "\n"


def _chart_markdown(name: str, png_paths: dict[str, Path], md_path: Path) -> str:
    png = png_paths.get(name)
    if png is None:
        return (
            f"*Chart `{name}` not drawn: no usable Chrome or Chromium for kaleido. "
            "The HTML report has the interactive chart.*\n"
        )
    relative = Path(os.path.relpath(png, md_path.parent)).as_posix()
    return f"![{name}]({relative})\n"


def _error_text(failure: CellFailure) -> str:
    return (
        "## ERROR: the analysis did not finish\n\n"
        f"The analysis notebook stopped because {failure.describe()}. "
        "Every section after that cell is missing, so this report is incomplete "
        "and its verdict is ERROR.\n"
    )


def _html_error_cell(failure: CellFailure) -> nbformat.NotebookNode:
    color = _STATUS_COLORS["ERROR"]
    banner = (
        f'<div class="canary-banner" style="background:{color}">'
        "ERROR: the analysis did not finish</div>\n\n"
        f"<p>The analysis notebook stopped because {html.escape(failure.describe())}. "
        "Every section after that cell is missing, so this report is incomplete "
        "and its verdict is ERROR.</p>\n"
    )
    return nbformat.v4.new_markdown_cell(banner)


def _warn_external_references(html_path: Path, html_text: str) -> None:
    found = find_external_references(html_text)
    if found:
        logger.warning(
            "HTML report %s references %d external resources, so it may not render "
            "offline; first: %r",
            html_path,
            len(found),
            found[0],
        )
