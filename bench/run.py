"""Time canarykit's summary against DuckDB on a k6 JSON file of a 30-minute run.

Builds the file once under bench-data/ (git-ignored) from a real k6 run against a
loopback server, then runs canarykit and DuckDB alternately, each in its own
process, and records wall time and peak RSS of every run. The doubled file is
timed too, to check that cost grows linearly with size; the jq recipe runs once
for the record. Results go to docs/benchmarks.md.

Usage: python bench/run.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_data  # noqa: E402 (a sibling script, found through sys.path)

logger = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench-data"
REPORT = REPO / "docs" / "benchmarks.md"
PYTHON = sys.executable
# The command that computes canarykit's summary, kept in this one place: the real
# CLI, whose imports beyond read_k6_output and summarize cost about 0.1 s.
CANARYKIT_COMMAND = [str(Path(PYTHON).parent / "canarykit"), "summary", "--json"]
DUCKDB_COMMAND = [PYTHON, str(REPO / "bench" / "duckdb_summary.py")]
JQ_RECIPE = (
    'jq -r \'select(.type=="Point" and .metric=="http_req_duration") | .data.value\' '
    "{file} | sort -n | awk '{{v[NR]=$1}} END {{r=int(NR*0.95); if (r<NR*0.95) r++; "
    "print v[r]}}'"
)


@dataclass(frozen=True)
class Sizes:
    """File sizes to build: the full 30-minute size, or a small one for --quick."""

    name: str
    min_requests: int
    min_bytes: int
    seed_rate: int
    seed_duration_s: int


DOUBLED_REPEATS = 3
FULL = Sizes("k6-30min", 450_000, 1_750_000_000, 250, 20)
QUICK = Sizes("k6-quick", 20_000, 0, 100, 5)


@dataclass(frozen=True)
class Timing:
    """One run of one command: wall time, peak RSS and its standard output."""

    seconds: float
    peak_rss_bytes: int
    stdout: str


def time_child(command: list[str]) -> Timing:
    """Run a command and read its peak RSS from os.wait4 (Linux reports KiB)."""
    output_path = DATA_DIR / "last_stdout.json"
    started = time.perf_counter()
    with output_path.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"benchmark command exited with {exit_code}: {command!r}")
    return Timing(seconds, usage.ru_maxrss * 1024, output_path.read_text())


def build_files(sizes: Sizes) -> tuple[Path, Path]:
    """Build (or reuse) the benchmark file and the doubled file."""
    paths = []
    for factor, suffix in ((1, ""), (2, "-x2")):
        paths.append(
            build_data.build(
                DATA_DIR / f"{sizes.name}{suffix}.json",
                seed_path=DATA_DIR / f"{sizes.name}.seed.json",
                min_requests=factor * sizes.min_requests,
                min_bytes=factor * sizes.min_bytes,
                rate=sizes.seed_rate,
                duration_s=sizes.seed_duration_s,
            )
        )
    return paths[0], paths[1]


def alternate(path: Path, repeats: int) -> dict[str, list[Timing]]:
    """Run canarykit and DuckDB alternately on one file, `repeats` times each."""
    runs: dict[str, list[Timing]] = {"canarykit": [], "duckdb": []}
    warm_page_cache(path)
    for index in range(repeats):
        for name, command in (
            ("canarykit", CANARYKIT_COMMAND),
            ("duckdb", DUCKDB_COMMAND),
        ):
            timing = time_child([*command, str(path)])
            runs[name].append(timing)
            logger.info("%s run %d: %.2f s", name, index + 1, timing.seconds)
    return runs


def warm_page_cache(path: Path) -> None:
    """Read `path` once, so neither tool's first run pays for reading the disk."""
    with path.open("rb") as handle:
        while handle.read(64 * 1024 * 1024):
            pass


def compare_figures(canarykit_out: str, duckdb_out: str) -> float:
    """Return the largest relative difference of the trend figures both report."""
    ours = json.loads(canarykit_out)["metrics"]
    theirs = json.loads(duckdb_out)["metrics"]
    worst = 0.0
    for metric, figures in ours.items():
        if "p(95)" not in figures or metric not in theirs:
            continue
        for key in ("avg", "min", "max", "med", "p(90)", "p(95)", "p(99)"):
            expected = theirs[metric][key]
            difference = abs(figures[key] - expected)
            worst = max(worst, difference / abs(expected) if expected else difference)
    return worst


