"""The numba kernel that scans one block of k6 JSON lines in a single pass.

`scan_block` walks the bytes of a block once. For each Point line in k6's exact
shape it records a local metric-name id, the time in int64 nanoseconds since the
Unix epoch (UTC), the value as float64 and a local tags-text id. It returns
`SHAPE_MISMATCH` as soon as a line differs from that shape or contains a time or
number outside the subset parsed here. The caller then reads the block with
pyarrow's reader. The kernel releases the GIL, so blocks are scanned in threads.

Compiled code is cached on disk (`cache=True`), next to this file or, where that
is not writable, in numba's user cache folder. numba checks only the timestamp of
the file that defines a cached function, so every function the kernel compiles
lives in this one file: a cached kernel then never runs a helper's old code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from canarykit.k6blocks import BLOCK_PADDING

OK = 0
SHAPE_MISMATCH = 1
CAPACITY_EXCEEDED = 2
# The kernel reads at most 34 bytes past a line's newline (a key compared after a
# quote); a block is followed by BLOCK_PADDING readable bytes.
assert BLOCK_PADDING >= 40
# A block with more distinct metric names goes to pyarrow's reader.
MAX_NAMES = 4096
# Number of recently used tags texts compared with a line's tags before the
# tags text is hashed.
RECENT_TAGS = 4

# status, points, lines, non-blank lines, then the arrays scan_block documents.
ScanResult = tuple[
    int,
    int,
    int,
    int,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]

_PREFIX = np.frombuffer(b'{"metric":"', np.uint8)
_POINT_KEYS = np.frombuffer(b'","type":"Point","data":{"time":"', np.uint8)
_VALUE_KEY = np.frombuffer(b'","value":', np.uint8)
_TAGS_KEY = np.frombuffer(b',"tags":', np.uint8)
_METRIC_TYPE = np.frombuffer(b'"type":"Metric"', np.uint8)
# 10**0 to 10**22 are exact in float64, so m * 10**e and m / 10**e round once.
_EXACT_POWERS = np.array([10.0**e for e in range(23)])
_MAX_EXACT_MANTISSA = 1 << 53
# int64 nanoseconds since 1970 cover 1677-09-21 to 2262-04-11; pyarrow rejects
# times outside that range, so only whole years inside it are parsed here.
_MIN_YEAR = 1678
_MAX_YEAR = 2261
_QUOTE = 34
_NEWLINE = 10
_BACKSLASH = 92
_CLOSE_BRACE = 125
_COMMA = 44


@intrinsic
def _load_word_intrinsic(
    typingctx: Any, array: types.Type, index: types.Type
) -> tuple[Any, Callable[..., Any]] | None:
    """Load 8 bytes at array[index:] as a little-endian uint64, at any alignment.

    No bounds check: the caller keeps index + 8 within the array.
    """
    if not isinstance(array, types.Array) or array.dtype != types.uint8:
        return None
    signature = types.uint64(array, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_struct = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = builder.gep(array_struct.data, [args[1]])
        word_pointer = builder.bitcast(pointer, ir.IntType(64).as_pointer())
        return builder.load(word_pointer, align=1)

    return signature, codegen


# Called from compiled code as _load_word(array, index).
_load_word = cast(Callable[[np.ndarray, int], np.uint64], _load_word_intrinsic)


@numba.njit(cache=True, nogil=True, inline="always")
def same_bytes(
    a: np.ndarray, a_start: int, b: np.ndarray, b_start: int, length: int
) -> bool:
    """Compare a[a_start:][:length] with b[b_start:][:length], a word at a time.

    Reads whole words only below the given length, so it reads no byte past
    either text when a word differs or the text ends.
    """
    if length < 8:
        # A plain loop: numba compiles no generator passed to all().
        for index in range(length):  # noqa: SIM110
            if a[a_start + index] != b[b_start + index]:
                return False
        return True
    for index in range(0, length - 8, 8):
        if _load_word(a, a_start + index) != _load_word(b, b_start + index):
            return False
    last = length - 8
    return _load_word(a, a_start + last) == _load_word(b, b_start + last)


@numba.njit(cache=True, nogil=True, inline="always")
def _has_key(data: np.ndarray, position: int, key: np.ndarray) -> bool:
    return same_bytes(data, position, key, 0, len(key))


@numba.njit(cache=True, nogil=True, inline="always")
def _is_digit(byte: int) -> bool:
    return 48 <= byte <= 57


@numba.njit(cache=True, nogil=True, inline="always")
def _digits(data: np.ndarray, position: int, count: int) -> int:
    """Return the decimal number of `count` digits at `position`, or -1."""
    number = 0
    for index in range(count):
        byte = data[position + index]
        if not _is_digit(byte):
            return -1
        number = number * 10 + (byte - 48)
    return number


@numba.njit(cache=True, nogil=True)
def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100
    return era * 146097 + day_of_era + day_of_year - 719468


@numba.njit(cache=True, nogil=True)
def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        is_leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if is_leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


@numba.njit(cache=True, nogil=True)
def parse_time(data: np.ndarray, p: int) -> tuple[int, int]:
    """Parse `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` at p.

    Returns (nanoseconds since the epoch in UTC, position after the text), or
    (0, -1) for any other text. The fraction has 1 to 9 digits.
    """
    year = _digits(data, p, 4)
    month = _digits(data, p + 5, 2)
    day = _digits(data, p + 8, 2)
    hour = _digits(data, p + 11, 2)
    minute = _digits(data, p + 14, 2)
    second = _digits(data, p + 17, 2)
    separators_ok = (
        data[p + 4] == 45
        and data[p + 7] == 45
        and data[p + 10] == 84
        and data[p + 13] == 58
        and data[p + 16] == 58
    )
    if not separators_ok or min(year, month, day, hour, minute, second) < 0:
        return 0, -1
    if year < _MIN_YEAR or year > _MAX_YEAR or month < 1 or month > 12:
        return 0, -1
    if day < 1 or day > _days_in_month(year, month):
        return 0, -1
    if hour > 23 or minute > 59 or second > 59:
        return 0, -1
    p += 19
    fraction = 0
    if data[p] == 46:  # '.'
        p += 1
        digits = 0
        while digits < 10 and _is_digit(data[p]):
            fraction = fraction * 10 + (data[p] - 48)
            digits += 1
            p += 1
        if digits == 0 or digits > 9:
            return 0, -1
        for _ in range(9 - digits):
            fraction *= 10
    offset_s = 0
    if data[p] == 90:  # 'Z'
        p += 1
    elif data[p] == 43 or data[p] == 45:  # '+' or '-'
        offset_hour = _digits(data, p + 1, 2)
        offset_minute = _digits(data, p + 4, 2)
        if data[p + 3] != 58 or offset_hour < 0 or offset_hour > 23:
            return 0, -1
        if offset_minute < 0 or offset_minute > 59:
            return 0, -1
        offset_s = offset_hour * 3600 + offset_minute * 60
        if data[p] == 45:
            offset_s = -offset_s
        p += 6
    else:
        return 0, -1
    days = _days_from_civil(year, month, day)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s
    return seconds * 1_000_000_000 + fraction, p


@numba.njit(cache=True, nogil=True)
def parse_number(data: np.ndarray, p: int) -> tuple[float, int, bool]:
    """Parse a JSON number at p.

    Returns (value, position after the text, exact). `exact` is False when the
    caller must parse the text with correct rounding. The position is -1 when the
    text is not a JSON number.
    """
    negative = data[p] == 45
    if negative:
        p += 1
    if not _is_digit(data[p]):
        return 0.0, -1, False
    if data[p] == 48 and _is_digit(data[p + 1]):
        return 0.0, -1, False  # a leading zero is not JSON
    # Up to 18 significant digits fit in the int64 mantissa without overflow; more
    # take the slow way, as does any mantissa above 2**53.
    mantissa = 0
    significant = 0
    exponent = 0
    while _is_digit(data[p]):
        if mantissa or data[p] != 48:
            significant += 1
        if significant <= 18:
            mantissa = mantissa * 10 + (data[p] - 48)
        p += 1
    if data[p] == 46:  # '.'
        p += 1
        if not _is_digit(data[p]):
            return 0.0, -1, False
        while _is_digit(data[p]):
            if mantissa or data[p] != 48:
                significant += 1
            if significant <= 18:
                mantissa = mantissa * 10 + (data[p] - 48)
                exponent -= 1
            p += 1
    if data[p] == 101 or data[p] == 69:  # 'e' or 'E'
        p += 1
        exponent_negative = data[p] == 45
        if data[p] == 43 or data[p] == 45:
            p += 1
        if not _is_digit(data[p]):
            return 0.0, -1, False
        written = 0
        while _is_digit(data[p]):
            written = min(written * 10 + (data[p] - 48), 100_000)
            p += 1
        exponent += -written if exponent_negative else written
    if significant > 18 or mantissa > _MAX_EXACT_MANTISSA:
        return np.nan, p, False
    if exponent < -22 or exponent > 22:
        return np.nan, p, False
    value = float(mantissa)
    if exponent >= 0:
        value *= _EXACT_POWERS[exponent]
    else:
        value /= _EXACT_POWERS[-exponent]
    return -value if negative else value, p, True


@numba.njit(cache=True, nogil=True)
def _hash(data: np.ndarray, start: int, end: int) -> np.uint64:
    """Hash data[start:end] a word at a time; equal texts get equal hashes."""
    value = np.uint64(end - start) * np.uint64(0x9E3779B97F4A7C15)
    if end - start < 8:
        for index in range(start, end):
            value = (value ^ np.uint64(data[index])) * np.uint64(0x100000001B3)
        return value
    for index in range(start, end - 8, 8):
        value = (value ^ _load_word(data, index)) * np.uint64(0xC2B2AE3D27D4EB4F)
        value ^= value >> np.uint64(29)
    value = (value ^ _load_word(data, end - 8)) * np.uint64(0xC2B2AE3D27D4EB4F)
    return value ^ (value >> np.uint64(32))


@numba.njit(cache=True, nogil=True, inline="always")
def _same_text(data: np.ndarray, a: int, b: int, length: int) -> bool:
    return same_bytes(data, a, data, b, length)


@numba.njit(cache=True, nogil=True)
def _intern(
    data: np.ndarray,
    start: int,
    end: int,
    slots: np.ndarray,
    spans: np.ndarray,
    count: int,
) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Return the id of the text data[start:end], adding it when new.

    `slots` is an open-addressing table of ids (-1 is free) sized a power of two,
    `spans` contains the (start, end) of each id's first occurrence. Both grow when
    half full, so the new arrays are returned with the id and the new count.
    """
    if 2 * (count + 1) > len(slots):
        slots = np.full(2 * len(slots), -1, dtype=np.int64)
        grown = np.empty((2 * len(spans), 2), dtype=np.int64)
        grown[:count] = spans[:count]
        spans = grown
        for text_id in range(count):
            slot = _hash(data, spans[text_id, 0], spans[text_id, 1])
            slot &= np.uint64(len(slots) - 1)
            while slots[slot] >= 0:
                slot = (slot + np.uint64(1)) & np.uint64(len(slots) - 1)
            slots[slot] = text_id
    length = end - start
    slot = _hash(data, start, end) & np.uint64(len(slots) - 1)
    while slots[slot] >= 0:
        text_id = slots[slot]
        first = spans[text_id, 0]
        if spans[text_id, 1] - first == length and _same_text(
            data, first, start, length
        ):
            return text_id, slots, spans, count
        slot = (slot + np.uint64(1)) & np.uint64(len(slots) - 1)
    slots[slot] = count
    spans[count, 0] = start
    spans[count, 1] = end
    return count, slots, spans, count + 1


