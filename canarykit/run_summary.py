"""The short table the run notebook shows once k6 has finished."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from canarykit.k6runner import K6Result


def k6_run_table(result: K6Result) -> pd.DataFrame:
    """Return k6's own end-of-test figures and the run's files as a two-column table.

    The figures come from k6's `--summary-export`, so they cover k6's population:
    every request, setup() and teardown() included.
    """
    metrics = _summary_metrics(result)
    duration = metrics.get("http_req_duration", {})
    failed = metrics.get("http_req_failed", {})
    requests = metrics.get("http_reqs", {})
    dropped = metrics.get("dropped_iterations", {})
    rows: list[tuple[str, Any]] = [
        ("k6 exit code", result.exit_code),
        ("thresholds crossed", "yes" if result.thresholds_crossed else "no"),
        ("requests", requests.get("count")),
        ("request rate (per s)", _rounded(requests.get("rate"), 2)),
        ("P95 latency (ms)", _rounded(duration.get("p(95)"), 3)),
        ("failed requests (fraction)", _rounded(failed.get("value"), 6)),
        ("dropped iterations", dropped.get("count", 0)),
    ]
    for label, path in (
        ("k6 output", result.output_path),
        ("summary export", result.summary_path),
        ("live output", result.live_log_path),
    ):
        size = path.stat().st_size if path.is_file() else None
        rows.append(
            (label, f"{path.name} ({size} bytes)" if size is not None else "missing")
        )
    return pd.DataFrame(rows, columns=["figure", "value"]).set_index("figure")


def _summary_metrics(result: K6Result) -> dict[str, dict[str, Any]]:
    if not result.summary_path.is_file():
        return {}
    data = json.loads(result.summary_path.read_text(encoding="utf-8"))
    metrics: dict[str, dict[str, Any]] = data.get("metrics", {})
    return metrics


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
