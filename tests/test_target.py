"""Tests of the rehearsal target: endpoints, each fault option, and a real k6 run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from canarykit.prom import parse_exposition
from canarykit.target import run_target

EVENT = {
    "event_type": "application_submitted",
    "user_id": "user-1",
    "scholarship_id": "scholarship-7",
    "timestamp": "2025-01-01T00:00:00Z",
}
CANARY_SCRIPT = Path(__file__).parent.parent / "load-tests" / "canary_250rps_30min.js"

StartTarget = Callable[..., str]


def _post_event(base_url: str, token: str | None = "token-1") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}".strip()} if token is not None else {}
    return httpx.post(f"{base_url}/api/v1/events", json=EVENT, headers=headers)


def _metric(base_url: str, name: str, labels: dict[str, str] | None = None) -> float:
    scrape = parse_exposition(httpx.get(f"{base_url}/metrics").text)
    value = scrape.value(name, labels)
    assert value is not None, f"{name} {labels} missing from {base_url}/metrics"
    return value


def _env_without(name: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != name}


def test_target_health_readyz_and_metrics(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target()

    health = httpx.get(f"{base_url}/health")
    readyz = httpx.get(f"{base_url}/readyz")
    metrics = parse_exposition(httpx.get(f"{base_url}/metrics").text)

    assert health.status_code == 200
    assert health.json() == {"status": "healthy"}
    assert readyz.status_code == 200
    assert readyz.json()["status"] == "ready"
    assert set(readyz.json()["checks"].values()) == {"pass"}
    assert metrics.errors == []
    for name in (
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "db_pool_connections_in_use",
        "db_pool_waiters",
    ):
        assert metrics.value(name) is not None, name
    assert metrics.value("db_pool_connections_max", {"pool": "main"}) == 100


def test_target_counts_requests(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target()
    for _ in range(3):
        _post_event(base_url)

    labels = {"method": "POST", "route": "/api/v1/events", "status": "202"}
    assert _metric(base_url, "http_requests_total", labels) == 3
    duration_labels = {"method": "POST", "route": "/api/v1/events"}
    assert (
        _metric(base_url, "http_request_duration_seconds_count", duration_labels) == 3
    )


def test_events_token_from_env(rehearsal_target: StartTarget) -> None:
    env = {**os.environ, "CANARY_TEST_SECRET": "right-token"}
    base_url = rehearsal_target(env=env, token_env="CANARY_TEST_SECRET")

    assert _post_event(base_url, "right-token").status_code == 202
    assert _post_event(base_url, "wrong-token").status_code == 401
    assert _post_event(base_url, None).status_code == 401
    assert _post_event(base_url, "").status_code == 401


def test_events_any_token_when_env_unset(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"))

    assert _post_event(base_url, "anything").status_code == 202
    assert _post_event(base_url, None).status_code == 401
    basic = httpx.post(
        f"{base_url}/api/v1/events", json=EVENT, headers={"Authorization": "Basic x"}
    )
    assert basic.status_code == 401


def test_events_rejects_incomplete_event(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"))
    headers = {"Authorization": "Bearer t"}

    missing = httpx.post(
        f"{base_url}/api/v1/events", json={"user_id": "u"}, headers=headers
    )
    not_json = httpx.post(f"{base_url}/api/v1/events", content=b"{", headers=headers)

    assert missing.status_code == 400
    assert "event_type" in missing.json()["error"]
    assert not_json.status_code == 400


def test_latency_ms_delays_every_request(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(latency_ms=300)

    started = time.perf_counter()
    response = httpx.get(f"{base_url}/health")
    elapsed_s = time.perf_counter() - started

    assert response.status_code == 200
    assert elapsed_s >= 0.3


def test_spike_slows_requests_then_ends(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(spike_ms=500, spike_start=0, spike_duration=3)

    started = time.perf_counter()
    httpx.get(f"{base_url}/health")
    assert time.perf_counter() - started >= 0.5

    deadline = time.monotonic() + 10
    fast_s = None
    while time.monotonic() < deadline and fast_s is None:
        started = time.perf_counter()
        httpx.get(f"{base_url}/health")
        elapsed_s = time.perf_counter() - started
        fast_s = elapsed_s if elapsed_s < 0.2 else None
    assert fast_s is not None, "the spike did not end within 10 s"


def test_error_ratio_one_fails_every_post(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"), error_ratio=1.0)

    statuses = {_post_event(base_url).status_code for _ in range(10)}

    assert statuses == {500}
    assert httpx.get(f"{base_url}/health").status_code == 200


def test_error_ratio_fraction_of_posts(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"), error_ratio=0.3)

    with httpx.Client() as client:
        statuses = [
            client.post(
                f"{base_url}/api/v1/events",
                json=EVENT,
                headers={"Authorization": "Bearer t"},
            ).status_code
            for _ in range(400)
        ]

    failed_fraction = statuses.count(500) / len(statuses)
    # 400 draws at p = 0.3 have a standard deviation of 0.023; 0.15 is over 6 of them.
    assert 0.15 <= failed_fraction <= 0.45
    assert set(statuses) == {202, 500}


def test_rate_limit_returns_429(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"), rate_limit=5)

    with httpx.Client() as client:
        statuses = [
            client.post(
                f"{base_url}/api/v1/events",
                json=EVENT,
                headers={"Authorization": "Bearer t"},
            ).status_code
            for _ in range(30)
        ]

    # 30 quick posts span one to three one-second windows of 5 accepted posts.
    assert 5 <= statuses.count(202) <= 15
    assert statuses.count(429) == 30 - statuses.count(202)
    assert httpx.get(f"{base_url}/health").status_code == 200


def _memory_bytes(base_url: str) -> tuple[float, float]:
    # Both values come from one scrape. The app serves /metrics on its event
    # loop, so no leak step can fall between the two reads.
    scrape = parse_exposition(httpx.get(f"{base_url}/metrics").text)
    resident = scrape.value("process_resident_memory_bytes")
    leaked = scrape.value("rehearsal_leaked_bytes")
    assert resident is not None and leaked is not None
    return resident, leaked


def test_leak_grows_resident_memory(rehearsal_target: StartTarget) -> None:
    # 1200 MB/min leaks 20 MB (10^6 bytes) once per second.
    base_url = rehearsal_target(leak_mb_per_min=1200)
    first_resident, first_leaked = _memory_bytes(base_url)

    resident, leaked = first_resident, first_leaked
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and leaked - first_leaked < 40e6:
        time.sleep(0.2)
        resident, leaked = _memory_bytes(base_url)

    grown_leaked = leaked - first_leaked
    assert grown_leaked >= 40e6
    # Every leaked byte is written, so the resident set grows with it. The 10%
    # margin covers memory that Python frees meanwhile (24 KB in one measured run).
    assert resident - first_resident >= 0.9 * grown_leaked


def test_restart_after_moves_start_time(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(env=_env_without("TEST_TOKEN"), restart_after=2)
    first_start = _metric(base_url, "process_start_time_seconds")
    for _ in range(5):
        _post_event(base_url)

    deadline = time.monotonic() + 15
    start = first_start
    while time.monotonic() < deadline and start == first_start:
        time.sleep(0.2)
        try:
            start = _metric(base_url, "process_start_time_seconds")
        except httpx.HTTPError:
            continue

    assert start > first_start
    labels = {"method": "POST", "route": "/api/v1/events", "status": "202"}
    scrape = parse_exposition(httpx.get(f"{base_url}/metrics").text)
    assert scrape.value("http_requests_total", labels) is None
    assert httpx.get(f"{base_url}/health").status_code == 200


async def _post_concurrently(base_url: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as client:
        tasks = [
            client.post(
                f"{base_url}/api/v1/events",
                json=EVENT,
                headers={"Authorization": "Bearer t"},
            )
            for _ in range(count)
        ]
        return [response.status_code for response in await asyncio.gather(*tasks)]


async def _scrape_during_posts(
    base_url: str,
) -> tuple[str, dict[str, object], list[int]]:
    posts = asyncio.create_task(_post_concurrently(base_url, 8))
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = (await client.get(f"{base_url}/metrics")).text
        readyz = (await client.get(f"{base_url}/readyz")).json()
    return metrics, readyz, await posts


def test_small_pool_shows_waiters(rehearsal_target: StartTarget) -> None:
    base_url = rehearsal_target(
        env=_env_without("TEST_TOKEN"), pool_size=2, latency_ms=400
    )

    metrics, readyz, statuses = asyncio.run(_scrape_during_posts(base_url))

    scrape = parse_exposition(metrics)
    waiters = scrape.value("db_pool_waiters", {"pool": "main"})
    assert waiters is not None and waiters >= 1
    assert scrape.value("db_pool_connections_in_use", {"pool": "main"}) == 2
    assert readyz["checks"] == {"database": "fail", "application": "pass"}
    assert statuses == [202] * 8


def test_critical_after_writes_log_and_fails_health(
    rehearsal_target: StartTarget, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.log"
    base_url = rehearsal_target(log_file=log_file, critical_after=1)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and " CRITICAL " not in log_file.read_text():
        time.sleep(0.1)

    lines = log_file.read_text().splitlines()
    assert any(" INFO canarykit.target: " in line for line in lines)
    assert any(" CRITICAL canarykit.target: " in line for line in lines)
    assert "Traceback (most recent call last):" in lines
    health = httpx.get(f"{base_url}/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unhealthy"}


@pytest.mark.parametrize(
    "arguments",
    [
        ["--error-ratio", "1.5"],
        ["--spike-ms", "100"],
        ["--critical-after", "5"],
        ["--pool-size", "0"],
        ["--latency-ms", "-1"],
    ],
)
def test_run_target_rejects_bad_options(arguments: list[str]) -> None:
    assert run_target(["--port", "0", *arguments]) == 2


def _run_target_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    # A separate process with a time limit, so an option that is wrongly accepted
    # fails the test instead of serving until the suite is killed.
    code = "import sys; from canarykit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "target", *arguments],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--port", "99999"], "between 0 and 65535, got 99999"),
        (["--port", "65536"], "between 0 and 65535, got 65536"),
        (["--port", "0", "--latency-ms", "inf"], "--latency-ms must be a finite"),
        (["--port", "0", "--spike-ms", "nan"], "--spike-ms must be a finite"),
        (["--port", "0", "--spike-start=-inf"], "--spike-start must be a finite"),
        (["--port", "0", "--error-ratio", "nan"], "--error-ratio"),
        (["--port", "0", "--leak-mb-per-min", "inf"], "--leak-mb-per-min must be"),
        (["--port", "0", "--restart-after", "inf"], "--restart-after must be"),
        (["--port", "0", "--spike-duration", "nan"], "--spike-duration must be"),
    ],
)
def test_target_cli_rejects_out_of_range(arguments: list[str], expected: str) -> None:
    result = _run_target_command(*arguments)

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_target_rejects_missing_log_folder(tmp_path: Path) -> None:
    folder = tmp_path / "missing" / "dir"

    result = _run_target_command("--port", "0", "--log-file", str(folder / "x.log"))

    assert result.returncode == 2
    assert f"folder {str(folder)!r} does not exist" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_target_rejects_unwritable_log_file(tmp_path: Path) -> None:
    # A directory cannot be opened as a file, even by root.
    result = _run_target_command("--port", "0", "--log-file", str(tmp_path))

    assert result.returncode == 2
    assert "cannot be opened for appending" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_target_rejects_log_file_in_proc() -> None:
    result = _run_target_command("--port", "0", "--log-file", "/proc/x.log")

    assert result.returncode == 2
    assert "'/proc/x.log' cannot be opened" in result.stderr
    assert "Traceback" not in result.stderr


def test_target_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        run_target(["--help"])

    assert raised.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "address to listen on (default 127.0.0.1)" in help_text
    assert "0 picks a free port (default 8000)" in help_text


@pytest.mark.k6
def test_canary_script_holds_250_rps(
    rehearsal_target: StartTarget, k6_binary: str, tmp_path: Path
) -> None:
    base_url = rehearsal_target(env={**os.environ, "TEST_TOKEN": "k6-token"})
    summary_path = tmp_path / "summary.json"
    env = {
        **os.environ,
        "BASE_URL": base_url,
        "RATE": "250",
        "DURATION": "5s",
        "PRE_ALLOCATED_VUS": "50",
        "MAX_VUS": "100",
        "CANARY_TOKEN": "k6-token",
    }
    command = [k6_binary, "run", "--quiet", "--no-usage-report"]
    command += ["--summary-export", str(summary_path), str(CANARY_SCRIPT)]

    completed = subprocess.run(command, env=env, capture_output=True, timeout=60)

    output = completed.stdout.decode() + completed.stderr.decode()
    assert completed.returncode == 0, output[-3000:]
    assert "k6-token" not in output
    metrics = json.loads(summary_path.read_text())["metrics"]
    assert metrics["iterations"]["count"] >= 0.99 * 250 * 5
    assert metrics.get("dropped_iterations", {}).get("count", 0) == 0
    assert metrics["http_req_failed"]["value"] == 0
    assert metrics["errors"]["value"] < 0.005
    assert metrics["http_req_duration"]["p(95)"] < 120
