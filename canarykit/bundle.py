"""The evidence bundle: new bundle paths, manifest.json with SHA-256, and verify.

A bundle of app `A` rendered at `20261204T154500Z` is

    <evidence_root>/A/CANARY_REPORT_20261204T154500Z.html
    <evidence_root>/A/CANARY_REPORT_20261204T154500Z.md
    <evidence_root>/A/CANARY_REPORT_20261204T154500Z/      the bundle directory
        manifest.json, verdict.json, charts/*.png

Manifest paths are relative to the bundle directory and use `/`, so the two report
files read `../CANARY_REPORT_<stamp>.html` and run artefacts under `results/` read
`../../../results/<run_id>/k6.json`. Verification resolves them the same way, so
a bundle verifies as long as the bundle and the run folder keep their relative places.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import orjson

from canarykit.errors import BundleIntegrityError, InvalidInputError
from canarykit.paths import utc_stamp

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = "1"
REPORT_PREFIX = "CANARY_REPORT_"
_CHUNK_BYTES = 1024 * 1024
# Suffixes -2, -3, ... are tried when reports were rendered in the same second.
_MAX_SUFFIX = 1000
# The app name becomes a folder name under the evidence root.
_APP_NAME = re.compile(r"[A-Za-z0-9._-]+")


class ManifestEntry(TypedDict):
    """One artefact: `path` relative to the bundle directory, size and SHA-256."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class BundlePaths:
    """Paths of one bundle: both reports, the bundle directory, charts and manifest."""

    app_dir: Path
    stem: str
    html_path: Path
    md_path: Path
    bundle_dir: Path
    charts_dir: Path
    manifest_path: Path


@dataclass(frozen=True)
class BundleProblem:
    """A manifest entry whose file is missing or whose size or hash differs."""

    path: str
    kind: str  # "missing" or "changed"
    expected: str
    found: str

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.path}: missing (manifest lists {self.expected})"
        return (
            f"{self.path}: changed (manifest lists {self.expected}, found {self.found})"
        )


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_entries(bundle_dir: Path, artefacts: list[Path]) -> list[ManifestEntry]:
    """Hash each artefact and name it relative to the bundle directory.

    Raises InvalidInputError when an artefact is not a file.
    """
    entries: list[ManifestEntry] = []
    for artefact in _unique(artefacts):
        if not artefact.is_file():
            raise InvalidInputError(
                f"evidence artefact not found or not a file: {artefact}; "
                "list only files that exist when the manifest is written"
            )
        entries.append(
            {
                "path": _relative_path(artefact, bundle_dir),
                "size_bytes": artefact.stat().st_size,
                "sha256": sha256_file(artefact),
            }
        )
    return entries


def write_manifest(bundle_dir: Path, artefacts: list[Path]) -> Path:
    """Write `bundle_dir/manifest.json` listing every artefact and return its path."""
    entries = manifest_entries(bundle_dir, artefacts)
    manifest: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "algorithm": "sha256",
        "created_at": datetime.now(UTC).isoformat(),
        "files": entries,
    }

    path = bundle_dir / MANIFEST_NAME
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    logger.info("manifest with %d files written to %s", len(entries), path)
    return path


def verify_bundle(path: Path) -> list[BundleProblem]:
    """Recompute size and SHA-256 of every file the manifest lists.

    `path` is the bundle directory or either report file beside it. Returns one
    problem per missing or changed file, so an empty list means the bundle is intact.
    Raises InvalidInputError when `path` is no bundle, and BundleIntegrityError when
    manifest.json is missing or unreadable.
    """
    bundle_dir = bundle_dir_of(path)
    entries = _read_manifest(bundle_dir / MANIFEST_NAME)

    problems = [
        problem
        for entry in entries
        if (problem := _check_entry(bundle_dir, entry)) is not None
    ]
    for problem in problems:
        logger.warning("bundle %s: %s", bundle_dir, problem)
    return problems


