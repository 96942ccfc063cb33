"""Resolve the analysis notebook's inputs and collect the facts stated about a run.

A run's facts (app, target, start and end, planned load, k6 and canarykit versions)
come from the notebook parameters first, then from run_params.json of the run folder,
then from the k6 output. The sample k6 file shipped with canarykit has its own
run_params.json.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from canarykit import __version__
from canarykit.errors import InvalidInputError, K6RunError
from canarykit.k6runner import find_k6
from canarykit.paths import PACKAGE_DIR

if TYPE_CHECKING:
    from canarykit.k6output import K6Output

logger = logging.getLogger(__name__)

SAMPLE_K6_PATH = PACKAGE_DIR / "data" / "sample_k6.json.gz"
# The planned load and app of the shipped sample, in the shape of run_params.json.
SAMPLE_RUN_PARAMS_PATH = PACKAGE_DIR / "data" / "sample_run_params.json"
RUN_PARAMS_NAME = "run_params.json"
LIVE_LOG_NAME = "canary_live_output.log"
_K6_VERSION = re.compile(r"\bk6 (v\d+\.\d+\.\d+\S*)")
_K6_VERSION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunFacts:
    """Facts the report states about a run: app, target, times, load plan, versions.

    `target_rate_per_s` and `duration_s` are None when neither a notebook parameter
    nor run_params.json gives them. Times are ISO 8601 text, None when unknown.
    """

    app: str
    run_id: str
    base_url: str | None
    started_at: str | None
    ended_at: str | None
    time_source: str
    target_rate_per_s: float | None
    duration_s: float | None
    plan_source: str
    k6_version: str
    canarykit_version: str


def resolve_k6_path(k6_path: str) -> Path:
    """Return the k6 output to analyze; an empty string means the shipped sample."""
    if not k6_path:
        return SAMPLE_K6_PATH
    path = Path(k6_path)
    if not path.is_file():
        raise InvalidInputError(
            f"k6 output file not found: {path}; set k6_path to a k6 --out json file, "
            "or leave it empty to analyze the sample shipped with canarykit"
        )
    return path


def optional_dir(text: str) -> Path | None:
    """Return the folder a notebook parameter names, or None for an empty string."""
    if not text:
        return None
    path = Path(text)
    if not path.is_dir():
        raise InvalidInputError(
            f"folder not found: {path}; pass an existing folder or an empty string"
        )
    return path


def read_run_params(k6_path: Path, run_dir: Path | None) -> dict[str, Any]:
    """Read run_params.json of the run folder, or the shipped sample's; else {}.

    Raises InvalidInputError when the file is not a JSON object.
    """
    if run_dir is not None and (run_dir / RUN_PARAMS_NAME).is_file():
        path = run_dir / RUN_PARAMS_NAME
    elif k6_path.resolve() == SAMPLE_K6_PATH.resolve():
        path = SAMPLE_RUN_PARAMS_PATH
    else:
        return {}
    try:
        params = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path} is not valid JSON ({error}); restore it from the run, or pass "
            "app, target_rate_per_s and duration_s to the notebook explicitly"
        ) from error
    if not isinstance(params, dict):
        raise InvalidInputError(
            f"{path} contains a {type(params).__name__}, expected a JSON object with "
            "app, load.rate_per_s and duration_s"
        )
    return params


def run_facts(
    k6: K6Output,
    k6_path: Path,
    run_dir: Path | None,
    *,
    app: str = "",
    target_rate_per_s: float | None = None,
    duration_s: float | None = None,
) -> RunFacts:
    """Collect the run's facts; explicit arguments win over run_params.json.

    An empty `app` and None rate or duration are taken from run_params.json of
    the run folder (keys `app`, `load.rate_per_s`, `duration_s`), or from the
    shipped sample's parameters when `k6_path` is the sample.
    """
    params = read_run_params(k6_path, run_dir)
    load_value = params.get("load")
    load: dict[str, Any] = load_value if isinstance(load_value, dict) else {}
    planned_rate = _optional_float(load.get("rate_per_s"))
    planned_duration = _optional_float(params.get("duration_s"))
    started_at, ended_at, time_source = _run_times(k6, params)

    return RunFacts(
        app=app or str(params.get("app") or "unknown app"),
        run_id=run_id(k6_path, run_dir),
        base_url=load.get("base_url") or None,
        started_at=started_at,
        ended_at=ended_at,
        time_source=time_source,
        target_rate_per_s=(
            target_rate_per_s if target_rate_per_s is not None else planned_rate
        ),
        duration_s=duration_s if duration_s is not None else planned_duration,
        plan_source=_plan_source(params, target_rate_per_s, duration_s),
        k6_version=k6_version(run_dir),
        canarykit_version=__version__,
    )


def run_facts_table(facts: RunFacts) -> pd.DataFrame:
    """Describe the run: target, times, planned load and tool versions."""
    rate = (
        f"{facts.target_rate_per_s:g} requests/s ({facts.plan_source})"
        if facts.target_rate_per_s is not None
        else "unknown: no run_params.json and no target_rate_per_s given"
    )
    duration = (
        f"{facts.duration_s:g} s ({facts.plan_source})"
        if facts.duration_s is not None
        else "unknown: no run_params.json and no duration_s given"
    )
    rows = [
        ("app", facts.app),
        ("run", facts.run_id),
        ("target base URL", facts.base_url or "not recorded"),
        ("start", _time_text(facts.started_at)),
        ("end", _time_text(facts.ended_at)),
        ("start and end from", facts.time_source),
        ("planned rate", rate),
        ("planned duration", duration),
        ("k6 version", facts.k6_version),
        ("canarykit version", facts.canarykit_version),
    ]
    return pd.DataFrame(rows, columns=["fact", "value"])


def k6_version(run_dir: Path | None) -> str:
    """Return the k6 version from the live log, else from `k6 version`, labelled.

    k6 1.1.0 prints no version in its run banner, so a live log has one only when
    the runner recorded it. Otherwise the k6 on this machine is run, and the
    returned text names that source.
    """
    live_log = run_dir / LIVE_LOG_NAME if run_dir is not None else None
    if live_log is not None and live_log.is_file():
        with live_log.open(encoding="utf-8", errors="replace") as stream:
            match = _K6_VERSION.search(stream.read(64 * 1024))
        if match:
            return f"{match.group(1)} (from the live log)"
    try:
        completed = subprocess.run(
            [str(find_k6()), "version"],
            capture_output=True,
            text=True,
            timeout=_K6_VERSION_TIMEOUT_S,
            check=False,
        )
    except (K6RunError, OSError, subprocess.TimeoutExpired) as error:
        logger.warning("k6 version unknown: %s", error)
        return "unknown: not in the live log, and no k6 found on this machine"
    match = _K6_VERSION.search(completed.stdout)
    if match is None:
        return "unknown: not in the live log, and `k6 version` printed none"
    return f"{match.group(1)} (`k6 version` on the analysing machine)"


def run_id(k6_path: Path, run_dir: Path | None) -> str:
    """Return the run folder's name, or the k6 file name without its suffixes."""
    if run_dir is not None:
        return run_dir.name
    return k6_path.name.split(".")[0]