@numba.njit(cache=True, nogil=True)
def _line_end(data: np.ndarray, p: int) -> int:
    """Return the position of the first newline at or after p.

    Whole words are tested for a newline byte first. A block ends with a newline
    and its padding, so the words read stay inside the array.
    """
    ones = np.uint64(0x0101010101010101)
    high_bits = np.uint64(0x8080808080808080)
    newlines = np.uint64(0x0A0A0A0A0A0A0A0A)
    while True:
        word = _load_word(data, p) ^ newlines
        if (word - ones) & ~word & high_bits:
            break
        p += 8
    while data[p] != _NEWLINE:
        p += 1
    return p


@numba.njit(cache=True, nogil=True)
def _is_metric_line(data: np.ndarray, start: int, end: int) -> bool:
    for p in range(start, end - len(_METRIC_TYPE) + 1):
        if _has_key(data, p, _METRIC_TYPE):
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _recent_match(
    data: np.ndarray, p: int, recent: np.ndarray, spans: np.ndarray
) -> int:
    """Return the id of the recent tags text that data[p:] starts with, or -1.

    The text must be followed by the `}}` and newline that end a Point line. A
    recent text contains no newline, so no word compared lies past this line's
    newline plus 7 bytes.
    """
    for text_id in recent:
        if text_id < 0:
            break
        first = spans[text_id, 0]
        length = spans[text_id, 1] - first
        if (
            length > 0
            and _same_text(data, first, p, length)
            and _is_point_end(data, p + length)
        ):
            return text_id
    return -1


