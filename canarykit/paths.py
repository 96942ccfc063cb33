"""Locate the notebook templates and k6 scripts, and name new run folders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from canarykit.errors import InvalidInputError

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root in a source checkout or an editable install.
PROJECT_DIR = PACKAGE_DIR.parent

RUN_NOTEBOOK = "canary_run.ipynb"
ANALYSIS_NOTEBOOK = "canary_analysis.ipynb"
CANARY_SCRIPT = "canary_250rps_30min.js"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def notebook_template(name: str) -> Path:
    """Return the path of a notebook template in the project's `notebooks/` folder."""
    return _existing(PROJECT_DIR / "notebooks" / name, "notebook template")


def canary_script() -> Path:
    """Return the path of the canary k6 script in the project's `load-tests/` folder."""
    return _existing(PROJECT_DIR / "load-tests" / CANARY_SCRIPT, "k6 script")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InvalidInputError(
            f"{what} not found at {path}; canarykit expects its source checkout "
            "(install it with `pip install -e .` from the repository)"
        )
    return path


def utc_stamp(now: datetime | None = None) -> str:
    """Return a UTC timestamp usable in file names, such as `20261204T154500Z`."""
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(results_root: Path, app: str, now: datetime | None = None) -> Path:
    """Create and return `results_root/<app>-<UTC stamp>`, never reusing a folder."""
    base = f"{app}-{utc_stamp(now)}"
    results_root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        name = base if attempt == 0 else f"{base}-{attempt}"
        candidate = results_root / name
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise InvalidInputError(f"could not create a new run folder under {results_root}")


def parse_duration_s(text: str) -> float:
    """Return the seconds of a k6 duration string such as `30m`, `1h30m` or `90s`."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise InvalidInputError(
            f"invalid duration {text!r}: expected k6 syntax such as 30m, 90s or 1h30m"
        )
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    seconds = sum(float(number) * scale[unit] for number, unit in parts)
    if seconds <= 0:
        raise InvalidInputError(f"invalid duration {text!r}: must be longer than 0 s")
    return seconds