def bundle_dir_of(path: Path) -> Path:
    """Return the bundle directory of a bundle directory or of a report file."""
    if path.is_dir():
        return path
    if path.suffix in (".html", ".md") and path.name.startswith(REPORT_PREFIX):
        bundle_dir = path.with_suffix("")
        if bundle_dir.is_dir():
            return bundle_dir
        raise InvalidInputError(
            f"bundle directory {bundle_dir} of report {path} not found; "
            "keep the report beside its CANARY_REPORT_<stamp>/ folder"
        )
    raise InvalidInputError(
        f"expected a bundle directory or a {REPORT_PREFIX}<stamp>.html/.md report, "
        f"found {path}"
    )


def new_bundle_paths(evidence_root: Path, app: str, now: datetime) -> BundlePaths:
    """Reserve a new bundle under `evidence_root/app` and return its paths.

    The bundle directory is created here, so two calls in the same second get
    different bundles: the second gets the suffix `-2`. Existing reports and
    bundle directories are never reused.
    """
    if now.tzinfo is None:
        raise InvalidInputError(
            f"expected a timezone-aware time for the bundle name, found naive {now}"
        )
    if not _APP_NAME.fullmatch(app) or app in (".", ".."):
        raise InvalidInputError(
            f"invalid app name {app!r} for a bundle folder; use letters, digits, "
            "'.', '_' and '-' only"
        )
    app_dir = evidence_root / app
    app_dir.mkdir(parents=True, exist_ok=True)
    base = f"{REPORT_PREFIX}{utc_stamp(now)}"

    for attempt in range(1, _MAX_SUFFIX + 1):
        stem = base if attempt == 1 else f"{base}-{attempt}"
        paths = _bundle_paths(app_dir, stem)
        if paths.html_path.exists() or paths.md_path.exists():
            continue
        try:
            paths.bundle_dir.mkdir()
        except FileExistsError:
            continue
        paths.charts_dir.mkdir()
        logger.info("new bundle at %s", paths.bundle_dir)
        return paths
    raise InvalidInputError(
        f"no free bundle name for {base} in {app_dir} after {_MAX_SUFFIX} tries; "
        "remove old bundles or use another evidence root"
    )


def _bundle_paths(app_dir: Path, stem: str) -> BundlePaths:
    bundle_dir = app_dir / stem
    return BundlePaths(
        app_dir=app_dir,
        stem=stem,
        html_path=app_dir / f"{stem}.html",
        md_path=app_dir / f"{stem}.md",
        bundle_dir=bundle_dir,
        charts_dir=bundle_dir / "charts",
        manifest_path=bundle_dir / MANIFEST_NAME,
    )


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique = []
    for path in paths:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def _relative_path(artefact: Path, bundle_dir: Path) -> str:
    relative = os.path.relpath(artefact.resolve(), bundle_dir.resolve())
    return Path(relative).as_posix()


def _read_manifest(path: Path) -> list[ManifestEntry]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as error:
        raise BundleIntegrityError(
            f"manifest not found: {path}; the bundle cannot be verified without it"
        ) from error
    except orjson.JSONDecodeError as error:
        raise BundleIntegrityError(
            f"manifest {path} is not valid JSON ({error}); "
            "the bundle cannot be verified"
        ) from error

    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and {"path", "size_bytes", "sha256"} <= entry.keys()
        for entry in files
    ):
        raise BundleIntegrityError(
            f"manifest {path} lacks a `files` list of path, size_bytes and sha256 "
            "entries; the bundle cannot be verified"
        )
    return files


def _check_entry(bundle_dir: Path, entry: ManifestEntry) -> BundleProblem | None:
    listed = f"{entry['size_bytes']} bytes, sha256 {entry['sha256']}"
    file_path = bundle_dir / entry["path"]
    if not file_path.is_file():
        return BundleProblem(entry["path"], "missing", listed, "no file")

    size_bytes = file_path.stat().st_size
    digest = sha256_file(file_path)
    if size_bytes == entry["size_bytes"] and digest == entry["sha256"]:
        return None
    return BundleProblem(
        entry["path"], "changed", listed, f"{size_bytes} bytes, sha256 {digest}"
    )