@numba.njit(cache=True, nogil=True)
def _promote(recent: np.ndarray, text_id: int) -> None:
    """Move text_id to the front of the recent ids, dropping the oldest."""
    position = len(recent) - 1
    for index in range(len(recent)):
        if recent[index] == text_id:
            position = index
            break
    for index in range(position, 0, -1):
        recent[index] = recent[index - 1]
    recent[0] = text_id


@numba.njit(cache=True, nogil=True)
def _grow_rows(rows: np.ndarray) -> np.ndarray:
    grown = np.empty((2 * len(rows), rows.shape[1]), dtype=rows.dtype)
    grown[: len(rows)] = rows
    return grown


@numba.njit(cache=True, nogil=True, inline="always")
def _is_point_end(data: np.ndarray, p: int) -> bool:
    return (
        data[p] == _CLOSE_BRACE
        and data[p + 1] == _CLOSE_BRACE
        and data[p + 2] == _NEWLINE
    )


@numba.njit(cache=True, nogil=True)
def scan_block(data: np.ndarray, size: int, capacity: int) -> ScanResult:
    """Scan the whole lines in data[:size] (see the module docstring).

    Returns (status, points, lines, non-blank lines, name id, time ns, value,
    tags id, name spans, tags spans, slow values, Metric lines). The per-point
    arrays have `capacity` rows, of which the first `points` are filled. A span is
    (start, end) of a text's first occurrence. A slow value is (point index, start,
    end) of a number that needs a correctly rounded parse; its value is NaN here.
    A Metric line is (line number from 1, start, end).
    """
    name_id = np.empty(capacity, dtype=np.int32)
    time_ns = np.empty(capacity, dtype=np.int64)
    value = np.empty(capacity, dtype=np.float64)
    tag_id = np.empty(capacity, dtype=np.int32)
    name_slots = np.full(64, -1, dtype=np.int64)
    name_spans = np.empty((32, 2), dtype=np.int64)
    tag_slots = np.full(1024, -1, dtype=np.int64)
    tag_spans = np.empty((512, 2), dtype=np.int64)
    # k6 writes a request's metrics in a fixed order, so the name that followed a
    # name last time is tried first, and the most recently used tags texts.
    next_name = np.full(MAX_NAMES, -1, dtype=np.int64)
    slow = np.empty((16, 3), dtype=np.int64)
    metric = np.empty((16, 3), dtype=np.int64)
    names = tags = slow_count = metric_count = 0
    points = lines = rows = 0
    previous_name = -1
    recent_tags = np.full(RECENT_TAGS, -1, dtype=np.int64)
    time = time_start = time_length = 0
    status = OK
    p = 0
    while p < size:
        lines += 1
        if data[p] == _NEWLINE:
            p += 1
            continue
        rows += 1
        if not _has_key(data, p, _PREFIX):
            end = _line_end(data, p)
            if not _is_metric_line(data, p, end):
                status = SHAPE_MISMATCH
                break
            if metric_count == len(metric):
                metric = _grow_rows(metric)
            metric[metric_count, 0] = lines
            metric[metric_count, 1] = p
            metric[metric_count, 2] = end
            metric_count += 1
            p = end + 1
            continue
        if points == capacity:
            status = CAPACITY_EXCEEDED
            break

        p += len(_PREFIX)
        name_start = p
        while data[p] != _QUOTE and data[p] != _BACKSLASH and data[p] != _NEWLINE:
            p += 1
        if data[p] != _QUOTE or not _has_key(data, p, _POINT_KEYS):
            status = SHAPE_MISMATCH
            break
        length = p - name_start
        guess = next_name[previous_name] if previous_name >= 0 else -1
        if (
            guess >= 0
            and name_spans[guess, 1] - name_spans[guess, 0] == length
            and _same_text(data, name_spans[guess, 0], name_start, length)
        ):
            current_name = guess
        else:
            current_name, name_slots, name_spans, names = _intern(
                data, name_start, p, name_slots, name_spans, names
            )
            if names >= MAX_NAMES:
                status = SHAPE_MISMATCH
                break
            if previous_name >= 0:
                next_name[previous_name] = current_name
        previous_name = current_name

        # A request's samples share one time text, so the line before's is tried
        # first; its closing quote is compared too.
        p += len(_POINT_KEYS)
        if time_length and _same_text(data, time_start, p, time_length + 1):
            time_start, p = p, p + time_length
        else:
            time_start = p
            time, p = parse_time(data, p)
            time_length = p - time_start
        if p < 0 or not _has_key(data, p, _VALUE_KEY):
            status = SHAPE_MISMATCH
            break
        number_start = p + len(_VALUE_KEY)
        number, p, exact = parse_number(data, number_start)
        if p < 0:
            status = SHAPE_MISMATCH
            break
        if not exact:
            if slow_count == len(slow):
                slow = _grow_rows(slow)
            slow[slow_count, 0] = points
            slow[slow_count, 1] = number_start
            slow[slow_count, 2] = p
            slow_count += 1

        tags_start = p
        current_tags = -1
        if data[p] == _COMMA and _has_key(data, p, _TAGS_KEY):
            p += len(_TAGS_KEY)
            tags_start = p
            current_tags = _recent_match(data, p, recent_tags, tag_spans)
            if current_tags >= 0:
                p = tag_spans[current_tags, 1] - tag_spans[current_tags, 0] + p
            else:
                p = _line_end(data, p) - 2
                if p <= tags_start:
                    status = SHAPE_MISMATCH
                    break
        if not _is_point_end(data, p):
            status = SHAPE_MISMATCH
            break
        if current_tags < 0:
            current_tags, tag_slots, tag_spans, tags = _intern(
                data, tags_start, p, tag_slots, tag_spans, tags
            )
        _promote(recent_tags, current_tags)

        name_id[points] = current_name
        time_ns[points] = time
        value[points] = number
        tag_id[points] = current_tags
        points += 1
        p += 3
    return (
        status,
        points,
        lines,
        rows,
        name_id,
        time_ns,
        value,
        tag_id,
        name_spans[:names],
        tag_spans[:tags],
        slow[:slow_count],
        metric[:metric_count],
    )
