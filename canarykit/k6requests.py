"""Join the per-line arrays into one row per HTTP request and a samples frame.

The samples of one HTTP request share time and tags, and k6 writes them one after
another. So they are joined by position and checked, and joined by (time, tags)
where that check fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canarykit.k6csv import add_builtin_definitions
from canarykit.k6join import join_by_position
from canarykit.k6output import K6Output
from canarykit.k6points import REQUEST_COLUMNS, REQUEST_TAGS, Accumulator

logger = logging.getLogger(__name__)

_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def assemble(
    path: Path, acc: Accumulator, file_format: str, dropped: int, gzip_truncated: bool
) -> K6Output:
    metric = _concat(acc.metric, np.int32)
    time_ns = _concat(acc.time_ns, np.int64)
    value = _concat(acc.value, np.float64)
    tagset = _concat(acc.tagset, np.int32)
    non_finite = ~np.isfinite(value)
    value[non_finite] = np.nan

    tag_table = _TagTable.build(acc)
    names = np.array(list(acc.metric_codes), dtype=object)
    requests, joined = _join_requests(metric, time_ns, value, tagset, names, tag_table)
    samples = _samples_frame(metric, time_ns, value, tagset, names, tag_table, ~joined)

    definitions = dict(acc.definitions)
    if file_format == "csv":
        add_builtin_definitions(definitions, names)
    if non_finite.any():
        logger.warning(
            "%s: %d NaN or infinite values left out", path, int(non_finite.sum())
        )
    return K6Output(
        path=str(path),
        format=file_format,
        requests=requests,
        samples=samples,
        metrics=definitions,
        lines_read=acc.lines + (1 if file_format == "csv" else 0),
        blank_lines=acc.blank_lines,
        dropped_lines=dropped,
        is_truncated=bool(dropped) or gzip_truncated,
        non_finite_values=int(non_finite.sum()),
        has_expected_response=bool(requests["expected_response"].notna().any()),
        time_resolution_ns=1_000_000_000 if file_format == "csv" else 1,
        tag_keys=tuple(tag_table.keys),
    )


def _utc_times(time_ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(time_ns.view("datetime64[ns]"), dtype=_UTC_NS)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return (
        np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    )


@dataclass
class _TagTable:
    """Tag-set id -> code of each tag key, and the categories of each key."""

    keys: list[str]
    codes: dict[str, np.ndarray]
    dtypes: dict[str, pd.CategoricalDtype]
    tagsets: int

    @classmethod
    def build(cls, acc: Accumulator) -> _TagTable:
        keys = sorted(acc.tag_values)
        tagsets = len(acc.tagset_codes)
        codes = {key: np.full(tagsets, -1, dtype=np.int32) for key in keys}
        for tagset, tagset_id in acc.tagset_codes.items():
            for key, code in tagset:
                codes[key][tagset_id] = code
        dtypes = {key: pd.CategoricalDtype(list(acc.tag_values[key])) for key in keys}
        return cls(keys, codes, dtypes, tagsets)

    def keys_used(self, tagset: np.ndarray) -> list[str]:
        """Return the tag keys that at least one of the given tag sets contains."""
        used = np.zeros(self.tagsets, dtype=bool)
        used[tagset] = True
        return [key for key in self.keys if (self.codes[key][used] >= 0).any()]

    def column(self, key: str, tagset: np.ndarray) -> pd.Categorical:
        """Return the categorical column of one tag key; codes are never checked
        again because they come from this table."""
        dtype = self.dtypes.get(key, pd.CategoricalDtype([]))
        if key not in self.codes or not len(self.codes[key]):
            codes = np.full(len(tagset), -1, dtype=np.int32)
        else:
            codes = self.codes[key][tagset]
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _join_requests(
    metric: np.ndarray,
    time_ns: np.ndarray,
    value: np.ndarray,
    tagset: np.ndarray,
    names: np.ndarray,
    tags: _TagTable,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Build one row per http_reqs sample; return it and a mask of the lines used."""
    code = {name: index for index, name in enumerate(names)}
    column_of = np.full(len(names), -1, dtype=np.int64)
    for index, metric_name in enumerate(REQUEST_COLUMNS):
        if metric_name in code:
            column_of[code[metric_name]] = index
    request_rows, values, joined, unjoined = join_by_position(
        metric,
        time_ns,
        tagset,
        value,
        code.get("http_reqs", -1),
        column_of,
        len(REQUEST_COLUMNS),
    )
    frame: dict[str, Any] = {
        "time": _utc_times(time_ns[request_rows]),
    }
    for index, (metric_name, column) in enumerate(REQUEST_COLUMNS.items()):
        filled = values[index]
        if unjoined[index]:
            # Lines out of k6's order: join them on (time, tags) as well.
            rows = np.flatnonzero(metric == code.get(metric_name, -1))
            target = _match_rows(rows, request_rows, time_ns, tagset)
            filled = np.full(len(request_rows), np.nan)
            hit = target >= 0
            filled[target[hit]] = value[rows[hit]]
            joined[rows[hit]] = True
        frame[column] = filled
    failed = frame["failed"]
    frame["failed"] = pd.arrays.BooleanArray(failed != 0, np.isnan(failed))
    request_tagsets = tagset[request_rows]
    for key in dict.fromkeys([*REQUEST_TAGS, *tags.keys_used(request_tagsets)]):
        frame[key] = tags.column(key, request_tagsets)
    return pd.DataFrame(frame, copy=False), joined


