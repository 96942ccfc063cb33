"""Open a rendered HTML report in headless Chromium with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from canarykit.analysis import SAMPLE_K6_PATH, AnalysisResult, analyze_run

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]
CHART_IDS = ("canary-chart-latency_timeline", "canary-chart-request_rate_timeline")
_BROWSER_TIMEOUT_S = 60


def _chromium(page: Path, profile_dir: Path) -> subprocess.CompletedProcess[str]:
    """Load `page` offline and dump the DOM after its scripts ran."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        # No network: every proxied request goes to a closed loopback port and
        # every host name fails to resolve.
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,2000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=_BROWSER_TIMEOUT_S, check=True
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> AnalysisResult:
    evidence_root = tmp_path_factory.mktemp("evidence")
    return analyze_run(
        SAMPLE_K6_PATH,
        run_dir=None,
        app="sample",
        evidence_root=evidence_root,
        target_rate_per_s=20.0,
        duration_s=50.0,
    )


@pytest.fixture(scope="module")
def loaded(
    bundle: AnalysisResult, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    return _chromium(bundle.html_path, tmp_path_factory.mktemp("chromium-profile"))


def test_browser_draws_svg_per_figure(
    loaded: subprocess.CompletedProcess[str],
) -> None:
    dom = loaded.stdout
    positions = [dom.index(f'id="{chart_id}"') for chart_id in CHART_IDS]
    ends = [*positions[1:], len(dom)]
    for chart_id, start, end in zip(CHART_IDS, positions, ends, strict=True):
        section = dom[start:end]
        assert 'class="main-svg"' in section, f"{chart_id} has no plotly SVG"
        assert "scatterlayer" in section, f"{chart_id} has no line traces"


def test_browser_logs_no_console_messages(
    loaded: subprocess.CompletedProcess[str],
) -> None:
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []


def test_browser_shows_verdict_and_tables(
    loaded: subprocess.CompletedProcess[str],
) -> None:
    dom = loaded.stdout
    assert "Verdict: PASS" in dom
    assert re.search(r"<td>P95 latency</td>\s*<td>&lt;= 120 ms</td>", dom)
