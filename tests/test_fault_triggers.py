"""Fail triggers of the verdict, each shown by a short real k6 run on a faulty target.

Every test runs the canary script with real k6 for a few seconds against the
rehearsal target on loopback while the sampler scrapes every second. Where a log is
involved, the log watcher follows the target's --log-file. The test then reads the
k6 output and checks that the verdict names the failed criterion.

The runs use 50 requests/s instead of the canary's 250/s. None of these faults
depends on the rate, and pool exhaustion comes from latency x rate exceeding the
pool. The lower rate leaves CPU for k6, the target and the sampler side by side on
a small machine, where 250/s could drop iterations and turn a run INCONCLUSIVE.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from canarykit.k6reader import read_k6_output
from canarykit.logwatch import LogWatcher
from canarykit.recommend import recommendations
from canarykit.sampler import Sampler
from canarykit.verdict import SloSettings, Verdict, evaluate

pytestmark = pytest.mark.k6

CANARY_SCRIPT = (
    Path(__file__).resolve().parents[1] / "load-tests" / "canary_250rps_30min.js"
)
RATE_PER_S = 50
DURATION_S = 6
CANARY_TOKEN = "fault-trigger-test-token"

RehearsalTarget = Callable[..., str]


def run_canary(
    k6_binary: str,
    base_url: str,
    run_dir: Path,
    *,
    settings: SloSettings = SloSettings(),  # noqa: B008 (frozen, so sharing is safe)
    log_file: Path | None = None,
    duration_s: int = DURATION_S,
) -> tuple[Verdict, list[str]]:
    """Run the canary script under the sampler, then return the verdict and advice."""
    k6_json = run_dir / "k6.json"
    env = {
        **os.environ,
        "BASE_URL": base_url,
        "RATE": str(RATE_PER_S),
        "DURATION": f"{duration_s}s",
        "PRE_ALLOCATED_VUS": "20",
        "MAX_VUS": "60",
        "CANARY_TOKEN": CANARY_TOKEN,
        "K6_NO_USAGE_REPORT": "true",
    }
    command = [k6_binary, "run", "--quiet", "--out", f"json={k6_json}"]
    command.append(str(CANARY_SCRIPT))

    with ExitStack() as watchers:
        watchers.enter_context(
            Sampler(
                base_url=base_url,
                run_dir=run_dir,
                interval_s=1.0,
                duration_s=duration_s,
            )
        )
        if log_file is not None:
            watchers.enter_context(
                LogWatcher(
                    patterns=[str(log_file)],
                    run_dir=run_dir,
                    poll_s=0.2,
                    from_start=True,
                )
            )
        # k6 exits 99 when the script's thresholds are crossed, which faults cause.
        completed = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=duration_s + 60
        )
    assert completed.returncode in (0, 99), completed.stderr[-2000:]

    k6 = read_k6_output(k6_json)
    verdict = evaluate(
        k6=k6,
        run_dir=run_dir,
        settings=settings,
        target_rate_per_s=RATE_PER_S,
        duration_s=duration_s,
    )
    return verdict, recommendations(verdict, k6)


def test_clean_run_passes(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "target.log"
    base_url = rehearsal_target(log_file=log_file)

    verdict, advice = run_canary(
        k6_binary, base_url, tmp_path / "run", log_file=log_file
    )

    failed = {
        item.id: item.reason for item in verdict.criteria if item.status != "PASS"
    }
    assert failed == {}
    assert all(item.required for item in verdict.criteria)
    assert verdict.status == "PASS"
    assert advice[0].startswith("No action needed")
    assert advice[-1].startswith("Run the full canary before promoting")


def test_latency_fails_p95(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    base_url = rehearsal_target(latency_ms=150)

    verdict, _ = run_canary(k6_binary, base_url, tmp_path / "run")

    item = verdict.criterion("p95_latency")
    assert item.status == "FAIL"
    assert item.observed is not None
    assert item.observed > 150
    assert verdict.status == "FAIL"


def test_spike_fails_sustained_p95(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    # A 30-minute canary judges 1-minute windows and a 5-minute stretch. A run of a
    # few seconds can only show the same rule on 1 s windows and a 3 s stretch.
    settings = SloSettings(sustained_window_s=1.0, sustained_max_s=3.0)
    base_url = rehearsal_target(spike_ms=150, spike_start=3, spike_duration=5)

    verdict, _ = run_canary(
        k6_binary, base_url, tmp_path / "run", settings=settings, duration_s=10
    )

    item = verdict.criterion("sustained_p95")
    windows = item.evidence["windows"]
    assert item.status == "FAIL"
    assert item.evidence["longest_stretch"]["windows"] >= 4
    assert any(w["p95_ms"] is not None and w["p95_ms"] <= 120 for w in windows)


def test_errors_fail_error_rate(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    base_url = rehearsal_target(error_ratio=0.05)

    verdict, _ = run_canary(k6_binary, base_url, tmp_path / "run")

    item = verdict.criterion("error_rate")
    assert item.status == "FAIL"
    assert item.evidence["failed_by_status"]["500"] > 0
    assert item.evidence["errors_rate"] >= item.observed
    assert verdict.status == "FAIL"


def test_restart_fails_restarts(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    base_url = rehearsal_target(restart_after=3)

    verdict, advice = run_canary(k6_binary, base_url, tmp_path / "run")

    item = verdict.criterion("restarts")
    assert item.status == "FAIL"
    assert item.observed == 1
    assert len(item.evidence["metric_restarts"]) == 1
    assert len(verdict.criterion("heap_growth").evidence["lifetimes"]) >= 2
    assert any("restarted" in line for line in advice)


def test_critical_log_fails(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "target.log"
    base_url = rehearsal_target(log_file=log_file, critical_after=2)

    verdict, _ = run_canary(k6_binary, base_url, tmp_path / "run", log_file=log_file)

    item = verdict.criterion("critical_logs")
    assert item.status == "FAIL"
    assert item.observed is not None
    assert item.observed >= 1
    assert item.evidence["first"]["file"] == str(log_file)


def test_small_pool_fails_db_pool(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    # 50 requests/s each holding a connection for 100 ms need 5; the pool has 2.
    base_url = rehearsal_target(pool_size=2, latency_ms=100)

    verdict, advice = run_canary(k6_binary, base_url, tmp_path / "run")

    item = verdict.criterion("db_pool")
    assert item.status == "FAIL"
    assert item.evidence["pool_max"] == 2
    assert item.evidence["max_in_use"] == 2
    assert any("pool size" in line for line in advice)


def test_leak_fails_heap_growth(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    # 600 MB/min leaks about 10 MB/s, so a 6 s run grows by far more than 20 MB,
    # while a clean target grows by a few MB at most in that time. The 50 MB
    # default is sized for a 30-minute run and is scaled down with the run length.
    settings = SloSettings(heap_growth_bytes=20e6)
    base_url = rehearsal_target(leak_mb_per_min=600)

    verdict, advice = run_canary(
        k6_binary, base_url, tmp_path / "run", settings=settings
    )

    item = verdict.criterion("heap_growth")
    assert item.status == "FAIL"
    assert item.observed is not None
    assert item.observed > 20e6
    assert any("memory" in line for line in advice)


SINGLE_REQUEST_SCRIPT = """
import http from "k6/http";
export const options = { iterations: 1 };
export default function () {
  http.get(`${__ENV.BASE_URL}/health`);
}
"""


def test_single_request_run_is_inconclusive(
    rehearsal_target: RehearsalTarget, k6_binary: str, tmp_path: Path
) -> None:
    base_url = rehearsal_target()
    script = tmp_path / "one_request.js"
    script.write_text(SINGLE_REQUEST_SCRIPT, encoding="utf-8")
    k6_json = tmp_path / "k6.json"
    env = {**os.environ, "BASE_URL": base_url, "K6_NO_USAGE_REPORT": "true"}
    command = [k6_binary, "run", "--quiet", "--out", f"json={k6_json}", str(script)]
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr[-2000:]

    k6 = read_k6_output(k6_json)
    verdict = evaluate(k6=k6, run_dir=None)
    advice = recommendations(verdict, k6)

    assert len(k6.requests) == 1
    assert verdict.criterion("load_delivered").status == "INCONCLUSIVE"
    assert verdict.criterion("sustained_p95").evidence["is_observable"] is False
    assert verdict.status == "INCONCLUSIVE"
    assert advice[-1].startswith("Run the full canary before promoting")