def _match_rows(
    rows: np.ndarray, request_rows: np.ndarray, time_ns: np.ndarray, tagset: np.ndarray
) -> np.ndarray:
    """Return for each line the index of its request, or -1.

    k6 writes a request's samples right after its http_reqs line, so the nearest
    http_reqs line above is tried first. A line whose time or tags differ from that
    request's is then matched on (time, tags) to a request without such a sample.
    """
    if not len(rows) or not len(request_rows):
        return np.full(len(rows), -1, dtype=np.int64)
    target = np.searchsorted(request_rows, rows, side="right") - 1
    candidate = request_rows[np.clip(target, 0, None)]
    ok = (
        (target >= 0)
        & (time_ns[candidate] == time_ns[rows])
        & (tagset[candidate] == tagset[rows])
    )
    first_use = np.zeros(len(rows), dtype=bool)
    _, first_index = np.unique(np.where(ok, target, -1), return_index=True)
    first_use[first_index] = True
    ok &= first_use
    target[~ok] = -1
    if ok.all():
        return target
    return _match_by_key(rows, request_rows, time_ns, tagset, target)


def _match_by_key(
    rows: np.ndarray,
    request_rows: np.ndarray,
    time_ns: np.ndarray,
    tagset: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    taken = np.zeros(len(request_rows), dtype=bool)
    taken[target[target >= 0]] = True
    free: dict[tuple[int, int], list[int]] = {}
    for index in np.flatnonzero(~taken):
        row = request_rows[index]
        free.setdefault((int(time_ns[row]), int(tagset[row])), []).append(int(index))
    for position in np.flatnonzero(target < 0):
        row = rows[position]
        waiting = free.get((int(time_ns[row]), int(tagset[row])))
        if waiting:
            target[position] = waiting.pop(0)
    return target


def _samples_frame(
    metric: np.ndarray,
    time_ns: np.ndarray,
    value: np.ndarray,
    tagset: np.ndarray,
    names: np.ndarray,
    tags: _TagTable,
    keep: np.ndarray,
) -> pd.DataFrame:
    rows = np.flatnonzero(keep)
    frame: dict[str, Any] = {
        "time": _utc_times(time_ns[rows]),
        "metric": pd.Categorical.from_codes(
            metric[rows], dtype=pd.CategoricalDtype(list(names)), validate=False
        ),
        "value": value[rows],
    }
    sample_tagsets = tagset[rows]
    for key in tags.keys_used(sample_tagsets):
        frame[key] = tags.column(key, sample_tagsets)
    return pd.DataFrame(frame, copy=False)
