"""Plotly figures drawn from per-window aggregates, and their PNG export with kaleido.

Every figure takes the frame of `canarykit.stats.windowed_latency` (one row per
window: `window_start`, `requests`, `failed`, `rate_per_s`, `p50_ms`, `p95_ms`,
`p99_ms`, `avg_ms`, NaN latency where a window has no request), never raw samples,
so a 30-minute run at 10 s windows draws 180 points per line. A `covered_s` column
(see `add_window_coverage`) lets the rate chart leave out windows that the run
covered only in part, which would otherwise read as a drop in rate.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from canarykit.errors import InvalidInputError

logger = logging.getLogger(__name__)

WINDOW_COLUMNS = (
    "window_start",
    "requests",
    "failed",
    "rate_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "avg_ms",
)
# Chromium builds that kaleido can drive, looked up on PATH after BROWSER_PATH.
_CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
_PNG_WIDTH_PX = 1000
_PNG_HEIGHT_PX = 420
_SLO_COLOR = "#c0392b"
# A window the run covered less than this fraction of is left out of the rate chart.
MIN_COVERED_FRACTION = 0.9
# Below this ratio of the largest latency to the SLO, the latency axis is logarithmic,
# so sub-millisecond lines do not sit flat at 0 under a 100 ms SLO line.
_LOG_AXIS_RATIO = 0.1


def add_window_coverage(
    windows: pd.DataFrame, times: pd.Series, *, window_s: float
) -> pd.DataFrame:
    """Return a copy of `windows` with `covered_s`: seconds of each window in the run.

    The run spans from the first to the last of `times`, the request times the
    windows were built from.
    """
    _check_windows(windows)
    covered = windows.copy()
    if not len(times):
        covered["covered_s"] = pd.Series(dtype=float)
        return covered
    first, last = times.min(), times.max()
    starts = covered["window_start"]
    ends = starts + pd.to_timedelta(window_s, unit="s")
    overlap = ends.clip(upper=last) - starts.clip(lower=first)
    covered["covered_s"] = overlap.dt.total_seconds().clip(lower=0.0, upper=window_s)
    return covered


def latency_timeline(
    windows: pd.DataFrame, *, slo_p95_ms: float, window_s: float
) -> go.Figure:
    """Draw P50, P95 and P99 latency per window with the P95 SLO as a line.

    The y axis shows both the data and the SLO line: linear from 0 when the data
    reach a tenth of the SLO, logarithmic otherwise.
    """
    _check_windows(windows)
    figure = go.Figure()
    for column, label, dash in (
        ("p50_ms", "P50", "dot"),
        ("p95_ms", "P95", "solid"),
        ("p99_ms", "P99", "dash"),
    ):
        figure.add_trace(
            go.Scatter(
                x=windows["window_start"],
                y=windows[column],
                mode="lines+markers",
                name=label,
                line={"dash": dash},
                connectgaps=False,
            )
        )

    figure.add_hline(
        y=slo_p95_ms,
        line={"color": _SLO_COLOR, "dash": "dash"},
        annotation_text=f"SLO P95 {slo_p95_ms:g} ms",
        annotation_position="top left",
    )
    _layout(
        figure,
        f"Latency per {window_s:g} s window (http_req_duration)",
        "latency (ms)",
    )
    _scale_latency_axis(figure, windows, slo_p95_ms)
    return figure


def request_rate_timeline(
    windows: pd.DataFrame, *, target_rate_per_s: float | None, window_s: float
) -> go.Figure:
    """Draw requests/s and failed requests/s per window with the target rate.

    With a `covered_s` column, windows the run covered less than 90% of are left
    out, and the title states how many.
    """
    _check_windows(windows)
    windows, partial, note = _complete_windows(windows, window_s)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=windows["window_start"],
            y=windows["rate_per_s"],
            mode="lines+markers",
            name="requests/s",
        )
    )
    figure.add_trace(
        go.Bar(
            x=windows["window_start"],
            y=_failed_rate_per_s(windows),
            name="failed requests/s",
            marker={"color": _SLO_COLOR},
        )
    )

    if target_rate_per_s is not None:
        figure.add_hline(
            y=target_rate_per_s,
            line={"color": "#555555", "dash": "dash"},
            annotation_text=f"target {target_rate_per_s:g}/s",
            annotation_position="bottom left",
        )
    title = f"Request rate per {window_s:g} s window (http_reqs)"
    if partial:
        title += f"; {partial} partial window(s) left out"
    title += note
    _layout(figure, title, "requests/s")
    return figure


def find_chrome() -> str | None:
    """Return the Chrome or Chromium executable kaleido should use, or None.

    `BROWSER_PATH` wins when set (kaleido's own rule); otherwise the first of
    chromium, chromium-browser, google-chrome and chrome on PATH.
    """
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in _CHROME_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def write_png_files(figures: dict[str, go.Figure], charts_dir: Path) -> dict[str, Path]:
    """Write each figure to `charts_dir/<name>.png` with kaleido and one browser.

    Returns the written paths by name. Without a usable Chrome, or when kaleido
    fails, it logs one warning and returns an empty dict, so a report still renders.
    """
    if not figures:
        return {}
    chrome = find_chrome()
    if chrome is None:
        logger.warning(
            "no Chrome or Chromium found (set BROWSER_PATH or install chromium), "
            "so the Markdown report has no chart images"
        )
        return {}

    charts_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: charts_dir / f"{name}.png" for name in figures}
    try:
        _write_with_kaleido(figures, paths, chrome)
    except Exception as error:  # kaleido raises many browser-level error types
        logger.warning(
            "kaleido could not draw PNG charts with %s (%s: %s), so the Markdown "
            "report has no chart images",
            chrome,
            type(error).__name__,
            error,
        )
        return {}
    return {name: path for name, path in paths.items() if path.is_file()}


def _write_with_kaleido(
    figures: dict[str, go.Figure], paths: dict[str, Path], chrome: str
) -> None:
    import kaleido

    jobs = [
        {
            "fig": figure,
            "path": paths[name],
            "opts": {
                "format": "png",
                "width": _PNG_WIDTH_PX,
                "height": _PNG_HEIGHT_PX,
            },
        }
        for name, figure in figures.items()
    ]
    # mathjax=False keeps the headless page from fetching MathJax from a CDN.
    kaleido.write_fig_from_object_sync(jobs, kopts={"path": chrome, "mathjax": False})
    logger.info("%d PNG charts written with %s", len(jobs), chrome)


def _check_windows(windows: pd.DataFrame) -> None:
    missing = [column for column in WINDOW_COLUMNS if column not in windows.columns]
    if missing:
        raise InvalidInputError(
            f"window frame lacks columns {missing}; expected the output of "
            "canarykit.stats.windowed_latency, found columns "
            f"{list(windows.columns)}"
        )


def _complete_windows(
    windows: pd.DataFrame, window_s: float
) -> tuple[pd.DataFrame, int, str]:
    """Drop windows the run covered in part; return the rest, the count and a note.

    A run shorter than one window has no complete window, so its windows stay and
    their rate is divided by the seconds covered instead of the window length.
    """
    if "covered_s" not in windows.columns:
        return windows, 0, ""
    complete = windows["covered_s"] >= MIN_COVERED_FRACTION * window_s
    if complete.any():
        return windows[complete], int((~complete).sum()), ""
    kept = windows[windows["covered_s"] > 0].copy()
    kept["rate_per_s"] = kept["requests"] / kept["covered_s"]
    return kept, 0, "; run shorter than one window: rate over the seconds covered"


def _scale_latency_axis(
    figure: go.Figure, windows: pd.DataFrame, slo_p95_ms: float
) -> None:
    values = windows[["p50_ms", "p95_ms", "p99_ms"]].to_numpy(dtype=float).ravel()
    values = values[values > 0]
    if not len(values):
        return
    top_ms = max(float(values.max()), slo_p95_ms)
    if values.max() >= _LOG_AXIS_RATIO * slo_p95_ms:
        figure.update_yaxes(range=[0, top_ms * 1.1])
        return
    # Plotly sets a log axis range in powers of ten.
    low = math.log10(float(values.min()) / 1.5)
    figure.update_yaxes(type="log", range=[low, math.log10(top_ms * 1.5)])
    # Annotations on a log axis take the power of ten, unlike the line itself.
    figure.update_annotations(y=math.log10(slo_p95_ms))
    figure.update_layout(yaxis_title="latency (ms, log scale)")


def _failed_rate_per_s(windows: pd.DataFrame) -> pd.Series:
    """Turn failed counts into failed requests/s; 0 in a window without requests."""
    requests = windows["requests"].astype(float)
    per_request = windows["rate_per_s"].astype(float) / requests.where(requests > 0)
    return (windows["failed"].astype(float) * per_request).fillna(0.0)


def _layout(figure: go.Figure, title: str, y_title: str) -> None:
    figure.update_layout(
        title={"text": title},
        xaxis_title="window start (UTC)",
        yaxis_title=y_title,
        template="plotly_white",
        height=_PNG_HEIGHT_PX,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
