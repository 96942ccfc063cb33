"""Tests of classify_line and LogWatcher: following, rotation, multi-line entries."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from canarykit.errors import InvalidInputError
from canarykit.logwatch import (
    LogWatcher,
    classify_line,
    load_log_events,
    load_log_sources,
)

StartTarget = Callable[..., str]
POLL_S = 0.05


@pytest.mark.parametrize(
    ("line", "severity"),
    [
        ("2025-01-01T00:00:00Z ERROR payment failed", "ERROR"),
        ("2025-01-01 00:00:00,123 WARNING disk at 91%", "WARN"),
        ("12:00:00.000 [main] WARN com.example.Pool - slow", "WARN"),
        ("2025/01/01 00:00:00 [error] 12#0: *1 upstream timed out", "ERROR"),
        ("2025/01/01 00:00:00 [alert] 12#0: worker exited", "CRITICAL"),
        ("[2025-01-01 00:00:00] FATAL out of memory", "CRITICAL"),
        ("CRITICAL:root:event store unreachable", "CRITICAL"),
        ("time=2025-01-01T00:00:00Z level=error msg=boom", "ERROR"),
        ('ts=1 level="warn" msg=slow', "WARN"),
        ("E0101 12:00:00.000000 1 main.go:1] failed", "ERROR"),
        ('{"level": 50, "msg": "pino error"}', "ERROR"),
        ('{"level": 60, "msg": "pino fatal"}', "CRITICAL"),
        ('{"level": 40, "msg": "pino warn"}', "WARN"),
        ('{"levelno": 40, "levelname": "ERROR", "msg": "python"}', "ERROR"),
        ('{"levelno": 50, "msg": "python critical"}', "CRITICAL"),
        ('{"level": "error", "msg": "named"}', "ERROR"),
        ('{"severity": "WARNING", "message": "gcp"}', "WARN"),
        ("2025-01-01T00:00:00Z INFO all good", None),
        ('{"level": 30, "msg": "pino info"}', None),
        ("Build finished: 0 Error(s), 0 Warning(s)", None),
        ("0 Error(s)", None),
        ("2026-12-04 17:55:00,123 - myapp.db - CRITICAL - pool exhausted", "CRITICAL"),
        ("2026-12-04 17:55:01,456 myapp.db CRITICAL database unreachable", "CRITICAL"),
        ("[2026-12-04 17:00:00] app.CRITICAL: boom", "CRITICAL"),
        ("Dec 04 17:00:00 host app[1]: CRITICAL boom", "CRITICAL"),
        ("2026-12-04 12:00:00 - app - WARNING - slow", "WARN"),
        ("2026-12-04 12:00:00 - app - INFO - fine", None),
        ("2026-12-04 12:00:00 user said error here", None),
        ("2026-12-04 12:00:00 build finished with 0 Error(s)", None),
        ("1 ERROR found in report", None),
        ("Alert rule loaded", None),
        ("2025-01-01T00:00:00Z INFO retried after ERROR status", None),
        ('  File "app.py", line 3, in main', None),
        ("Traceback (most recent call last):", None),
        ("", None),
    ],
)
def test_classify_line_cases(line: str, severity: str | None) -> None:
    assert classify_line(line) == severity


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def _events(run_dir: Path) -> list[dict[str, object]]:
    path = run_dir / "logs" / "log_events.ndjson"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for_events(run_dir: Path, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(_events(run_dir)) < count:
        time.sleep(POLL_S)


def test_logwatch_follows_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2025-01-01T00:00:00Z ERROR before the run\n")
    run_dir = tmp_path / "run"

    with LogWatcher(patterns=[str(log)], run_dir=run_dir, poll_s=POLL_S):
        _append(log, "2025-01-01T00:00:01Z INFO started\n")
        _append(log, "2025-01-01T00:00:02Z WARN slow response\n")
        _append(log, "Build finished: 0 Error(s)\n")
        _append(log, "2025-01-01T00:00:03Z ERROR request failed\n")
        _append(log, "Traceback (most recent call last):\n")
        _append(log, '  File "app.py", line 3, in main\n')
        _append(log, "ValueError: bad input\n")
        _append(log, "2025-01-01T00:00:04Z INFO recovered\n")
        _wait_for_events(run_dir, 2)

    events = _events(run_dir)
    assert [event["severity"] for event in events] == ["WARN", "ERROR"]
    assert [event["line_no"] for event in events] == [3, 5]
    assert events[0]["message"] == "2025-01-01T00:00:02Z WARN slow response"
    assert str(events[1]["message"]).splitlines() == [
        "2025-01-01T00:00:03Z ERROR request failed",
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in main',
        "ValueError: bad input",
    ]
    assert events[1]["file"] == str(log)


def test_logwatch_from_start_reads_old_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2025-01-01T00:00:00Z ERROR before the run\n")

    with LogWatcher(
        patterns=[str(log)], run_dir=tmp_path, poll_s=POLL_S, from_start=True
    ):
        _wait_for_events(tmp_path, 1)

    assert [event["line_no"] for event in _events(tmp_path)] == [1]


def test_logwatch_flushes_entry_at_stop(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    watcher = LogWatcher(patterns=[str(log)], run_dir=tmp_path, poll_s=10.0)
    watcher.start()
    _append(log, "2025-01-01T00:00:00Z CRITICAL dying\n  at main()\npartial")

    watcher.stop()

    events = _events(tmp_path)
    assert len(events) == 1
    assert events[0]["message"] == "2025-01-01T00:00:00Z CRITICAL dying\n  at main()"


def test_logwatch_reads_unfinished_last_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    watcher = LogWatcher(patterns=[str(log)], run_dir=tmp_path, poll_s=10.0)
    watcher.start()
    _append(
        log, "2025-01-01T00:00:00Z INFO ok\n2025-01-01T00:00:01Z CRITICAL disk full"
    )

    watcher.stop()

    events = _events(tmp_path)
    assert len(events) == 1
    assert events[0]["severity"] == "CRITICAL"
    assert events[0]["line_no"] == 2
    assert events[0]["message"] == "2025-01-01T00:00:01Z CRITICAL disk full"


def test_logwatch_picks_up_new_glob_match(tmp_path: Path) -> None:
    logs = tmp_path / "logs_in"
    logs.mkdir()
    run_dir = tmp_path / "run"

    with LogWatcher(patterns=[str(logs / "*.log")], run_dir=run_dir, poll_s=POLL_S):
        time.sleep(3 * POLL_S)
        _append(logs / "worker-2.log", "2025-01-01T00:00:00Z ERROR late file\n")
        _append(logs / "ignored.txt", "2025-01-01T00:00:00Z ERROR not matched\n")
        _wait_for_events(run_dir, 1)

    events = _events(run_dir)
    assert len(events) == 1
    assert events[0]["file"] == str(logs / "worker-2.log")
    assert events[0]["line_no"] == 1


def test_logwatch_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "2025-01-01T00:00:00Z INFO first file\n")
    run_dir = tmp_path / "run"

    with LogWatcher(patterns=[str(log)], run_dir=run_dir, poll_s=POLL_S):
        _append(log, "2025-01-01T00:00:01Z ERROR in the old file\n")
        _wait_for_events(run_dir, 1)
        os.rename(log, tmp_path / "app.log.1")
        _append(log, "2025-01-01T00:00:02Z ERROR in the new file\n")
        _wait_for_events(run_dir, 2)

    events = _events(run_dir)
    assert [event["line_no"] for event in events] == [2, 1]
    assert "new file" in str(events[1]["message"])


def test_logwatch_follows_truncation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "2025-01-01T00:00:00Z INFO " + "x" * 200 + "\n")
    run_dir = tmp_path / "run"

    with LogWatcher(patterns=[str(log)], run_dir=run_dir, poll_s=POLL_S):
        time.sleep(3 * POLL_S)
        log.write_text("2025-01-01T00:00:01Z ERROR after truncation\n")
        _wait_for_events(run_dir, 1)

    events = _events(run_dir)
    assert len(events) == 1
    assert events[0]["line_no"] == 1


def test_logwatch_redacts_messages(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()

    with LogWatcher(
        patterns=[str(log)], run_dir=tmp_path, poll_s=POLL_S, secrets=["s3cret-1"]
    ):
        _append(
            log,
            "2025-01-01T00:00:00Z ERROR call with Authorization: Bearer abc.def "
            "to /x?token=zzz failed for s3cret-1\n",
        )
        _wait_for_events(tmp_path, 1)

    message = str(_events(tmp_path)[0]["message"])
    for secret in ("abc.def", "zzz", "s3cret-1"):
        assert secret not in message
    assert message.count("[REDACTED]") == 3


def test_logwatch_json_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.ndjson"
    log.touch()

    with LogWatcher(patterns=[str(log)], run_dir=tmp_path, poll_s=POLL_S):
        _append(log, '{"level": 30, "msg": "ok"}\n{"level": 60, "msg": "down"}\n')
        _append(log, '{"levelno": 40, "msg": "py error"}\n')
        _wait_for_events(tmp_path, 2)

    assert [event["severity"] for event in _events(tmp_path)] == ["CRITICAL", "ERROR"]


def test_logwatch_reads_target_log(
    rehearsal_target: StartTarget, tmp_path: Path
) -> None:
    log = tmp_path / "target.log"
    run_dir = tmp_path / "run"
    with LogWatcher(patterns=[str(log)], run_dir=run_dir, poll_s=POLL_S):
        rehearsal_target(log_file=log, critical_after=1)
        _wait_for_events(run_dir, 1, timeout_s=10)

    frame = load_log_events(run_dir)
    assert frame["severity"].tolist() == ["CRITICAL"]
    assert "Traceback (most recent call last):" in frame["message"].iloc[0]
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["line_no"].dtype == "int64"


def test_load_log_events_missing_file(tmp_path: Path) -> None:
    frame = load_log_events(tmp_path)

    assert frame.empty
    assert list(frame.columns) == ["time", "file", "line_no", "severity", "message"]


def _sources(run_dir: Path) -> dict[str, object]:
    return json.loads((run_dir / "logs" / "log_sources.json").read_text())


def _unmatched_warnings(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and repr(pattern) in record.getMessage()
    ]


def test_logwatch_warns_unmatched_pattern(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    missing = str(tmp_path / "nowhere" / "*.log")
    run_dir = tmp_path / "run"
    caplog.set_level(logging.WARNING, logger="canarykit.logwatch")

    watcher = LogWatcher(patterns=[missing, str(log)], run_dir=run_dir, poll_s=POLL_S)
    watcher.start()
    at_start = _unmatched_warnings(caplog, missing)
    sources = _sources(run_dir)
    watcher.stop()

    assert len(at_start) == 1
    assert "matches no file" in at_start[0]
    assert len(_unmatched_warnings(caplog, missing)) == 2
    assert _unmatched_warnings(caplog, str(log)) == []
    assert sources["patterns"] == [missing, str(log)]
    assert sources["unmatched_patterns"] == [missing]
    assert [file["path"] for file in sources["files"]] == [str(log)]


def test_logwatch_sources_record_late_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs_in"
    logs.mkdir()
    (logs / "sub.log").mkdir()
    pattern = str(logs / "*.log")
    run_dir = tmp_path / "run"
    caplog.set_level(logging.WARNING, logger="canarykit.logwatch")

    with LogWatcher(patterns=[pattern], run_dir=run_dir, poll_s=POLL_S):
        before = _sources(run_dir)
        _append(logs / "late.log", "2025-01-01T00:00:00Z INFO started\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _sources(run_dir)["files"]:
            time.sleep(POLL_S)

    after = _sources(run_dir)
    assert before["files"] == []
    assert before["unmatched_patterns"] == [pattern]
    assert after["unmatched_patterns"] == []
    assert [file["path"] for file in after["files"]] == [str(logs / "late.log")]
    first_seen = datetime.fromisoformat(after["files"][0]["first_seen"])
    assert first_seen.utcoffset() is not None
    # Warned at start only; the directory "sub.log" never counts as a match.
    assert len(_unmatched_warnings(caplog, pattern)) == 1
    assert not (run_dir / "logs" / "log_sources.json.tmp").exists()
    assert load_log_sources(run_dir) == after


def test_load_log_sources_missing_file(tmp_path: Path) -> None:
    assert load_log_sources(tmp_path) is None


def test_load_log_sources_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "log_sources.json").write_text("{not json")

    with pytest.raises(InvalidInputError, match="log_sources.json"):
        load_log_sources(tmp_path)
