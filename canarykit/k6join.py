"""The numba kernel that joins each HTTP request's samples to its http_reqs line."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def join_by_position(
    metric: np.ndarray,
    time_ns: np.ndarray,
    tagset: np.ndarray,
    value: np.ndarray,
    request_code: int,
    column_of: np.ndarray,
    columns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Join each request-timing line to the nearest http_reqs line above it.

    `column_of[metric code]` is the request column of a metric, or -1. A line joins
    when its time and tag set equal that request's and the request has no value
    in the column yet. Returns (the http_reqs line numbers, the values with one row
    per column and NaN where nothing joined, a mask of the lines joined, the count
    of unjoined lines per column).
    """
    requests = 0
    for code in metric:
        requests += code == request_code
    request_rows = np.empty(requests, dtype=np.int64)
    values = np.full((columns, requests), np.nan)
    is_filled = np.zeros((requests, columns), dtype=np.bool_)
    joined = np.zeros(len(metric), dtype=np.bool_)
    unjoined = np.zeros(columns, dtype=np.int64)
    current = -1
    line = -1
    for index in range(len(metric)):
        code = metric[index]
        if code == request_code:
            current += 1
            request_rows[current] = index
            line = index
            joined[index] = True
            continue
        column = column_of[code]
        if column < 0:
            continue
        if (
            current >= 0
            and time_ns[index] == time_ns[line]
            and tagset[index] == tagset[line]
            and not is_filled[current, column]
        ):
            is_filled[current, column] = True
            values[column, current] = value[index]
            joined[index] = True
        else:
            unjoined[column] += 1
    return request_rows, values, joined, unjoined
