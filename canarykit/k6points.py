"""Per-line arrays of k6 Points and the encodings shared across blocks.

Every reader turns a block into `Points` (or the scanner's `LinePoints`), and the
`Accumulator` encodes metric names, tag values and tag sets to codes that stay the
same across blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from canarykit.errors import InvalidK6OutputError
from canarykit.k6output import METRIC_TYPES, MetricDefinition

if TYPE_CHECKING:
    from canarykit.k6scan import LinePoints

# k6 metric name -> requests column; http_reqs itself makes the row.
REQUEST_COLUMNS = {
    "http_req_duration": "duration_ms",
    "http_req_blocked": "blocked_ms",
    "http_req_connecting": "connecting_ms",
    "http_req_tls_handshaking": "tls_handshaking_ms",
    "http_req_sending": "sending_ms",
    "http_req_waiting": "waiting_ms",
    "http_req_receiving": "receiving_ms",
    "http_req_failed": "failed",
}
REQUEST_TAGS = (
    "status",
    "expected_response",
    "error_code",
    "method",
    "name",
    "url",
    "group",
    "scenario",
    "proto",
)
EXPECTED_FORMAT = (
    'one JSON object per line with "type" "Metric" or "Point", as '
    "`k6 run --out json=FILE` writes it, or k6's CSV output (`--out csv=FILE`)"
)


@dataclass
class Points:
    """The Point lines of one block, before global encoding."""

    metric: pa.Array
    time_ns: np.ndarray
    value: np.ndarray
    tags: dict[str, pa.Array]


@dataclass
class Accumulator:
    """Global encodings and the per-line arrays of every block read so far."""

    metric_codes: dict[str, int] = field(default_factory=dict)
    tag_values: dict[str, dict[str, int]] = field(default_factory=dict)
    tagset_codes: dict[tuple[tuple[str, int], ...], int] = field(default_factory=dict)
    metric: list[np.ndarray] = field(default_factory=list)
    time_ns: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    tagset: list[np.ndarray] = field(default_factory=list)
    definitions: dict[str, MetricDefinition] = field(default_factory=dict)
    lines: int = 0
    blank_lines: int = 0

    def add(self, points: Points) -> None:
        self.metric.append(encode(points.metric, self.metric_codes).astype(np.int32))
        self.time_ns.append(points.time_ns)
        self.value.append(points.value)
        self.tagset.append(self._encode_tagsets(points))

    def add_lines(self, path: Path, points: LinePoints) -> bool:
        """Add a block read by the scanner.

        Returns False, adding no lines, when a tags text is not a JSON object of
        strings or a Metric line is not JSON; the caller then reads the block with
        the other readers, which name a bad line.
        """
        try:
            records = [json.loads(line) for _, line in points.metric_lines]
        except ValueError:
            return False
        tagsets = np.empty(len(points.tag_texts) + 1, dtype=np.int32)
        for index, text in enumerate(points.tag_texts):
            tagset = self._tagset_from_text(text)
            if tagset is None:
                return False
            tagsets[index] = tagset
        for (line_no, _), record in zip(points.metric_lines, records, strict=True):
            add_definition(path, self, record, self.lines + line_no)
        metric_codes = [
            self.metric_codes.setdefault(n, len(self.metric_codes))
            for n in points.names
        ]
        self.metric.append(np.array(metric_codes, dtype=np.int32)[points.name_index])
        self.time_ns.append(points.time_ns)
        self.value.append(points.value)
        self.tagset.append(tagsets[points.tag_index])
        return True

    def _tagset_from_text(self, text: str) -> int | None:
        if text in ("", "null"):
            tags: dict[str, Any] = {}
        else:
            try:
                tags = json.loads(text)
            except ValueError:
                return None
            if not isinstance(tags, dict):
                return None
        if not all(isinstance(value, str) for value in tags.values()):
            return None
        tagset = tuple(
            (
                key,
                self.tag_values.setdefault(key, {}).setdefault(
                    tags[key], len(self.tag_values[key])
                ),
            )
            for key in sorted(tags)
        )
        return self.tagset_codes.setdefault(tagset, len(self.tagset_codes))

    def _encode_tagsets(self, points: Points) -> np.ndarray:
        keys = sorted(points.tags)
        rows = len(points.value)
        codes = [
            encode(points.tags[k], self.tag_values.setdefault(k, {})) for k in keys
        ]
        combined = np.zeros(rows, dtype=np.int64)
        for key_codes in codes:
            width = int(key_codes.max(initial=-1)) + 2
            if width and combined.max(initial=0) > (1 << 62) // width:
                return self._encode_tagsets_slowly(keys, codes)
            combined = combined * width + (key_codes + 1)
        local, uniques = pd.factorize(combined)
        first_rows = pd.Series(np.arange(rows)).groupby(local).first().to_numpy()
        mapping = np.array(
            [self._tagset_code(keys, codes, int(row)) for row in first_rows],
            dtype=np.int32,
        )
        return mapping[local] if len(mapping) else np.zeros(0, dtype=np.int32)

    def _encode_tagsets_slowly(
        self, keys: list[str], codes: list[np.ndarray]
    ) -> np.ndarray:
        rows = len(codes[0])
        return np.array(
            [self._tagset_code(keys, codes, r) for r in range(rows)], dtype=np.int32
        )

    def _tagset_code(self, keys: list[str], codes: list[np.ndarray], row: int) -> int:
        tagset = tuple(
            (k, int(c[row])) for k, c in zip(keys, codes, strict=True) if c[row] >= 0
        )
        return self.tagset_codes.setdefault(tagset, len(self.tagset_codes))


def invalid_line_error(
    path: Path, line_no: int, found: bytes | str, problem: str
) -> InvalidK6OutputError:
    text = found if isinstance(found, str) else found[:200].decode("utf-8", "replace")
    excerpt = text.splitlines()[0] if text.strip() else text
    if len(excerpt) > 80:
        excerpt = excerpt[:77] + "..."
    reason = f" ({problem})" if problem else ""
    return InvalidK6OutputError(
        f"{path}, line {line_no}: not k6 output{reason}; found {excerpt!r}; "
        f"expected {EXPECTED_FORMAT}"
    )


def add_definition(
    path: Path, acc: Accumulator, record: dict[str, Any], line_no: int
) -> None:
    data = record.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise invalid_line_error(
            path, line_no, json.dumps(record), 'a Metric needs "data.name"'
        )
    if data.get("type") not in METRIC_TYPES:
        raise invalid_line_error(
            path, line_no, json.dumps(record), f"metric type {data.get('type')!r}"
        )
    submetrics = tuple(
        (str(sub["name"]), {str(k): str(v) for k, v in (sub.get("tags") or {}).items()})
        for sub in data.get("submetrics") or ()
    )
    acc.definitions[data["name"]] = MetricDefinition(
        name=data["name"],
        type=data["type"],
        contains=str(data.get("contains") or "default"),
        thresholds=tuple(str(t) for t in data.get("thresholds") or ()),
        submetrics=submetrics,
    )


def empty_points() -> Points:
    return Points(
        metric=pa.array([], pa.string()),
        time_ns=np.zeros(0, dtype=np.int64),
        value=np.zeros(0, dtype=np.float64),
        tags={},
    )


def encode(values: pa.Array, codes: dict[str, int]) -> np.ndarray:
    """Map strings to codes that stay the same across blocks; None becomes -1."""
    encoded = values.dictionary_encode()
    local = [
        codes.setdefault(text, len(codes)) for text in encoded.dictionary.to_pylist()
    ]
    mapping = np.array(local + [-1], dtype=np.int32)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return mapping[indices]
