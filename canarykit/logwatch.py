"""Follow log files like ``tail -f`` and keep WARN, ERROR and CRITICAL entries.

The severity of a line comes from its level field: a JSON ``level``/``levelname``/
``severity`` member, a ``level=`` logfmt field, or a level name among the first
words of the line (after timestamps, bracketed thread names and pids). A level
word later in the text (``0 Error(s)``) does not count. An indented line and the
lines of a Python traceback or Java stack trace belong to the entry before them.

The files that the patterns matched, and the patterns that matched none, are
stored in ``logs/log_sources.json``, so a reader can distinguish "no kept
entries" from "no log file".
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypedDict

import orjson
import pandas as pd

from canarykit.errors import InvalidInputError
from canarykit.prom import read_ndjson
from canarykit.redact import redact

logger = logging.getLogger(__name__)

LOG_EVENTS_PATH = Path("logs") / "log_events.ndjson"
LOG_SOURCES_PATH = Path("logs") / "log_sources.json"
LOG_EVENT_COLUMNS = ("time", "file", "line_no", "severity", "message")
KEPT_SEVERITIES = ("CRITICAL", "ERROR", "WARN")
# Continuation lines beyond this are dropped from an entry, so a runaway
# multi-line entry cannot grow without bound.
MAX_CONTINUATION_LINES = 200
_IDLE_POLLS_BEFORE_FLUSH = 2
_READ_CHUNK_BYTES = 1 << 20

_LEVEL_NAMES = {
    "TRACE": None,
    "DEBUG": None,
    "INFO": None,
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
}
# Short or rare level names that are also ordinary words ("Alert rule loaded"):
# they count only in capitals or in brackets, as syslog and nginx write them.
_STRICT_LEVEL_NAMES = {
    "NOTICE": None,
    "ERR": "ERROR",
    "SEVERE": "ERROR",
    "CRIT": "CRITICAL",
    "ALERT": "CRITICAL",
    "PANIC": "CRITICAL",
    "EMERG": "CRITICAL",
    "EMERGENCY": "CRITICAL",
}
# pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
_PINO_LEVELS = ((60, "CRITICAL"), (50, "ERROR"), (40, "WARN"))
# Python logging levelno: 30 WARNING, 40 ERROR, 50 CRITICAL.
_PYTHON_LEVELS = ((50, "CRITICAL"), (40, "ERROR"), (30, "WARN"))
_GLOG_LEVELS = {"I": None, "W": "WARN", "E": "ERROR", "F": "CRITICAL"}

_LOGFMT_LEVEL = re.compile(r'(?:^|\s)(?:level|lvl|severity)="?([A-Za-z]+)"?(?:\s|$)')
_GLOG_PREFIX = re.compile(r"^([IWEF])\d{4}\s")
# Tokens that may come before the level: dates, times, numbers, pids like 123#0.
# A bare short number ("0 Error(s)") is not one.
_TIMESTAMP_TOKEN = re.compile(
    r"^(?:\d{5,}|(?=.*\d)[\d\-/:.,+TZ#]*[\-/:.#][\d\-/:.,+TZ#]*)$"
)
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun"}
_MONTHS |= {"jul", "aug", "sep", "oct", "nov", "dec"}
# Lines of Python tracebacks and Java stack traces that follow the opening line;
# indented lines are continuations too.
_CONTINUATION = re.compile(
    r"""(?x)
    Traceback\ \(most\ recent\ call\ last\):
    | During\ handling\ of\ the\ above\ exception
    | The\ above\ exception\ was\ the\ direct\ cause
    | Caused\ by:
    | \.\.\.\ \d+\ more
    | [\w$]+(?:\.[\w$]+)*(?:Error|Exception|Exit|Interrupt|Warning)(?::|$)
    """
)
_TOKEN_PUNCTUATION = "[]()<>{}:|,;"
# Host and logger names that may stand between a timestamp and the level.
_LOGGER_NAME = re.compile(r"^[A-Za-z_][\w.\-/@$\[\]]*$")
_NAMES_BEFORE_LEVEL = 2
_SEPARATORS = {"-", "|", "--"}
_PREFIX_TOKENS_SCANNED = 6


@dataclass(frozen=True)
class _LineStart:
    """Whether a line opens a log entry, and the severity of that entry."""

    is_entry_start: bool
    severity: str | None


def classify_line(line: str) -> str | None:
    """Return ``CRITICAL``, ``ERROR`` or ``WARN`` for a line opening such an entry.

    ``None`` for lower levels, for lines without a level field, and for
    continuation lines. FATAL, PANIC, ALERT and EMERG count as CRITICAL.
    """
    return _classify(line).severity


def _classify(line: str) -> _LineStart:
    stripped = line.strip()
    if not stripped:
        return _LineStart(False, None)
    if stripped.startswith("{"):
        record = _json_record(stripped)
        if record is not None:
            return _LineStart(True, _json_severity(record))
    if line[0].isspace():
        return _LineStart(False, None)

    logfmt = _LOGFMT_LEVEL.search(stripped)
    if logfmt:
        return _LineStart(True, _level_of_name(logfmt[1]))
    glog = _GLOG_PREFIX.match(stripped)
    if glog:
        return _LineStart(True, _GLOG_LEVELS[glog[1]])
    return _classify_prefix(stripped)


def _classify_prefix(line: str) -> _LineStart:
    tokens = line.split()
    first = tokens[0]
    # Python's default format: "ERROR:name:message".
    head = first.split(":", 1)[0]
    if ":" in first and head.isupper() and _is_level_name(head, is_bracketed=False):
        return _LineStart(True, _level_of_name(head))

    has_timestamp = False
    after_month = False
    names_skipped = 0
    for token in tokens[:_PREFIX_TOKENS_SCANNED]:
        word = token.strip(_TOKEN_PUNCTUATION)
        # Past a skipped name only an upper-case level counts, so prose such as
        # "user said error" is not an error.
        is_level = _is_level_name(word, is_bracketed=token.startswith("["))
        if is_level and (names_skipped == 0 or word.isupper()):
            return _LineStart(True, _level_of_name(word))

        if has_timestamp and word in _SEPARATORS:
            continue
        if has_timestamp and _is_channel_level(word):
            # Monolog writes "channel.LEVEL:" after the timestamp.
            return _LineStart(True, _level_of_name(word.rsplit(".", 1)[1]))

        is_day = after_month and word.isdigit() and len(word) <= 2
        after_month = word.lower() in _MONTHS
        if _TIMESTAMP_TOKEN.match(word) or after_month or is_day:
            has_timestamp = True
        elif token.startswith("[") or token.endswith("]"):
            continue
        elif (
            has_timestamp
            and names_skipped < _NAMES_BEFORE_LEVEL
            and (not word or _LOGGER_NAME.match(word))
        ):
            # Between the timestamp and an upper-case level, formats put a host
            # or a logger name ("myapp.db", "app[1]").
            names_skipped += 1
        else:
            break

    # A line without a level opens an entry (one that is not kept) unless it
    # continues a traceback or stack trace.
    return _LineStart(has_timestamp or not _CONTINUATION.match(line), None)


def _is_channel_level(word: str) -> bool:
    channel, _, level = word.rpartition(".")
    return bool(channel) and level.isupper() and _level_of_name(level) is not None


def _is_level_name(word: str, *, is_bracketed: bool) -> bool:
    upper = word.upper()
    if upper in _LEVEL_NAMES:
        return True
    return upper in _STRICT_LEVEL_NAMES and (is_bracketed or word.isupper())


def _level_of_name(name: str) -> str | None:
    upper = name.strip().upper()
    return _LEVEL_NAMES.get(upper, _STRICT_LEVEL_NAMES.get(upper))


def _json_record(line: str) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _json_severity(record: dict[str, Any]) -> str | None:
    # "levelno" is Python logging's number; a numeric "level" is pino's or bunyan's.
    if isinstance(record.get("levelno"), int | float):
        return _severity_from_number(record["levelno"], _PYTHON_LEVELS)
    for key in ("level", "levelname", "severity", "log.level", "lvl"):
        value = record.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return _severity_from_number(value, _PINO_LEVELS)
        if isinstance(value, str):
            return _level_of_name(value)
    log_field = record.get("log")
    if isinstance(log_field, dict) and isinstance(log_field.get("level"), str):
        return _level_of_name(log_field["level"])
    return None


def _severity_from_number(
    number: float, scale: tuple[tuple[int, str], ...]
) -> str | None:
    for threshold, severity in scale:
        if number >= threshold:
            return severity
    return None


class LogSource(TypedDict):
    """A followed log file: its path as matched and when it was first opened."""

    path: str
    first_seen: str


class LogSources(TypedDict):
    """Content of ``logs/log_sources.json``.

    ``files`` lists every file that was opened, in the order first seen
    (``first_seen`` is ISO 8601 UTC). ``unmatched_patterns`` lists the patterns
    that have not matched a readable file so far.
    """

    patterns: list[str]
    files: list[LogSource]
    unmatched_patterns: list[str]


@dataclass
class _Entry:
    line_no: int
    severity: str
    lines: list[str]


@dataclass
class _FollowedFile:
    """Read position and the open entry of one followed file."""

    path: str
    handle: IO[bytes]
    inode: int
    offset: int = 0
    line_no: int = 0
    partial: bytes = b""
    entry: _Entry | None = None
    idle_polls: int = 0


class LogWatcher:
    """Follow files matching ``patterns`` and write kept entries to the run folder.

    Files present at ``start()`` are read from their end, as ``tail -f`` does,
    unless ``from_start`` is true; files that appear later are read from their
    beginning. A file replaced under the same name (rotation) is followed anew,
    and a file that shrinks (truncation) is read again from its start. Entries are
    passed through ``redact`` with ``secrets`` before they are written.

    ``logs/log_sources.json`` is written at ``start()`` and replaced atomically
    each time a new file matches. A pattern that matches no file is logged as a
    warning at ``start()`` and again at ``stop()`` if it never matched.
    """

    def __init__(
        self,
        *,
        patterns: list[str],
        run_dir: Path,
        poll_s: float = 0.5,
        secrets: Iterable[str] = (),
        from_start: bool = False,
    ) -> None:
        if not patterns or poll_s <= 0:
            raise InvalidInputError(
                "LogWatcher needs at least one file pattern and a positive poll_s, "
                f"got patterns={patterns!r}, poll_s={poll_s!r}"
            )
        self.patterns = list(patterns)
        self.run_dir = run_dir
        self.poll_s = poll_s
        self.entry_count = 0
        self._secrets = [secret for secret in secrets if secret]
        self._from_start = from_start
        self._files: dict[str, _FollowedFile] = {}
        self._first_seen: dict[str, str] = {}
        self._matched_patterns: set[str] = set()
        self._unreadable_paths: set[str] = set()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._output: IO[bytes] | None = None

    def start(self) -> None:
        """Open the output file and start following on a background thread."""
        if self._thread is not None:
            raise InvalidInputError(f"LogWatcher for {self.patterns} already started")
        output_path = self.run_dir / LOG_EVENTS_PATH
        output_path.parent.mkdir(parents=True, exist_ok=True)
        self._output = output_path.open("ab")
        self._open_new_files(at_end=not self._from_start)
        self._write_sources()
        for pattern in self._unmatched_patterns():
            logger.warning(
                "log pattern %r matches no file yet; no log entries are read from it "
                "until a file matches",
                pattern,
            )
        self._thread = threading.Thread(
            target=self._run, name="canarykit-logwatch", daemon=True
        )
        self._thread.start()
        logger.info("following logs %s into %s", self.patterns, output_path)

    def stop(self) -> None:
        """Read what is left, write open entries, and close every file."""
        if self._thread is None or self._stop_event.is_set():
            return
        self._stop_event.set()
        self._thread.join()
        for pattern in self._unmatched_patterns():
            logger.warning(
                "log pattern %r matched no file during the run; no log entries were "
                "read from it",
                pattern,
            )
        logger.info("log watcher stopped after %d kept entries", self.entry_count)

    def __enter__(self) -> LogWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stop_event.wait(self.poll_s):
                self._poll()
            self._poll()
            for followed in self._files.values():
                self._read_unfinished_line(followed)
                self._flush_entry(followed)
                followed.handle.close()
        except Exception:
            # Nothing can catch an error raised on this thread, so it is logged.
            logger.exception("log watcher for %s stopped by an error", self.patterns)
        finally:
            if self._output is not None:
                self._output.close()

    def _open_new_files(self, *, at_end: bool) -> None:
        is_changed = False
        for pattern in self.patterns:
            for path in _matching_paths(pattern):
                if path not in self._files:
                    self._open(path, at_end=at_end)
                if path in self._files:
                    is_changed |= self._record_source(pattern, path)
        if is_changed and self._thread is not None:
            self._write_sources()

    def _record_source(self, pattern: str, path: str) -> bool:
        is_new = path not in self._first_seen or pattern not in self._matched_patterns
        if path not in self._first_seen:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            self._first_seen[path] = now
        self._matched_patterns.add(pattern)
        return is_new

    def _unmatched_patterns(self) -> list[str]:
        return [p for p in self.patterns if p not in self._matched_patterns]

    def _write_sources(self) -> None:
        sources: LogSources = {
            "patterns": self.patterns,
            "files": [
                {"path": path, "first_seen": first_seen}
                for path, first_seen in self._first_seen.items()
            ],
            "unmatched_patterns": self._unmatched_patterns(),
        }
        path = self.run_dir / LOG_SOURCES_PATH
        # A reader never sees a half-written file: os.replace is atomic on POSIX.
        temporary = path.with_name(f"{path.name}.tmp")
        temporary.write_bytes(orjson.dumps(sources, option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)

    def _open(self, path: str, *, at_end: bool) -> None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open while following
        except OSError as error:
            # Opening is tried again at every poll, but warned about once.
            if path not in self._unreadable_paths:
                self._unreadable_paths.add(path)
                logger.warning("cannot open log file %s: %s", path, error)
            return
        self._unreadable_paths.discard(path)
        stat = os.fstat(handle.fileno())
        followed = _FollowedFile(path=path, handle=handle, inode=stat.st_ino)
        if at_end:
            # Count the skipped lines so line numbers match the file's own.
            while chunk := handle.read(_READ_CHUNK_BYTES):
                followed.offset += len(chunk)
                followed.line_no += chunk.count(b"\n")
        self._files[path] = followed

    def _poll(self) -> None:
        self._open_new_files(at_end=False)
        for followed in list(self._files.values()):
            self._read_new_lines(followed)
            self._follow_rotation(followed)

    def _follow_rotation(self, followed: _FollowedFile) -> None:
        try:
            stat = os.stat(followed.path)
        except FileNotFoundError:
            return
        if stat.st_ino != followed.inode:
            logger.info(
                "log file %s was replaced; following the new file", followed.path
            )
            self._flush_entry(followed)
            followed.handle.close()
            del self._files[followed.path]
            self._open(followed.path, at_end=False)
            self._read_new_lines(self._files.get(followed.path))
        elif stat.st_size < followed.offset:
            logger.info(
                "log file %s was truncated; reading from its start", followed.path
            )
            self._flush_entry(followed)
            followed.offset = followed.line_no = 0
            followed.partial = b""
            self._read_new_lines(followed)

    def _read_new_lines(self, followed: _FollowedFile | None) -> None:
        if followed is None:
            return
        followed.handle.seek(followed.offset)
        data = followed.handle.read(_READ_CHUNK_BYTES)
        if not data:
            followed.idle_polls += 1
            if followed.idle_polls >= _IDLE_POLLS_BEFORE_FLUSH:
                self._flush_entry(followed)
            return
        followed.idle_polls = 0
        followed.offset += len(data)
        *lines, followed.partial = (followed.partial + data).split(b"\n")
        for raw in lines:
            followed.line_no += 1
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            self._add_line(followed, line)

    def _read_unfinished_line(self, followed: _FollowedFile) -> None:
        # A service that crashes often leaves its last line without a newline;
        # at stop that line is read as it is.
        if not followed.partial:
            return
        followed.line_no += 1
        line = followed.partial.decode("utf-8", errors="replace").rstrip("\r")
        followed.partial = b""
        self._add_line(followed, line)

    def _add_line(self, followed: _FollowedFile, line: str) -> None:
        start = _classify(line)
        if not start.is_entry_start:
            entry = followed.entry
            if entry is not None and len(entry.lines) <= MAX_CONTINUATION_LINES:
                entry.lines.append(line)
            return
        self._flush_entry(followed)
        if start.severity is not None:
            followed.entry = _Entry(followed.line_no, start.severity, [line])

    def _flush_entry(self, followed: _FollowedFile) -> None:
        entry, followed.entry = followed.entry, None
        if entry is None or self._output is None:
            return
        while entry.lines and not entry.lines[-1].strip():
            entry.lines.pop()
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "file": followed.path,
            "line_no": entry.line_no,
            "severity": entry.severity,
            "message": redact("\n".join(entry.lines), self._secrets),
        }
        self._output.write(orjson.dumps(record) + b"\n")
        self._output.flush()
        self.entry_count += 1


def _matching_paths(pattern: str) -> list[str]:
    # Directories that a pattern such as "logs/*" matches are skipped.
    paths = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
    return sorted(path for path in paths if os.path.isfile(path))


def load_log_sources(run_dir: Path) -> LogSources | None:
    """Read ``logs/log_sources.json`` of a run; ``None`` when no log was followed."""
    path = run_dir / LOG_SOURCES_PATH
    if not path.exists():
        return None
    try:
        sources: LogSources = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(
            f"expected JSON in {path}, found invalid content ({error}); the log "
            "watcher writes it: run the canary again or delete the file"
        ) from error
    return sources


def load_log_events(run_dir: Path) -> pd.DataFrame:
    """Read ``logs/log_events.ndjson`` of a run, one row per kept entry.

    Columns: ``time`` (UTC, when the line was read), ``file`` and ``severity``
    (categories), ``line_no`` (int64, the entry's first line, from 1) and
    ``message`` (str). A missing file gives an empty frame with these columns.
    """
    path = run_dir / LOG_EVENTS_PATH
    if path.exists():
        records = list(read_ndjson(path))
    else:
        logger.warning("no log events: %s does not exist", path)
        records = []
    frame = pd.DataFrame(
        [[record.get(column) for column in LOG_EVENT_COLUMNS] for record in records],
        columns=list(LOG_EVENT_COLUMNS),
    )
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    frame["file"] = frame["file"].astype("category")
    frame["line_no"] = frame["line_no"].astype("int64")
    frame["severity"] = pd.Categorical(frame["severity"], categories=KEPT_SEVERITIES)
    frame["message"] = frame["message"].astype("str")
    return frame
