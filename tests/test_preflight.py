"""Tests of run_preflight against the rehearsal target and a mock server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MockRoute

from canarykit.errors import PreflightError
from canarykit.k6runner import LoadSettings
from canarykit.pipeline import RunSettings, run_canary
from canarykit.preflight import run_preflight

StartTarget = Callable[..., str]
StartMock = Callable[[dict[str, MockRoute]], str]

HEALTHY = MockRoute(200, b'{"status": "healthy"}', "application/json")
READY = MockRoute(200, b'{"status": "ready", "checks": {"db": "pass"}}')
METRICS = MockRoute(200, b"# TYPE up gauge\nup 1\n")
SAVED_FILES = (
    "preflight_health.json",
    "preflight_readyz.json",
    "preflight_metrics.txt",
)


def test_preflight_passes_on_target(
    rehearsal_target: StartTarget, tmp_path: Path
) -> None:
    base_url = rehearsal_target()

    result = run_preflight(base_url + "/", run_dir=tmp_path)

    assert result.base_url == base_url
    assert result.health == {"status": "healthy"}
    assert result.readyz["checks"]["database"] == "pass"
    assert result.metrics.value("process_start_time_seconds") is not None
    for name in SAVED_FILES:
        assert (tmp_path / name).is_file(), name
    saved_health = json.loads((tmp_path / "preflight_health.json").read_text())
    assert saved_health["status"] == 200
    assert saved_health["body"] == {"status": "healthy"}
    assert "process_start_time_seconds" in (tmp_path / SAVED_FILES[2]).read_text()


def test_preflight_fails_unhealthy_target(
    rehearsal_target: StartTarget, tmp_path: Path
) -> None:
    log_file = tmp_path / "app.log"
    base_url = rehearsal_target(log_file=log_file, critical_after=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and " CRITICAL " not in log_file.read_text():
        time.sleep(0.1)

    with pytest.raises(PreflightError) as raised:
        run_preflight(base_url, run_dir=tmp_path)

    message = str(raised.value)
    assert f"{base_url}/health" in message
    assert "HTTP 503" in message
    assert "unhealthy" in message


@pytest.mark.parametrize(
    ("routes", "expected_parts"),
    [
        (
            {"/health": MockRoute(500, b"database down"), "/readyz": READY},
            ["/health", "HTTP 500", "database down"],
        ),
        (
            {"/health": MockRoute(200, b"<html>ok</html>", "text/html")},
            ["/health", "HTTP 200", '"status": "healthy"', "<html>"],
        ),
        (
            {"/health": HEALTHY, "/readyz": MockRoute(200, b"ready")},
            ["/readyz", '"checks"'],
        ),
        (
            {
                "/health": HEALTHY,
                "/readyz": MockRoute(
                    503, b'{"status": "not ready", "checks": {"db": "fail"}}'
                ),
            },
            ["/readyz", "HTTP 503"],
        ),
        (
            {
                "/health": HEALTHY,
                "/readyz": MockRoute(
                    200, b'{"checks": {"db": "pass", "cache": "fail"}}'
                ),
            },
            ["/readyz", "'cache': 'fail'"],
        ),
        (
            {"/health": HEALTHY, "/readyz": READY, "/metrics": MockRoute(404)},
            ["/metrics", "HTTP 404"],
        ),
        (
            {
                "/health": HEALTHY,
                "/readyz": READY,
                "/metrics": MockRoute(200, b"up 1\nnot a sample here\n"),
            },
            ["/metrics", "line 2", "not a sample here"],
        ),
    ],
)
def test_preflight_names_failed_check(
    mock_http_server: StartMock,
    tmp_path: Path,
    routes: dict[str, MockRoute],
    expected_parts: list[str],
) -> None:
    base_url = mock_http_server({"/metrics": METRICS, **routes})

    with pytest.raises(PreflightError) as raised:
        run_preflight(base_url, run_dir=tmp_path)

    for part in expected_parts:
        assert part in str(raised.value), part
    for name in SAVED_FILES:
        assert (tmp_path / name).is_file(), name


def test_preflight_saves_bad_body(mock_http_server: StartMock, tmp_path: Path) -> None:
    base_url = mock_http_server({"/health": MockRoute(500, b"database down")})

    with pytest.raises(PreflightError):
        run_preflight(base_url, run_dir=tmp_path)

    saved = json.loads((tmp_path / "preflight_health.json").read_text())
    assert saved["status"] == 500
    assert saved["body"] == "database down"


def test_preflight_connection_refused(unused_port: int, tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{unused_port}"

    with pytest.raises(PreflightError) as raised:
        run_preflight(base_url, run_dir=tmp_path)

    assert f"{base_url}/health" in str(raised.value)
    assert "ConnectError" in str(raised.value)
    saved = json.loads((tmp_path / "preflight_health.json").read_text())
    assert saved["status"] is None
    assert "ConnectError" in saved["error"]


def test_preflight_timeout(mock_http_server: StartMock, tmp_path: Path) -> None:
    base_url = mock_http_server({"/health": MockRoute(200, b"{}", delay_s=5.0)})

    with pytest.raises(PreflightError) as raised:
        run_preflight(base_url, run_dir=tmp_path, timeout_s=0.3)

    assert "ReadTimeout" in str(raised.value)


# A token with no "Bearer" prefix and no token-like name, so only the known
# secret can catch it.
RAW_TOKEN = "q8Zr2LmXv0Ka9Tn4"
LEAKY_ROUTES = {
    "/health": MockRoute(
        503, f"Authorization: Bearer abc987def; echo {RAW_TOKEN}".encode()
    ),
    "/readyz": MockRoute(
        200, f'{{"checks": {{"db": "pass"}}, "echo": "{RAW_TOKEN}"}}'.encode()
    ),
    "/metrics": MockRoute(200, f"# HELP up {RAW_TOKEN}\nup 1\n".encode()),
}


def _assert_no_secret(run_dir: Path, message: str) -> None:
    for secret in (RAW_TOKEN, "abc987def"):
        assert secret not in message, secret
        for name in SAVED_FILES:
            assert secret not in (run_dir / name).read_text(), (secret, name)


def test_preflight_redacts_bodies_and_error(
    mock_http_server: StartMock, tmp_path: Path
) -> None:
    base_url = mock_http_server(LEAKY_ROUTES)

    with pytest.raises(PreflightError) as raised:
        run_preflight(base_url, run_dir=tmp_path, secrets=[RAW_TOKEN])

    message = str(raised.value)
    _assert_no_secret(tmp_path, message)
    assert "Authorization: Bearer [REDACTED]; echo [REDACTED]" in message
    saved = json.loads((tmp_path / "preflight_health.json").read_text())
    assert saved["body"] == "Authorization: Bearer [REDACTED]; echo [REDACTED]"


def test_run_canary_preflight_redacts_token(
    mock_http_server: StartMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFLIGHT_TEST_TOKEN", RAW_TOKEN)
    settings = RunSettings(
        load=LoadSettings(base_url=mock_http_server(LEAKY_ROUTES), duration="5s"),
        token_env="PREFLIGHT_TEST_TOKEN",
        results_root=tmp_path / "results",
        evidence_root=tmp_path / "evidence",
    )

    with pytest.raises(PreflightError) as raised:
        run_canary(settings)

    (run_dir,) = (tmp_path / "results").iterdir()
    _assert_no_secret(run_dir, str(raised.value))