def run_jq(path: Path) -> tuple[float, str]:
    command = JQ_RECIPE.format(file=shlex.quote(str(path)))
    started = time.perf_counter()
    completed = subprocess.run(command, shell=True, capture_output=True, check=True)
    return time.perf_counter() - started, completed.stdout.decode().strip()


def machine() -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "system": platform.platform(),
        "python": platform.python_version(),
    }


def summarize_runs(timings: list[Timing]) -> dict[str, float]:
    seconds = [t.seconds for t in timings]
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "peak_rss_mb": max(t.peak_rss_bytes for t in timings) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per tool (5)")
    parser.add_argument("--report", type=Path, default=REPORT, help="Markdown output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = QUICK if args.quick else FULL

    single, double = build_files(sizes)
    runs = alternate(single, args.repeats)
    double_runs = alternate(double, DOUBLED_REPEATS)
    jq_seconds, jq_p95 = run_jq(single)

    result = _result(sizes, single, double, runs, double_runs, jq_seconds, jq_p95)
    args.report.write_text(render(result))
    logger.info("wrote %s", args.report)
    return 0


def _result(
    sizes: Sizes,
    single: Path,
    double: Path,
    runs: dict[str, list[Timing]],
    double_runs: dict[str, list[Timing]],
    jq_seconds: float,
    jq_p95: str,
) -> dict[str, Any]:
    canarykit = summarize_runs(runs["canarykit"])
    duckdb = summarize_runs(runs["duckdb"])
    doubled = summarize_runs(double_runs["canarykit"])
    summary = json.loads(runs["canarykit"][-1].stdout)["metrics"]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": sizes is QUICK,
        "machine": machine(),
        "file": {
            "path": str(single.relative_to(REPO)),
            "bytes": single.stat().st_size,
            "requests": int(summary["http_reqs"]["count"]),
            "lines": sum(1 for _ in single.open("rb")),
        },
        "double_bytes": double.stat().st_size,
        "canarykit": canarykit,
        "duckdb": duckdb,
        "doubled": doubled,
        "doubled_duckdb": summarize_runs(double_runs["duckdb"]),
        "ratio": canarykit["median_s"] / duckdb["median_s"],
        "growth": doubled["median_s"] / canarykit["median_s"],
        "max_relative_difference": compare_figures(
            runs["canarykit"][-1].stdout, runs["duckdb"][-1].stdout
        ),
        "jq_s": jq_seconds,
        "jq_p95": jq_p95,
        "canarykit_p95": summary["http_req_duration"]["p(95)"],
        "repeats": len(runs["canarykit"]),
    }


def _shown(command: list[str]) -> str:
    """Show a command with paths relative to the repository, as a user types it."""
    parts = [
        str(Path(part).relative_to(REPO)) if part.startswith(str(REPO)) else part
        for part in command
    ]
    return shlex.join(parts)


