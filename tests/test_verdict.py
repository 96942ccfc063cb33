"""Tests of canarykit.verdict on small hand-made k6 frames and run-folder files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from canarykit.criteria import STATUSES
from canarykit.errors import InvalidInputError
from canarykit.k6output import K6Output
from canarykit.recommend import recommendations
from canarykit.verdict import (
    SloSettings,
    Verdict,
    evaluate,
    load_verdict,
    results_table,
    write_verdict,
)

START = pd.Timestamp("2026-01-01T00:00:00Z")
TAGS = ("status", "expected_response", "error_code", "method", "name", "url", "group")


def make_requests(
    durations_ms: list[float] | np.ndarray,
    *,
    spacing_s: float = 0.1,
    offset_s: float = 0.0,
    status: str = "202",
    failed: bool = False,
    group: str = "",
    expected: str | None = None,
) -> pd.DataFrame:
    """Build requests rows in the K6Output layout, one request every `spacing_s`."""
    count = len(durations_ms)
    if expected is None:
        expected = "false" if failed else "true"
    times = START + pd.to_timedelta(offset_s + np.arange(count) * spacing_s, unit="s")
    frame = pd.DataFrame(
        {
            "time": times,
            "duration_ms": np.asarray(durations_ms, dtype=float),
            "failed": pd.array([failed] * count, dtype="boolean"),
            "status": status,
            "expected_response": expected,
            "error_code": None,
            "method": "POST",
            "name": "http://127.0.0.1/api/v1/events",
            "url": "http://127.0.0.1/api/v1/events",
            "group": group,
            "scenario": "canary",
        }
    )
    return frame


def make_k6(
    *parts: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    **facts: Any,
) -> K6Output:
    """Combine request frames and samples into a K6Output with clean file facts."""
    requests = pd.concat(parts, ignore_index=True).sort_values("time")
    for column in (*TAGS, "scenario"):
        requests[column] = requests[column].astype("category")
    if samples is None:
        samples = pd.DataFrame(
            {
                "time": pd.Series([], dtype="datetime64[ns, UTC]"),
                "metric": [],
                "value": [],
            }
        )
    has_expected = bool(requests["expected_response"].notna().any())
    values: dict[str, Any] = {
        "path": "k6.json",
        "format": "json",
        "requests": requests.reset_index(drop=True),
        "samples": samples,
        "metrics": {},
        "lines_read": len(requests) * 8,
        "blank_lines": 0,
        "dropped_lines": 0,
        "is_truncated": False,
        "non_finite_values": 0,
        "has_expected_response": has_expected,
    }
    values.update(facts)
    return K6Output(**values)


def make_samples(metric: str, values: list[float], **tags: str) -> pd.DataFrame:
    """Build long-form samples of one metric, one per second."""
    times = START + pd.to_timedelta(np.arange(len(values)), unit="s")
    frame = pd.DataFrame({"time": times, "metric": metric, "value": values})
    for key, value in tags.items():
        frame[key] = value
    return frame


def criterion(verdict: Verdict, criterion_id: str) -> Any:
    return verdict.criterion(criterion_id)


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def exposition(values: dict[str, float]) -> str:
    """Render Prometheus text, one sample per entry; names may carry labels."""
    return "".join(f"{name} {value}\n" for name, value in values.items())


def write_scrapes(run_dir: Path, bodies: list[dict[str, float]]) -> None:
    """Write samples/metrics.ndjson with one successful scrape per second."""
    rows = [
        {
            "time": (START + pd.Timedelta(seconds=i)).isoformat(),
            "elapsed_s": float(i),
            "ok": True,
            "status": 200,
            "error": None,
            "text": exposition(body),
        }
        for i, body in enumerate(bodies)
    ]
    write_ndjson(run_dir / "samples" / "metrics.ndjson", rows)


def write_probes(run_dir: Path, healthy: list[bool]) -> None:
    """Write samples/health.ndjson; an unhealthy probe is a refused connection."""
    rows = []
    for i, green in enumerate(healthy):
        rows.append(
            {
                "time": (START + pd.Timedelta(seconds=i)).isoformat(),
                "elapsed_s": float(i),
                "ok": green,
                "status": 200 if green else None,
                "error": None if green else "connection refused",
                "healthy": green,
                "body": {"status": "healthy"} if green else None,
            }
        )
    write_ndjson(run_dir / "samples" / "health.ndjson", rows)


def write_log_events(run_dir: Path, severities: list[str]) -> None:
    rows = [
        {
            "time": (START + pd.Timedelta(seconds=i)).isoformat(),
            "file": "/var/log/app.log",
            "line_no": i + 1,
            "severity": severity,
            "message": f"{severity} something happened",
        }
        for i, severity in enumerate(severities)
    ]
    write_ndjson(run_dir / "logs" / "log_events.ndjson", rows)


def scrape_body(
    *,
    start_time_s: float = 1_767_225_000.0,
    rss_bytes: float = 80e6,
    requests_total: float = 10.0,
    in_use: float = 1.0,
    pool_max: float = 10.0,
    waiters: float = 0.0,
) -> dict[str, float]:
    return {
        "process_start_time_seconds": start_time_s,
        "process_resident_memory_bytes": rss_bytes,
        'http_requests_total{path="/api/v1/events"}': requests_total,
        'db_pool_connections_in_use{pool="main"}': in_use,
        'db_pool_connections_max{pool="main"}': pool_max,
        'db_pool_waiters{pool="main"}': waiters,
    }


def healthy_run_dir(tmp_path: Path, scrapes: int = 5) -> Path:
    """Write a run folder where every scrape, probe and log check is clean."""
    run_dir = tmp_path / "run"
    write_scrapes(
        run_dir,
        [
            scrape_body(requests_total=10.0 * i, rss_bytes=80e6 + i)
            for i in range(scrapes)
        ],
    )
    write_probes(run_dir, [True] * scrapes)
    write_log_events(run_dir, ["WARN"])
    return run_dir


def fast_k6(count: int = 200) -> K6Output:
    """Fast requests at 50 per second, inside the 5 s that healthy_run_dir samples."""
    return make_k6(make_requests(np.linspace(5.0, 60.0, count), spacing_s=0.02))


# p95_latency


def test_p95_latency_pass_uses_k6_percentile() -> None:
    durations = np.arange(1.0, 101.0)
    verdict = evaluate(k6=make_k6(make_requests(durations)), run_dir=None)

    item = criterion(verdict, "p95_latency")
    assert item.status == "PASS"
    assert item.observed == pytest.approx(np.percentile(durations, 95))
    assert "linear interpolation" in item.method


def test_p95_latency_fail_above_target() -> None:
    k6 = make_k6(make_requests([100.0] * 90 + [200.0] * 10))

    item = criterion(evaluate(k6=k6, run_dir=None), "p95_latency")

    assert item.status == "FAIL"
    assert item.observed > 120.0
    assert evaluate(k6=k6, run_dir=None).status == "FAIL"


def test_p95_latency_ignores_setup_and_unexpected() -> None:
    scenario = make_requests([10.0] * 100)
    setup = make_requests([900.0] * 50, group="::setup", offset_s=20)
    errors = make_requests([900.0] * 50, status="500", failed=True, offset_s=30)

    item = criterion(
        evaluate(k6=make_k6(scenario, setup, errors), run_dir=None), "p95_latency"
    )

    assert item.observed == pytest.approx(10.0)
    assert item.evidence["requests"] == 100


def test_p95_latency_status_fallback_named() -> None:
    ok = make_requests([10.0] * 100, expected="")
    server_errors = make_requests([900.0] * 20, status="503", offset_s=20, expected="")
    k6 = make_k6(ok, server_errors)
    k6.requests["expected_response"] = pd.Categorical([None] * len(k6.requests))
    k6 = replace(k6, has_expected_response=False)

    verdict = evaluate(k6=k6, run_dir=None)
    item = criterion(verdict, "p95_latency")

    assert item.observed == pytest.approx(10.0)
    assert "200-399" in item.method
    assert item.evidence["status_fallback"] is True
    assert verdict.population["status_fallback"] is True


def test_p95_latency_no_requests_is_no_data() -> None:
    k6 = make_k6(make_requests([10.0] * 5, group="::setup"))

    verdict = evaluate(k6=k6, run_dir=None)

    assert criterion(verdict, "p95_latency").status == "NO_DATA"
    assert verdict.status == "INCONCLUSIVE"


# error_rate


def test_error_rate_boundary_is_not_below() -> None:
    ok = make_requests([10.0] * 995)
    failed = make_requests([10.0] * 5, status="500", failed=True, offset_s=100)

    item = criterion(evaluate(k6=make_k6(ok, failed), run_dir=None), "error_rate")

    assert item.observed == pytest.approx(0.005)
    assert item.status == "FAIL"
    assert item.evidence["failed_by_status"] == {"500": 5}


def test_error_rate_pass_just_below() -> None:
    ok = make_requests([10.0] * 996)
    failed = make_requests([10.0] * 4, status="500", failed=True, offset_s=100)

    item = criterion(evaluate(k6=make_k6(ok, failed), run_dir=None), "error_rate")

    assert item.observed == pytest.approx(0.004)
    assert item.status == "PASS"


def test_error_rate_shows_script_errors_rate() -> None:
    errors = make_samples("errors", [0.0, 1.0, 0.0, 1.0])
    k6 = make_k6(make_requests([10.0] * 100), samples=errors)

    item = criterion(evaluate(k6=k6, run_dir=None), "error_rate")

    assert item.observed == 0.0
    assert item.evidence["errors_rate"] == pytest.approx(0.5)
    assert "duration" in item.evidence["errors_counts"]
    assert "errors Rate" in item.reason


# sustained_p95


def sustained_k6(slow_windows: list[bool], *, per_window: int = 20) -> K6Output:
    """One window per entry of 1 s: slow windows at 200 ms, fast ones at 10 ms."""
    parts = [
        make_requests(
            [200.0 if slow else 10.0] * per_window,
            spacing_s=1.0 / per_window,
            offset_s=float(i),
        )
        for i, slow in enumerate(slow_windows)
    ]
    return make_k6(*parts)


SHORT_WINDOWS = SloSettings(sustained_window_s=1.0, sustained_max_s=3.0)


def test_sustained_p95_fail_long_stretch() -> None:
    k6 = sustained_k6([False, True, True, True, True, False])

    item = criterion(
        evaluate(k6=k6, run_dir=None, settings=SHORT_WINDOWS), "sustained_p95"
    )

    assert item.status == "FAIL"
    assert item.observed == 4.0
    assert item.evidence["longest_stretch"]["windows"] == 4
    assert len(item.evidence["windows"]) == 6
    assert item.evidence["windows"][1]["p95_ms"] == pytest.approx(200.0)


def test_sustained_p95_pass_stretch_at_limit() -> None:
    k6 = sustained_k6([True, True, True, False, True, True, True])

    item = criterion(
        evaluate(k6=k6, run_dir=None, settings=SHORT_WINDOWS), "sustained_p95"
    )

    assert item.status == "PASS"
    assert item.observed == 3.0


def test_sustained_p95_empty_window_ends_stretch() -> None:
    slow = [200.0] * 20
    parts = [
        make_requests(slow, spacing_s=0.05, offset_s=float(second))
        for second in (0, 1, 3, 4)
    ]
    k6 = make_k6(*parts)

    item = criterion(
        evaluate(k6=k6, run_dir=None, settings=SHORT_WINDOWS), "sustained_p95"
    )

    assert item.evidence["windows"][2]["requests"] == 0
    assert item.evidence["windows"][2]["p95_ms"] is None
    assert item.observed == 2.0
    assert item.status == "PASS"


def test_sustained_p95_short_run_says_so() -> None:
    item = criterion(evaluate(k6=fast_k6(), run_dir=None), "sustained_p95")

    assert item.status == "PASS"
    assert "spans only 4.0 s" in item.reason


# load_delivered


def test_load_delivered_dropped_is_inconclusive() -> None:
    dropped = make_samples("dropped_iterations", [3.0, 2.0])
    k6 = make_k6(make_requests([10.0] * 100), samples=dropped)

    verdict = evaluate(k6=k6, run_dir=None)
    item = criterion(verdict, "load_delivered")

    assert item.status == "INCONCLUSIVE"
    assert item.evidence["dropped_iterations"] == 5
    assert "optimistic" in item.reason
    assert verdict.status == "INCONCLUSIVE"


def test_load_delivered_low_rate_is_inconclusive() -> None:
    k6 = make_k6(make_requests([10.0] * 98, spacing_s=0.1))

    item = criterion(
        evaluate(k6=k6, run_dir=None, target_rate_per_s=10.0, duration_s=10.0),
        "load_delivered",
    )

    assert item.observed == pytest.approx(9.8)
    assert item.target == pytest.approx(9.9)
    assert item.status == "INCONCLUSIVE"


def test_load_delivered_full_rate_passes() -> None:
    k6 = make_k6(make_requests([10.0] * 99, spacing_s=0.1))

    item = criterion(
        evaluate(k6=k6, run_dir=None, target_rate_per_s=10.0, duration_s=10.0),
        "load_delivered",
    )

    assert item.status == "PASS"
    assert item.evidence["expected_requests"] == 100


def test_load_delivered_without_target_rate() -> None:
    item = criterion(evaluate(k6=fast_k6(), run_dir=None), "load_delivered")

    assert item.status == "PASS"
    assert item.target is None
    assert "no target rate" in item.reason
    assert item.observed == pytest.approx(50.0)


# overall status and the bare-file case


def test_evaluate_bare_file_passes_on_k6_alone() -> None:
    verdict = evaluate(k6=fast_k6(), run_dir=None)

    assert verdict.status == "PASS"
    for criterion_id in (
        "restarts",
        "critical_logs",
        "health",
        "heap_growth",
        "db_pool",
    ):
        item = criterion(verdict, criterion_id)
        assert item.status == "NO_DATA"
        assert item.required is False
    assert any("no run folder" in note for note in verdict.notes)


def test_evaluate_truncated_input_is_visible() -> None:
    k6 = make_k6(make_requests([10.0] * 100), is_truncated=True, dropped_lines=1)

    verdict = evaluate(k6=k6, run_dir=None)

    assert verdict.input["is_truncated"] is True
    assert verdict.input["dropped_lines"] == 1
    assert "incomplete line" in verdict.input["truncation_reason"]
    assert verdict.status == "INCONCLUSIVE"
    assert verdict.status_reason == verdict.input["truncation_reason"]


def test_evaluate_truncated_fail_stays_fail() -> None:
    k6 = make_k6(make_requests([300.0] * 100), is_truncated=True, dropped_lines=1)

    assert evaluate(k6=k6, run_dir=None).status == "FAIL"


def test_evaluate_healthy_run_folder_passes(tmp_path: Path) -> None:
    verdict = evaluate(k6=fast_k6(), run_dir=healthy_run_dir(tmp_path))

    statuses = {item.id: item.status for item in verdict.criteria}
    assert statuses == {
        "p95_latency": "PASS",
        "error_rate": "PASS",
        "sustained_p95": "PASS",
        "restarts": "PASS",
        "critical_logs": "PASS",
        "health": "PASS",
        "heap_growth": "PASS",
        "db_pool": "PASS",
        "load_delivered": "PASS",
    }
    assert all(item.required for item in verdict.criteria)
    assert verdict.status == "PASS"


def test_evaluate_required_no_data_inconclusive(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_ndjson(run_dir / "samples" / "health.ndjson", [])

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)

    assert criterion(verdict, "health").status == "NO_DATA"
    assert criterion(verdict, "health").required is True
    assert verdict.status == "INCONCLUSIVE"
    assert "health" in verdict.status_reason


def test_evaluate_sampler_stopped_early(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path, scrapes=5)
    k6 = make_k6(make_requests([10.0] * 300, spacing_s=0.1))

    verdict = evaluate(k6=k6, run_dir=run_dir)

    for criterion_id in ("restarts", "health", "heap_growth", "db_pool"):
        item = criterion(verdict, criterion_id)
        assert item.status == "INCONCLUSIVE", criterion_id
        assert "traffic ran from" in item.evidence["coverage_gaps"][0]
    assert verdict.status == "INCONCLUSIVE"


def test_evaluate_sampler_gap_keeps_fail(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path, scrapes=5)
    write_probes(run_dir, [True, False, True])
    k6 = make_k6(make_requests([10.0] * 300, spacing_s=0.1))

    item = criterion(evaluate(k6=k6, run_dir=run_dir), "health")

    assert item.status == "FAIL"


# restarts and process lifetimes


def test_restarts_start_time_jump_fails(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(
        run_dir,
        [
            scrape_body(requests_total=10),
            scrape_body(requests_total=20),
            scrape_body(requests_total=30, start_time_s=1_767_225_100.0),
        ],
    )

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "restarts")

    assert item.status == "FAIL"
    assert item.observed == 1
    assert "moved forward" in item.evidence["metric_restarts"][0]["signals"][0]


def test_restarts_jitter_is_not_restart(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(
        run_dir,
        [
            scrape_body(requests_total=10),
            scrape_body(requests_total=20, start_time_s=1_767_225_000.9),
        ],
    )

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "restarts")

    assert item.status == "PASS"


def test_restarts_counter_reset_fails(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(run_dir, [scrape_body(requests_total=n) for n in (10, 50, 3)])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "restarts")

    assert item.status == "FAIL"
    assert "went backwards" in item.evidence["metric_restarts"][0]["signals"][0]


def test_restarts_late_counter_counts_once(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    later = 1_767_225_100.0
    before = scrape_body(requests_total=50)
    before['probes_total{path="/health"}'] = 9.0
    after = scrape_body(requests_total=1, start_time_s=later)
    resumed = scrape_body(requests_total=2, start_time_s=later)
    resumed['probes_total{path="/health"}'] = 1.0
    write_scrapes(run_dir, [before, after, resumed])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "restarts")

    assert item.observed == 1
    assert len(item.evidence["metric_restarts"]) == 1


def test_restarts_health_dip_fails(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_probes(run_dir, [True, True, False, False, True])

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "restarts")

    assert item.status == "FAIL"
    assert len(item.evidence["health_dips"]) == 1
    assert criterion(verdict, "health").observed == pytest.approx(0.6)


def test_restarts_unhealthy_start_is_not_dip(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_probes(run_dir, [False, True, True])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "restarts")

    assert item.evidence["health_dips"] == []
    assert item.status == "PASS"


# heap_growth


def test_heap_growth_fails_over_limit(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(
        run_dir,
        [scrape_body(rss_bytes=80e6 + i * 20e6, requests_total=i) for i in range(4)],
    )

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "heap_growth")

    assert item.status == "FAIL"
    assert item.observed == pytest.approx(60e6)
    assert item.evidence["metric"] == "process_resident_memory_bytes"


def test_heap_growth_split_at_restart(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    later = 1_767_225_500.0
    write_scrapes(
        run_dir,
        [
            scrape_body(rss_bytes=80e6, requests_total=1),
            scrape_body(rss_bytes=120e6, requests_total=2),
            scrape_body(rss_bytes=60e6, requests_total=1, start_time_s=later),
            scrape_body(rss_bytes=100e6, requests_total=2, start_time_s=later),
        ],
    )

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "heap_growth")

    assert [life["growth_bytes"] for life in item.evidence["lifetimes"]] == [40e6, 40e6]
    assert item.status == "PASS"
    assert criterion(verdict, "restarts").status == "FAIL"


def test_heap_growth_prefers_heap_metric(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    bodies = []
    for i in range(3):
        body = scrape_body(rss_bytes=80e6 + i * 40e6, requests_total=i)
        body["process_heap_bytes"] = 10e6 + i * 1e6
        bodies.append(body)
    write_scrapes(run_dir, bodies)

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "heap_growth")

    assert item.evidence["metric"] == "process_heap_bytes"
    assert item.observed == pytest.approx(2e6)
    assert item.status == "PASS"


def test_heap_growth_scaled_threshold(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(
        run_dir,
        [scrape_body(rss_bytes=80e6 + i * 1e6, requests_total=i) for i in range(3)],
    )
    settings = SloSettings(heap_growth_bytes=1.5e6)

    item = criterion(
        evaluate(k6=fast_k6(), run_dir=run_dir, settings=settings), "heap_growth"
    )

    assert item.status == "FAIL"
    assert item.target == 1.5e6


# db_pool


@pytest.mark.parametrize(
    ("in_use", "waiters", "status"),
    [(10.0, 0.0, "FAIL"), (3.0, 2.0, "FAIL"), (9.0, 0.0, "PASS")],
)
def test_db_pool_exhaustion_cases(
    tmp_path: Path, in_use: float, waiters: float, status: str
) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(
        run_dir,
        [
            scrape_body(requests_total=1),
            scrape_body(requests_total=2, in_use=in_use, waiters=waiters),
        ],
    )

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "db_pool")

    assert item.status == status
    assert item.evidence["max_in_use"] == in_use
    assert item.evidence["max_waiters"] == waiters


def test_db_pool_absent_metrics_not_required(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_scrapes(run_dir, [{"process_resident_memory_bytes": 80e6}] * 2)

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "db_pool")

    assert item.status == "NO_DATA"
    assert item.required is False
    assert verdict.status == "PASS"


# critical_logs


def test_critical_logs_critical_fails(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_log_events(run_dir, ["WARN", "ERROR", "CRITICAL"])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "critical_logs")

    assert item.status == "FAIL"
    assert item.observed == 1
    assert item.evidence["first"]["line_no"] == 3


def test_critical_logs_errors_only_pass(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_log_events(run_dir, ["WARN", "ERROR"])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "critical_logs")

    assert item.status == "PASS"
    assert item.required is True


def test_critical_logs_unwatched_not_required(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    (run_dir / "logs" / "log_events.ndjson").unlink()

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "critical_logs")

    assert item.status == "NO_DATA"
    assert item.required is False
    assert "no log files were watched" in item.reason
    assert verdict.status == "PASS"


# verdict.json and the results table


def test_write_verdict_round_trip(tmp_path: Path) -> None:
    verdict = evaluate(k6=fast_k6(), run_dir=healthy_run_dir(tmp_path))
    path = write_verdict(verdict, tmp_path / "verdict.json")

    data = json.loads(path.read_text(encoding="utf-8"))
    loaded = load_verdict(path)

    assert data["schema_version"] == "1"
    assert set(data["criteria"][0]) == {
        "id",
        "status",
        "observed",
        "target",
        "method",
        "reason",
        "evidence",
        "required",
    }
    assert loaded == verdict


def test_load_verdict_rejects_other_schema(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    path.write_text('{"schema_version": "0", "status": "PASS"}', encoding="utf-8")

    with pytest.raises(InvalidInputError, match="schema_version '0'"):
        load_verdict(path)


def test_load_verdict_rejects_non_json(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    path.write_text("PASS\n", encoding="utf-8")

    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_verdict(path)


def test_results_table_totals_and_uptime(tmp_path: Path) -> None:
    k6 = make_k6(make_requests([10.0] * 1000, spacing_s=1.0 / 250))
    verdict = evaluate(
        k6=k6,
        run_dir=healthy_run_dir(tmp_path),
        target_rate_per_s=250.0,
        duration_s=1800,
    )

    table = results_table(verdict).set_index("criterion")

    assert list(table.columns) == ["target", "actual", "status"]
    assert table.loc["Total requests", "target"].startswith("450,000")
    assert table.loc["Total requests", "actual"] == "1,000"
    assert table.loc["Uptime", "actual"].startswith("100.00%")
    assert table.loc["P95 latency", "target"] == "<= 120 ms"
    assert len(table) == len(verdict.criteria) + 2


# degenerate inputs: every criterion returns a status with a reason, never raises

K6_CRITERIA = ("p95_latency", "error_rate", "sustained_p95", "load_delivered")


def degenerate_k6(case: str) -> K6Output:
    """Build the k6 output of one degenerate case by name."""
    if case == "no requests":
        return make_k6(make_requests([]))
    if case == "one request":
        return make_k6(make_requests([10.0]))
    if case == "single timestamp":
        return make_k6(make_requests([10.0] * 5, spacing_s=0.0))
    if case == "setup only":
        return make_k6(make_requests([10.0] * 5, group="::setup"))
    requests = make_requests([np.nan] * 5)
    requests["failed"] = pd.array([pd.NA] * 5, dtype="boolean")
    return make_k6(requests)


# Statuses of p95_latency, error_rate, sustained_p95, then load_delivered without
# a plan and with a plan of 10 requests/s for 10 s.
DEGENERATE_CASES = {
    "no requests": ("NO_DATA", "NO_DATA", "NO_DATA", "NO_DATA", "NO_DATA"),
    "setup only": ("NO_DATA", "NO_DATA", "NO_DATA", "NO_DATA", "NO_DATA"),
    "one request": ("PASS", "PASS", "PASS", "INCONCLUSIVE", "INCONCLUSIVE"),
    "single timestamp": ("PASS", "PASS", "PASS", "INCONCLUSIVE", "INCONCLUSIVE"),
    "no durations": ("NO_DATA", "NO_DATA", "NO_DATA", "PASS", "INCONCLUSIVE"),
}


@pytest.mark.parametrize("planned", [False, True], ids=["no plan", "planned"])
@pytest.mark.parametrize("case", list(DEGENERATE_CASES))
def test_evaluate_degenerate_k6_inputs(case: str, planned: bool) -> None:
    k6 = degenerate_k6(case)
    plan = {"target_rate_per_s": 10.0, "duration_s": 10.0} if planned else {}

    verdict = evaluate(k6=k6, run_dir=None, **plan)

    *k6_statuses, load_unplanned, load_planned = DEGENERATE_CASES[case]
    expected = [*k6_statuses, load_planned if planned else load_unplanned]
    assert [criterion(verdict, name).status for name in K6_CRITERIA] == expected
    for item in verdict.criteria:
        assert item.status in STATUSES
        assert item.reason
    assert verdict.status == "INCONCLUSIVE"
    assert results_table(verdict)["status"].tolist()
    assert recommendations(verdict, k6)


def test_evaluate_degenerate_round_trips(tmp_path: Path) -> None:
    verdict = evaluate(k6=degenerate_k6("one request"), run_dir=None)

    loaded = load_verdict(write_verdict(verdict, tmp_path / "verdict.json"))

    assert loaded.criterion("load_delivered").observed is None
    assert loaded.status == "INCONCLUSIVE"


def test_load_delivered_one_request_rate_unknown() -> None:
    item = criterion(
        evaluate(k6=degenerate_k6("one request"), run_dir=None), "load_delivered"
    )

    assert item.observed is None
    assert "achieved rate is unknown" in item.reason
    assert "1 scenario request(s) span 0.0 s" in item.reason


def degenerate_run_dir(tmp_path: Path, case: str) -> Path:
    """Write a healthy run folder, then make one of its files degenerate."""
    run_dir = healthy_run_dir(tmp_path)
    if case == "empty metrics":
        write_ndjson(run_dir / "samples" / "metrics.ndjson", [])
    elif case == "one scrape and probe":
        write_scrapes(run_dir, [scrape_body()])
        write_probes(run_dir, [True])
    elif case == "empty health":
        write_ndjson(run_dir / "samples" / "health.ndjson", [])
    elif case == "empty log events":
        write_ndjson(run_dir / "logs" / "log_events.ndjson", [])
    return run_dir


# Statuses of restarts, health, heap_growth, db_pool and critical_logs; coverage
# turns passes of sampler criteria INCONCLUSIVE when the samples stop early.
SERVICE_CRITERIA = ("restarts", "health", "heap_growth", "db_pool", "critical_logs")
DEGENERATE_RUN_DIRS = {
    "empty metrics": ("PASS", "PASS", "NO_DATA", "NO_DATA", "PASS"),
    "one scrape and probe": (
        "NO_DATA",
        "INCONCLUSIVE",
        "NO_DATA",
        "INCONCLUSIVE",
        "PASS",
    ),
    "empty health": ("PASS", "NO_DATA", "PASS", "PASS", "PASS"),
    "empty log events": ("PASS", "PASS", "PASS", "PASS", "PASS"),
}


@pytest.mark.parametrize("case", list(DEGENERATE_RUN_DIRS))
def test_evaluate_degenerate_run_folders(tmp_path: Path, case: str) -> None:
    run_dir = degenerate_run_dir(tmp_path, case)

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)

    statuses = [criterion(verdict, name).status for name in SERVICE_CRITERIA]
    assert statuses == list(DEGENERATE_RUN_DIRS[case])
    for item in verdict.criteria:
        assert item.reason


def test_evaluate_degenerate_run_folder_k6_too(tmp_path: Path) -> None:
    run_dir = degenerate_run_dir(tmp_path, "one scrape and probe")

    verdict = evaluate(k6=degenerate_k6("single timestamp"), run_dir=run_dir)

    assert criterion(verdict, "restarts").status == "NO_DATA"
    assert verdict.status == "INCONCLUSIVE"


# sustained_p95 on runs shorter than its limit


def test_sustained_p95_stretch_clipped_to_traffic() -> None:
    k6 = make_k6(make_requests([150.0] * 100, spacing_s=0.1))

    item = criterion(evaluate(k6=k6, run_dir=None), "sustained_p95")

    assert item.observed == pytest.approx(9.9)
    assert item.observed <= item.evidence["traffic_span_s"]
    assert item.evidence["windows"][0]["covered_s"] == pytest.approx(9.9)
    assert "lasts 9.9 s" in item.reason
    assert "60 s" not in item.reason


def test_sustained_p95_short_run_not_observable() -> None:
    k6 = make_k6(make_requests([10.0] * 100, spacing_s=0.1))

    item = criterion(evaluate(k6=k6, run_dir=None), "sustained_p95")

    assert item.status == "PASS"
    assert item.evidence["is_observable"] is False
    assert "not observable in a run shorter than 5 min" in item.reason


def test_sustained_p95_partial_window_counts_covered() -> None:
    # Windows 0 and 1 are slow; the run ends 0.5 s into window 2, also slow.
    k6 = sustained_k6([False, True, True], per_window=20)
    tail = make_requests([200.0] * 10, spacing_s=0.05, offset_s=3.0)
    k6 = make_k6(k6.requests, tail)

    item = criterion(
        evaluate(k6=k6, run_dir=None, settings=SHORT_WINDOWS), "sustained_p95"
    )

    assert item.evidence["longest_stretch"]["windows"] == 3
    assert item.observed == pytest.approx(2.45)
    assert item.status == "PASS"
    assert item.evidence["is_observable"] is True


@pytest.mark.parametrize("span_s", [5.0, 10.0, 60.0])
def test_evaluate_short_run_flagged(span_s: float) -> None:
    count = int(span_s * 10)
    k6 = make_k6(make_requests([10.0] * count, spacing_s=0.1))

    verdict = evaluate(k6=k6, run_dir=None, target_rate_per_s=10.0, duration_s=span_s)

    assert verdict.status == "PASS"
    assert verdict.input["traffic_span_s"] == pytest.approx(span_s - 0.1)
    assert "shorter than the 30 min canary" in verdict.input["short_run_reason"]
    assert "sustained_p95 cannot observe" in verdict.input["short_run_reason"]
    assert verdict.input["short_run_reason"] in verdict.notes


def test_evaluate_full_length_run_not_short() -> None:
    k6 = make_k6(make_requests([10.0] * 1800, spacing_s=1.0))

    verdict = evaluate(k6=k6, run_dir=None, target_rate_per_s=1.0, duration_s=1800.0)

    assert verdict.input["short_run_reason"] is None
    assert criterion(verdict, "sustained_p95").evidence["is_observable"] is True


def test_evaluate_stopped_early_is_short() -> None:
    # 40 min of traffic against a 60 min plan: longer than 30 min, shorter than planned.
    k6 = make_k6(make_requests([10.0] * 2400, spacing_s=1.0))

    verdict = evaluate(k6=k6, run_dir=None, duration_s=3600.0)

    assert "shorter than the 60 min canary" in verdict.input["short_run_reason"]
    assert "sustained_p95" not in verdict.input["short_run_reason"]


# critical_logs with logs/log_sources.json


def write_log_sources(
    run_dir: Path, patterns: list[str], files: list[str], unmatched: list[str]
) -> None:
    sources = {
        "patterns": patterns,
        "files": [{"path": path, "first_seen": START.isoformat()} for path in files],
        "unmatched_patterns": unmatched,
    }
    path = run_dir / "logs" / "log_sources.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sources), encoding="utf-8")


def test_critical_logs_no_match_is_no_data(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_ndjson(run_dir / "logs" / "log_events.ndjson", [])
    write_log_sources(run_dir, ["/var/log/app/*.log"], [], ["/var/log/app/*.log"])

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "critical_logs")

    assert item.status == "NO_DATA"
    assert item.required is True
    assert "/var/log/app/*.log" in item.reason
    assert verdict.status == "INCONCLUSIVE"


def test_critical_logs_no_match_without_events(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    (run_dir / "logs" / "log_events.ndjson").unlink()
    write_log_sources(run_dir, ["/nowhere/*.log"], [], ["/nowhere/*.log"])

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)

    assert criterion(verdict, "critical_logs").status == "NO_DATA"
    assert verdict.status == "INCONCLUSIVE"


def test_critical_logs_partial_match_names_unmatched(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_log_events(run_dir, ["WARN", "CRITICAL"])
    write_log_sources(
        run_dir,
        ["/var/log/app.log", "/var/log/worker/*.log"],
        ["/var/log/app.log"],
        ["/var/log/worker/*.log"],
    )

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "critical_logs")

    assert item.status == "FAIL"
    assert item.observed == 1
    assert "/var/log/worker/*.log matched no file" in item.reason
    assert item.evidence["log_files"] == ["/var/log/app.log"]


def test_critical_logs_partial_match_pass(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    write_log_sources(run_dir, ["a.log", "b*.log"], ["a.log"], ["b*.log"])

    item = criterion(evaluate(k6=fast_k6(), run_dir=run_dir), "critical_logs")

    assert item.status == "PASS"
    assert "b*.log matched no file" in item.reason


def test_critical_logs_matched_without_events(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    (run_dir / "logs" / "log_events.ndjson").unlink()
    write_log_sources(run_dir, ["app.log"], ["app.log"], [])

    verdict = evaluate(k6=fast_k6(), run_dir=run_dir)
    item = criterion(verdict, "critical_logs")

    assert item.status == "PASS"
    assert item.required is True
    assert item.evidence["kept_entries"] == 0


def test_critical_logs_invalid_sources_rejected(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    (run_dir / "logs" / "log_sources.json").write_text("[1, 2", encoding="utf-8")

    with pytest.raises(InvalidInputError, match="log_sources.json is not valid JSON"):
        evaluate(k6=fast_k6(), run_dir=run_dir)


def test_critical_logs_sources_wrong_shape(tmp_path: Path) -> None:
    run_dir = healthy_run_dir(tmp_path)
    path = run_dir / "logs" / "log_sources.json"
    path.write_text(json.dumps({"files": [{"first_seen": "x"}]}), encoding="utf-8")

    with pytest.raises(InvalidInputError, match="without a path"):
        evaluate(k6=fast_k6(), run_dir=run_dir)


def test_results_table_sustained_not_observable() -> None:
    table = results_table(evaluate(k6=fast_k6(), run_dir=None))

    row = table[table["criterion"] == "Sustained P95"].iloc[0]
    assert "not observable" in row["actual"]
