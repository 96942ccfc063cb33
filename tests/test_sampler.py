"""Tests of Sampler against the rehearsal target and a mock server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MockRoute

from canarykit.errors import InvalidInputError
from canarykit.k6runner import LoadSettings
from canarykit.pipeline import RunSettings, _capture
from canarykit.prom import load_metric_samples
from canarykit.sampler import Sampler, load_health_samples, snapshot_labels

StartTarget = Callable[..., str]
StartMock = Callable[[dict[str, MockRoute]], str]
# A token with no "Bearer" prefix and no token-like name, so only the known
# secret can catch it.
RAW_TOKEN = "q8Zr2LmXv0Ka9Tn4"
LEAKY_ROUTES = {
    "/metrics": MockRoute(200, f'app_info{{build="{RAW_TOKEN}"}} 1\n'.encode()),
    "/health": MockRoute(
        200,
        f'{{"status": "healthy", "echo": "{RAW_TOKEN}", '
        '"header": "Authorization: Bearer abc987def"}'.encode(),
        "application/json",
    ),
}


def _ndjson(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sampler_records_target(rehearsal_target: StartTarget, tmp_path: Path) -> None:
    base_url = rehearsal_target()

    with Sampler(base_url=base_url, run_dir=tmp_path, interval_s=0.25, duration_s=3):
        time.sleep(3.1)

    metrics = _ndjson(tmp_path / "samples" / "metrics.ndjson")
    health = _ndjson(tmp_path / "samples" / "health.ndjson")
    # One sample at 0 s, one per 0.25 s until 3.1 s, and the final one at stop.
    assert 12 <= len(metrics) <= 15
    assert len(health) == len(metrics)
    assert all(record["ok"] for record in metrics + health)
    assert all(record["healthy"] for record in health)
    assert health[0]["body"] == {"status": "healthy"}
    assert "process_start_time_seconds" in str(metrics[-1]["text"])
    elapsed = [record["elapsed_s"] for record in metrics]
    assert elapsed == sorted(elapsed)


def test_sampler_snapshots_and_final(
    rehearsal_target: StartTarget, tmp_path: Path
) -> None:
    base_url = rehearsal_target()

    with Sampler(base_url=base_url, run_dir=tmp_path, interval_s=0.2, duration_s=3):
        time.sleep(3.0)

    for label in ("T+0.5s", "T+1.5s", "T+2.5s"):
        metrics_text = (tmp_path / "snapshots" / f"metrics_{label}.txt").read_text()
        assert "db_pool_waiters" in metrics_text
        health = json.loads(
            (tmp_path / "snapshots" / f"health_{label}.json").read_text()
        )
        assert health["healthy"] is True
        assert health["elapsed_s"] >= float(label[2:-1])
    assert "db_pool_waiters" in (tmp_path / "canary_final_metrics.txt").read_text()
    final_health = json.loads((tmp_path / "canary_final_health.json").read_text())
    assert final_health["elapsed_s"] >= 3.0


def test_sampler_survives_refused_connection(unused_port: int, tmp_path: Path) -> None:
    sampler = Sampler(
        base_url=f"http://127.0.0.1:{unused_port}",
        run_dir=tmp_path,
        interval_s=0.1,
        duration_s=60,
    )
    sampler.start()
    time.sleep(0.5)
    sampler.stop()

    metrics = _ndjson(tmp_path / "samples" / "metrics.ndjson")
    health = _ndjson(tmp_path / "samples" / "health.ndjson")
    assert len(metrics) >= 4
    assert not any(record["ok"] for record in metrics + health)
    assert all("ConnectError" in str(record["error"]) for record in metrics)
    assert all(record["status"] is None for record in metrics)
    assert all(record["healthy"] is False for record in health)
    assert sampler.failed_count == sampler.sample_count
    assert not (tmp_path / "canary_final_metrics.txt").exists()
    final_health = json.loads((tmp_path / "canary_final_health.json").read_text())
    assert final_health["ok"] is False


def test_sampler_bad_status_and_timeout(
    mock_http_server: StartMock, tmp_path: Path
) -> None:
    base_url = mock_http_server(
        {
            "/metrics": MockRoute(500, b"metrics backend down"),
            "/health": MockRoute(200, b"{}", delay_s=5.0),
        }
    )

    with Sampler(
        base_url=base_url,
        run_dir=tmp_path,
        interval_s=0.2,
        duration_s=60,
        timeout_s=0.2,
    ):
        time.sleep(0.5)

    metrics = _ndjson(tmp_path / "samples" / "metrics.ndjson")
    health = _ndjson(tmp_path / "samples" / "health.ndjson")
    assert metrics[0]["ok"] is False
    assert metrics[0]["status"] == 500
    assert metrics[0]["text"] == "metrics backend down"
    assert "ReadTimeout" in str(health[0]["error"])
    assert (tmp_path / "canary_final_metrics.txt").read_text() == "metrics backend down"


def test_sampler_health_unhealthy_body(
    mock_http_server: StartMock, tmp_path: Path
) -> None:
    base_url = mock_http_server(
        {"/metrics": MockRoute(200, b"up 1\n"), "/health": MockRoute(200, b"degraded")}
    )

    with Sampler(base_url=base_url, run_dir=tmp_path, interval_s=1, duration_s=60):
        pass

    frame = load_health_samples(tmp_path)
    assert frame["ok"].tolist() == [True, True]
    assert frame["healthy"].tolist() == [False, False]
    assert frame["body"].tolist() == ["degraded", "degraded"]


def test_sampler_frames_from_target(
    rehearsal_target: StartTarget, tmp_path: Path, unused_port: int
) -> None:
    base_url = rehearsal_target()
    with Sampler(base_url=base_url, run_dir=tmp_path, interval_s=0.2, duration_s=60):
        time.sleep(0.5)

    health = load_health_samples(tmp_path)
    metrics = load_metric_samples(tmp_path)

    assert list(health.columns) == [
        "time",
        "elapsed_s",
        "ok",
        "status",
        "error",
        "healthy",
        "body",
    ]
    assert str(health["time"].dtype) == "datetime64[ns, UTC]"
    assert str(health["status"].dtype) == "Int64"
    assert health["healthy"].all()
    start_times = metrics[metrics["metric"] == "process_start_time_seconds"]
    assert len(start_times) == len(health)
    assert start_times["value"].nunique() == 1


def test_load_health_samples_missing_file(tmp_path: Path) -> None:
    frame = load_health_samples(tmp_path)

    assert frame.empty
    assert "healthy" in frame.columns


def test_snapshot_labels_scale_to_duration() -> None:
    assert snapshot_labels(1800) == ["T+05m", "T+15m", "T+25m"]
    assert snapshot_labels(60) == ["T+10s", "T+30s", "T+50s"]
    assert snapshot_labels(3) == ["T+0.5s", "T+1.5s", "T+2.5s"]


@pytest.mark.parametrize("field", ["interval_s", "duration_s", "timeout_s"])
def test_sampler_rejects_non_positive(field: str, tmp_path: Path) -> None:
    options = {"interval_s": 1.0, "duration_s": 10.0, "timeout_s": 1.0, field: 0.0}

    with pytest.raises(InvalidInputError, match=field):
        Sampler(base_url="http://127.0.0.1:1", run_dir=tmp_path, **options)


def _files_containing(folder: Path, needle: str) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_sampler_redacts_known_secrets(
    mock_http_server: StartMock, tmp_path: Path
) -> None:
    base_url = mock_http_server(LEAKY_ROUTES)

    # Snapshot marks of a 0.6 s run fall at 0.1, 0.3 and 0.5 s.
    with Sampler(
        base_url=base_url,
        run_dir=tmp_path,
        interval_s=0.1,
        duration_s=0.6,
        secrets=[RAW_TOKEN],
    ):
        time.sleep(0.7)

    assert len(list((tmp_path / "snapshots").iterdir())) == 6
    assert _files_containing(tmp_path, RAW_TOKEN) == []
    assert _files_containing(tmp_path, "abc987def") == []
    health = _ndjson(tmp_path / "samples" / "health.ndjson")
    assert health[0]["body"]["echo"] == "[REDACTED]"
    assert health[0]["healthy"] is True
    final_metrics = (tmp_path / "canary_final_metrics.txt").read_text()
    assert 'build="[REDACTED]"' in final_metrics


def test_capture_redacts_run_token(
    mock_http_server: StartMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPTURE_TEST_TOKEN", RAW_TOKEN)
    log = tmp_path / "app.log"
    log.touch()
    run_dir = tmp_path / "run"
    settings = RunSettings(
        load=LoadSettings(base_url=mock_http_server(LEAKY_ROUTES)),
        token_env="CAPTURE_TEST_TOKEN",
        log_patterns=(str(log),),
        sample_interval_s=0.1,
    )

    with _capture(settings, run_dir, 0.6):
        log.write_text(f"2025-01-01T00:00:00Z CRITICAL raw token {RAW_TOKEN} seen\n")
        events_path = run_dir / "logs" / "log_events.ndjson"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not events_path.read_bytes():
            time.sleep(0.05)

    events = _ndjson(events_path)
    assert [event["severity"] for event in events] == ["CRITICAL"]
    assert "raw token [REDACTED] seen" in str(events[0]["message"])
    assert _files_containing(run_dir, RAW_TOKEN) == []