def render(result: dict[str, Any]) -> str:
    """Write the Markdown page; every figure comes from `result`."""
    file = result["file"]
    m = result["machine"]
    rows = [
        ("canarykit summary", result["canarykit"]),
        ("DuckDB read_json", result["duckdb"]),
        ("canarykit, doubled file", result["doubled"]),
        ("DuckDB, doubled file", result["doubled_duckdb"]),
    ]
    table = "\n".join(
        f"| {name} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} "
        f"| {r['peak_rss_mb']:.0f} |"
        for name, r in rows
    )
    quick = "\n**Quick smoke run: the file is small, so these figures say little.**\n"
    return f"""# Benchmarks

Written by `bench/run.py` on {result["date"]}.{quick if result["quick"] else ""}

## What is measured

`canarykit summary` reads one k6 JSON output file (`read_k6_output`) and computes
k6's end-of-test summary for every metric (`summarize`). DuckDB's `read_json`
computes count, avg, min, max, median and p90/p95/p99 (`quantile_cont`) per
metric on the same file; it reads only `metric`, `type` and `data.value`, while
canarykit also parses every time and tag and joins the nine samples of each
HTTP request into one row. Each tool runs in its own process, alternating,
{result["repeats"]} times each ({DOUBLED_REPEATS} on the doubled file). Wall time is
measured around the process, and peak RSS comes from `os.wait4` for that process.
Each file is read once before its first timed run, so the page cache is warm
for both tools.

- file: `{file["path"]}`, {file["bytes"] / 1e9:.2f} GB, {file["lines"]:,} lines,
  {file["requests"]:,} requests; built by `bench/build_data.py` from a real
  20-second k6 v1.1.0 run against a loopback server at 250 requests/s, its Point
  lines repeated with times shifted by the run's span (k6's exact line format)
- doubled file: {result["double_bytes"] / 1e9:.2f} GB, the seed repeated twice as often
- canarykit: `{_shown(CANARYKIT_COMMAND)} FILE` (`read_k6_output` + `summarize`)
- DuckDB: `{_shown(DUCKDB_COMMAND)} FILE`
- jq: `{JQ_RECIPE.format(file="FILE")}`

## Machine

{m["cpus"]} CPUs ({m["cpu"]}), {m["memory"]} memory, {m["system"]},
Python {m["python"]}.

## Results

| command | median s | min s | max s | peak RSS MB |
|---|---|---|---|---|
{table}

- canarykit / DuckDB, median time: **{result["ratio"]:.2f}x** (target at most 1.0x,
  stretch 0.5x)
- doubled file / file, canarykit median time: **{result["growth"]:.2f}x** (target at
  most 2.2x)
- largest relative difference between canarykit's and DuckDB's trend figures:
  {result["max_relative_difference"]:.1e}
- jq recipe, once: {result["jq_s"]:.1f} s; its nearest-rank p95 of
  `http_req_duration` is {result["jq_p95"]} ms, canarykit's linear p(95) is
  {result["canarykit_p95"]:.6f} ms

{BOUNDS}
"""


BOUNDS = """## What bounds canarykit's time

canarykit reads the file in 32 MB blocks of whole lines, mapped into memory. A
numba kernel (`canarykit/k6kernel.py`) walks each block's bytes once. It checks
that every line has the exact shape k6 writes and parses the RFC 3339 time to
int64 nanoseconds. It parses the number to float64 exactly, or leaves it to
Python's float() where the digits do not fit an exact float64 product. It also
numbers distinct metric names and tags texts, and json.loads then parses each
distinct tags text once. Two blocks
are scanned at a time in threads, since the kernel releases the GIL. A second
numba kernel joins each request's samples to its http_reqs line, and the
DataFrames are built from the arrays without copies.

Timed by hand on this machine, in one process, best of two runs: imports 0.41 s
(pandas 0.23 s, numba 0.13 s), loading the cached kernels on first use 0.2 s,
block scan 0.8 s on two threads (one thread: 26 ms a block, 1.4 s for the file;
the numpy scanner this replaced took 79 ms a block), join and DataFrames 0.14 s,
summarize 0.12 s. The fixed cost of about 0.65 s (imports and kernel loading) is
near half of DuckDB's whole run. The scan is bound by the kernel's per-line work
(about 200 ns a line on one core), so a free second core nearly halves it, and
when other jobs take that core the scan approaches 1.4 s.
DuckDB's query projects three keys of each line in C++ on both cores and builds
no per-request rows or tag columns.

Without numba's on-disk cache (a fresh install, or after the kernel's source
changed) the first read compiles the kernels: about 15 s, 9 s for writable
arrays and 6 s for read-only (memory-mapped) ones. The cache lives in
`canarykit/__pycache__`, or numba's user cache folder where that is not writable.

Memory stays bounded: pages of blocks already read are unmapped, and what remains
is a few blocks of text, the compact per-line arrays (metric code, time, value,
tag-set id: 24 bytes a line) and the two DataFrames built from them.

On the doubled file the block scan doubles, but joining the per-line arrays and
building the DataFrames took 1.3 s against 0.17 s in one hand-timed run, mostly
in first writes to fresh memory (concatenating the per-line arrays: 0.52 s against
0.02 s). First writes to fresh pages were slow on this virtual machine in every
such run; the cause is not established. That part of the cost depends on how
much memory the process touched before, so the growth ratio above varies with it.

The machine is shared with other jobs, so single runs vary; the min and max
columns show by how much.
"""


if __name__ == "__main__":
    sys.exit(main())