def display_path(path: Path, run_dir: Path | None) -> str:
    """Name a file relative to the run folder, or by its name alone outside one."""
    if run_dir is not None and path.resolve().is_relative_to(run_dir.resolve()):
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    if path.resolve() == SAMPLE_K6_PATH.resolve():
        return f"{path.name} (the sample shipped with canarykit)"
    return path.name


def _optional_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _run_times(
    k6: K6Output, params: dict[str, Any]
) -> tuple[str | None, str | None, str]:
    """Return start, end and their source: run_params.json, else the k6 output."""
    started_at, ended_at = params.get("started_at"), params.get("ended_at")
    if started_at and ended_at:
        return str(started_at), str(ended_at), "run_params.json"
    if not len(k6.requests):
        return None, None, "no run_params.json and no request in the k6 output"
    times = k6.requests["time"]
    return (
        times.min().isoformat(),
        times.max().isoformat(),
        "the first and last request in the k6 output",
    )


def _plan_source(
    params: dict[str, Any], target_rate_per_s: float | None, duration_s: float | None
) -> str:
    if target_rate_per_s is not None or duration_s is not None:
        return "notebook parameter"
    if not params:
        return "no run_params.json"
    return str(params.get("source", "run_params.json"))


def _time_text(value: str | None) -> str:
    if value is None:
        return "unknown"
    moment = pd.Timestamp(value)
    if moment.tzinfo is None:
        moment = moment.tz_localize(UTC)
    return moment.tz_convert(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
