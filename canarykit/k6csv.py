"""Read blocks of k6's CSV output (`k6 run --out csv=FILE`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from canarykit.errors import InvalidK6OutputError
from canarykit.k6json_fallback import FallbackNeededError, first_bad_time, parse_times
from canarykit.k6output import MetricDefinition
from canarykit.k6points import (
    REQUEST_COLUMNS,
    Points,
    empty_points,
    invalid_line_error,
)

logger = logging.getLogger(__name__)

CSV_HEADER_START = b"metric_name,timestamp,metric_value"
# Columns of k6's CSV output that are not tags.
CSV_NON_TAG_COLUMNS = (
    "metric_name",
    "timestamp",
    "metric_value",
    "extra_tags",
    "metadata",
)
# Types of k6's built-in metrics, for CSV output, which carries no Metric lines.
BUILTIN_METRIC_TYPES = {
    "http_reqs": ("counter", "default"),
    "http_req_failed": ("rate", "default"),
    "iterations": ("counter", "default"),
    "iteration_duration": ("trend", "time"),
    "group_duration": ("trend", "time"),
    "data_sent": ("counter", "data"),
    "data_received": ("counter", "data"),
    "checks": ("rate", "default"),
    "vus": ("gauge", "default"),
    "vus_max": ("gauge", "default"),
    "dropped_iterations": ("counter", "default"),
    **{
        name: ("trend", "time") for name in REQUEST_COLUMNS if name != "http_req_failed"
    },
}
# k6 adds this sub-metric to every run for its end-of-test summary.
BUILTIN_SUBMETRICS = {
    "http_req_duration": (
        ("http_req_duration{expected_response:true}", {"expected_response": "true"}),
    )
}


def parse_csv_block(
    path: Path, block: bytes, header: list[str], first_line: int
) -> tuple[Points, int]:
    types = {name: pa.string() for name in header}
    types["metric_value"] = pa.float64()
    try:
        table = pacsv.read_csv(
            pa.BufferReader(block),
            read_options=pacsv.ReadOptions(column_names=header),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, block, header, first_line, str(exc)) from exc
    if table.num_rows == 0:
        return empty_points(), 0
    metric = table.column("metric_name").combine_chunks()
    if metric.null_count or table.column("metric_value").null_count:
        raise _csv_error(
            path, block, header, first_line, "empty metric_name or metric_value"
        )
    tags = {
        name: table.column(name).combine_chunks()
        for name in header
        if name not in CSV_NON_TAG_COLUMNS
    }
    if "extra_tags" in header:
        tags.update(_extra_tags(table.column("extra_tags").combine_chunks()))
    points = Points(
        metric=metric,
        time_ns=_csv_times(
            path, table.column("timestamp").combine_chunks(), first_line
        ),
        value=table.column("metric_value").to_numpy(),
        tags={k: v for k, v in tags.items() if v.null_count < len(v)},
    )
    return points, table.num_rows


def _csv_times(path: Path, stamps: pa.Array, first_line: int) -> np.ndarray:
    """Parse k6 CSV timestamps: Unix seconds by default, or RFC 3339 text."""
    try:
        seconds = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        try:
            return parse_times(stamps)
        except FallbackNeededError:
            index = first_bad_time(stamps)
            raise invalid_line_error(
                path, first_line + index, str(stamps[index]), "bad timestamp"
            ) from None
    return seconds * 1_000_000_000


def _extra_tags(extra: pa.Array) -> dict[str, pa.Array]:
    """Split k6's CSV `extra_tags` column (`key=value&key=value`) into tag columns."""
    from urllib.parse import parse_qsl

    codes, uniques = pd.factorize(extra.to_pandas(), use_na_sentinel=True)
    parsed = [dict(parse_qsl(text, keep_blank_values=True)) for text in uniques]
    keys = sorted({key for row in parsed for key in row})
    columns = {}
    for key in keys:
        per_unique = np.array([row.get(key) for row in parsed] + [None], dtype=object)
        columns[key] = pa.array(per_unique[codes], pa.string())
    return columns


def _csv_error(
    path: Path, block: bytes, header: list[str], first_line: int, problem: str
) -> InvalidK6OutputError:
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        fields = raw.decode("utf-8", "replace").split(",")
        if raw.strip() and (len(fields) < len(header) or not _is_number(fields[2])):
            return invalid_line_error(
                path, first_line + offset, raw, f"expected {len(header)} CSV fields"
            )
    return invalid_line_error(path, first_line, block, problem)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def add_builtin_definitions(
    definitions: dict[str, MetricDefinition], names: np.ndarray
) -> None:
    unknown = []
    for name in names:
        if name in BUILTIN_METRIC_TYPES:
            kind, contains = BUILTIN_METRIC_TYPES[name]
            submetrics = BUILTIN_SUBMETRICS.get(name, ())
            definitions[name] = MetricDefinition(
                name=name, type=kind, contains=contains, submetrics=submetrics
            )
        else:
            unknown.append(name)
    if unknown:
        # NOTE: k6's CSV output has no Metric lines, so custom metrics have no known
        # type and summarize() leaves them out.
        logger.warning(
            "CSV output: custom metrics of unknown type left out: %s", unknown
        )
