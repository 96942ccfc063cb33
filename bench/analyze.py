"""Time `canarykit analyze` end to end on the 30-minute file and size its bundle.

Usage: python bench/analyze.py [--repeats N] [FILE]

Each repeat runs `canarykit analyze` (reading, verdict, both renderings, manifest)
in its own process, alternating with `canarykit summary --json` on the same file as
the reference, so the ratio holds when the shared machine's speed drifts. The
section it writes replaces the one between the markers in docs/benchmarks.md, or
is appended when the markers are missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CANARYKIT = REPO / ".venv" / "bin" / "canarykit"
DEFAULT_FILE = REPO / "bench-data" / "k6-30min.json"
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
START_MARKER = "<!-- analyze benchmark: start -->"
END_MARKER = "<!-- analyze benchmark: end -->"

# Limits for the 30-minute file on a 2-core machine.
MAX_ANALYZE_S = 60.0
MAX_HTML_BYTES = 6_000_000
MAX_NOTEBOOK_BYTES = 10_000_000


@dataclass(frozen=True)
class Timing:
    """Wall time and peak resident memory of one finished child process."""

    seconds: float
    peak_rss_bytes: int
    exit_code: int


@dataclass(frozen=True)
class BundleSizes:
    """Sizes in bytes of the files one `canarykit analyze` run produced."""

    html_bytes: int
    markdown_bytes: int
    notebook_bytes: int


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.file.is_file():
        print(f"benchmark file not found: {args.file}; run bench/run.py first")
        return 2

    analyze_runs: list[Timing] = []
    summary_runs: list[Timing] = []
    sizes: BundleSizes | None = None
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            timing, sizes = _time_analyze(args.file, Path(scratch))
        analyze_runs.append(timing)
        summary_runs.append(_time_summary(args.file))
        print(
            f"repeat {repeat + 1}: analyze {timing.seconds:.1f} s, "
            f"summary {summary_runs[-1].seconds:.1f} s"
        )
    assert sizes is not None
    section = _section(args.file, analyze_runs, summary_runs, sizes)
    _write_section(section)
    print(section)
    return 0


def _time_analyze(k6_file: Path, scratch: Path) -> tuple[Timing, BundleSizes]:
    command = [
        str(CANARYKIT),
        "--quiet",
        "analyze",
        str(k6_file),
        "--rate",
        "250",
        "--duration",
        "30m",
        "--evidence-dir",
        str(scratch / "evidence"),
    ]
    log_path = scratch / "analyze.log"
    timing = _run(command, stderr_path=log_path)
    verdicts = list(scratch.glob("evidence/*/CANARY_REPORT_*/verdict.json"))
    # Exit codes 0 and 1 are PASS and FAIL. An ERROR bundle skips most of the
    # work, so timing it would flatter the figure.
    if (
        timing.exit_code not in (0, 1)
        or not verdicts
        or '"ERROR"' in verdicts[0].read_text()
    ):
        log = log_path.read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(
            f"canarykit analyze exited with {timing.exit_code} or rendered an ERROR "
            f"bundle; its log:\n{log[-3000:]}"
        )
    (html,) = scratch.glob("evidence/*/CANARY_REPORT_*.html")
    (markdown,) = scratch.glob("evidence/*/CANARY_REPORT_*.md")
    (notebook,) = scratch.glob("evidence/*/CANARY_REPORT_*/canary_analysis.ipynb")
    sizes = BundleSizes(
        html_bytes=html.stat().st_size,
        markdown_bytes=markdown.stat().st_size,
        notebook_bytes=notebook.stat().st_size,
    )
    return timing, sizes


def _time_summary(k6_file: Path) -> Timing:
    timing = _run([str(CANARYKIT), "--quiet", "summary", "--json", str(k6_file)])
    if timing.exit_code != 0:
        raise RuntimeError(f"canarykit summary exited with {timing.exit_code}")
    return timing


def _run(command: list[str], *, stderr_path: Path | None = None) -> Timing:
    started = time.perf_counter()
    with open(stderr_path or os.devnull, "wb") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    # On Linux, wait4 reports ru_maxrss in KiB as the largest of the child and the
    # descendants it reaped, so the notebook kernel's peak is included.
    return Timing(seconds, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))


def _section(
    k6_file: Path,
    analyze_runs: list[Timing],
    summary_runs: list[Timing],
    sizes: BundleSizes,
) -> str:
    analyze_s = [run.seconds for run in analyze_runs]
    summary_s = [run.seconds for run in summary_runs]
    ratios = [a / s for a, s in zip(analyze_s, summary_s, strict=True)]
    median_s = statistics.median(analyze_s)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START_MARKER,
        "## canarykit analyze on the 30-minute file",
        "",
        f"Written by `bench/analyze.py` on {stamp}, {os.cpu_count()} CPUs, "
        f"{platform.python_version()}.",
        "",
        f"`canarykit analyze {k6_file.relative_to(REPO)} --rate 250 --duration 30m` "
        "runs end to end: reading, verdict, the analysis notebook under papermill, "
        "HTML and Markdown with PNG charts, manifest. Each run alternates with "
        "`canarykit summary --json` on the same file as the reference.",
        "",
        "| figure | median | min | max | limit |",
        "|---|---|---|---|---|",
        _row("analyze wall time (s)", analyze_s, f"{MAX_ANALYZE_S:.0f}"),
        _row("summary wall time (s), reference", summary_s, ""),
        _row("analyze / summary", ratios, ""),
        _row(
            "analyze peak RSS (MB)",
            [run.peak_rss_bytes / 1e6 for run in analyze_runs],
            "",
        ),
        _row(
            "summary peak RSS (MB)",
            [run.peak_rss_bytes / 1e6 for run in summary_runs],
            "",
        ),
        "",
        "| bundle file | bytes | limit |",
        "|---|---|---|",
        f"| HTML report | {sizes.html_bytes:,} | {MAX_HTML_BYTES:,} |",
        f"| Markdown report | {sizes.markdown_bytes:,} | |",
        f"| executed analysis notebook | {sizes.notebook_bytes:,} | "
        f"{MAX_NOTEBOOK_BYTES:,} |",
        "",
        f"- analyze within {MAX_ANALYZE_S:.0f} s: "
        f"**{'yes' if median_s <= MAX_ANALYZE_S else 'no'}** (median {median_s:.1f} s)",
        f"- HTML under 6 MB: **{_yes_no(sizes.html_bytes < MAX_HTML_BYTES)}**;"
        " most of it is plotly.js, embedded once so the report works offline",
        f"- notebook under 10 MB: "
        f"**{'yes' if sizes.notebook_bytes < MAX_NOTEBOOK_BYTES else 'no'}**",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def _yes_no(condition: bool) -> str:
    return "yes" if condition else "no"


def _row(label: str, values: list[float], limit: str) -> str:
    median = statistics.median(values)
    return (
        f"| {label} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | {limit} |"
    )


def _write_section(section: str) -> None:
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.is_file() else ""
    if START_MARKER in text and END_MARKER in text:
        before = text.split(START_MARKER)[0]
        after = text.split(END_MARKER, 1)[1].lstrip("\n")
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
