"""Tests of duration parsing, run folder naming and template lookup."""

from datetime import UTC, datetime

import pytest

from canarykit.errors import InvalidInputError
from canarykit.paths import (
    ANALYSIS_NOTEBOOK,
    RUN_NOTEBOOK,
    canary_script,
    new_run_dir,
    notebook_template,
    parse_duration_s,
    utc_stamp,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800.0),
        ("60s", 60.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration_k6_syntax(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "thirty", "5x", "0s", "1m-5s"])
def test_parse_duration_rejects_invalid(text: str) -> None:
    with pytest.raises(InvalidInputError, match="k6 syntax|longer than 0"):
        parse_duration_s(text)


def test_utc_stamp_converts_to_utc() -> None:
    moment = datetime(2026, 12, 4, 15, 45, 1, tzinfo=UTC)
    assert utc_stamp(moment) == "20261204T154501Z"


def test_new_run_dir_never_reuses(tmp_path) -> None:
    moment = datetime(2026, 12, 4, 15, 45, 1, tzinfo=UTC)
    first = new_run_dir(tmp_path, "app", moment)
    second = new_run_dir(tmp_path, "app", moment)
    assert first.name == "app-20261204T154501Z"
    assert second.name == "app-20261204T154501Z-1"
    assert first.is_dir()
    assert second.is_dir()


def test_templates_and_script_exist() -> None:
    assert notebook_template(RUN_NOTEBOOK).is_file()
    assert notebook_template(ANALYSIS_NOTEBOOK).is_file()
    assert canary_script().name == "canary_250rps_30min.js"


def test_missing_template_names_path() -> None:
    with pytest.raises(InvalidInputError, match="no_such.ipynb"):
        notebook_template("no_such.ipynb")
