"""The evidence bundle: new bundle paths, copies of run artefacts, manifest, verify.

A bundle of app `A` rendered at `20261204T154500Z` is

    <evidence_root>/A/CANARY_REPORT_20261204T154500Z.html
    <evidence_root>/A/CANARY_REPORT_20261204T154500Z.md
    <evidence_root>/A/CANARY_REPORT_20261204T154500Z/      the bundle directory
        manifest.json, verdict.json, canary_analysis.ipynb (when not in the run
        folder), charts/*.png, artefacts/<copy of each run folder file>

Manifest paths are relative to the bundle directory and use `/`. Every listed file
lies inside the bundle directory, except the two report files beside it
(`../CANARY_REPORT_<stamp>.html` and `.md`) and the k6 output, which can be
gigabytes and stays in the run folder: its entry carries `kept_outside_bundle`.
So the folder `<evidence_root>/A/` verifies wherever it is copied, and the k6
output verifies when it is found at its recorded relative path or given.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import orjson

from canarykit.errors import BundleIntegrityError, InvalidInputError
from canarykit.paths import utc_stamp

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = "2"
REPORT_PREFIX = "CANARY_REPORT_"
# Copies of the run folder's files, kept under their paths relative to the run folder.
ARTEFACTS_DIR = "artefacts"
_CHUNK_BYTES = 1024 * 1024
# Suffixes -2, -3, ... are tried when reports were rendered in the same second.
_MAX_SUFFIX = 1000
# The app name becomes a folder name under the evidence root.
_APP_NAME = re.compile(r"[A-Za-z0-9._-]+")
_REGENERATE = (
    "the manifest was edited or is not from canarykit: render a new bundle with "
    "`canarykit analyze` from the run folder"
)


class ManifestEntry(TypedDict):
    """One artefact: `path` relative to the bundle directory, size and SHA-256.

    `kept_outside_bundle` is true only for the k6 output, which is not copied.
    """

    path: str
    size_bytes: int
    sha256: str
    kept_outside_bundle: NotRequired[bool]


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
    """A manifest entry that failed verification, with what to do about it.

    `kind` is "missing", "changed", "rejected" (a path that is absolute, escapes the
    bundle or is listed twice, so it was not read) or "external missing" (the k6
    output kept outside the bundle was not found).
    """

    path: str
    kind: str
    expected: str
    found: str
    action: str

    def __str__(self) -> str:
        if self.kind in ("missing", "external missing"):
            what = f"{self.kind} (manifest lists {self.expected})"
        elif self.kind == "rejected":
            what = f"rejected, not read: {self.found}"
        else:
            what = f"changed (manifest lists {self.expected}, found {self.found})"
        return f"{self.path}: {what}; {self.action}"


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def copy_run_artefacts(
    run_dir: Path, bundle_dir: Path, *, exclude: Path | None = None
) -> list[Path]:
    """Copy every file of the run folder to `bundle_dir/artefacts/`, keeping paths.

    `exclude` (the k6 output) is not copied. Returns the copies, sorted by path.
    """
    skipped = exclude.resolve() if exclude is not None else None
    copies = []
    for source in sorted(path for path in run_dir.rglob("*") if path.is_file()):
        if source.resolve() == skipped:
            continue
        copy = bundle_dir / ARTEFACTS_DIR / source.relative_to(run_dir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
        copies.append(copy)
    logger.info("%d run artefacts copied to %s", len(copies), bundle_dir)
    return copies


def manifest_entries(bundle_dir: Path, artefacts: list[Path]) -> list[ManifestEntry]:
    """Hash each artefact and name it relative to the bundle directory.

    Raises InvalidInputError when an artefact is not a file, or lies outside the
    bundle directory and is not one of its two report files.
    """
    entries: list[ManifestEntry] = []
    for artefact in _unique(artefacts):
        _check_artefact(artefact)
        path = _relative_path(artefact, bundle_dir)
        if _escapes_bundle(path) and path not in _report_paths(bundle_dir):
            raise InvalidInputError(
                f"evidence artefact {artefact} lies outside the bundle {bundle_dir}; "
                "copy it into the bundle first (see copy_run_artefacts)"
            )
        entries.append(_entry(artefact, path))
    return entries


def write_manifest(
    bundle_dir: Path, artefacts: list[Path], *, external: Path | None = None
) -> Path:
    """Write `bundle_dir/manifest.json` listing every artefact and return its path.

    `external` is the k6 output, recorded with its path relative to the bundle
    directory and marked as kept outside the bundle.
    """
    entries = manifest_entries(bundle_dir, artefacts)
    if external is not None:
        _check_artefact(external)
        entry = _entry(external, _relative_path(external, bundle_dir))
        entry["kept_outside_bundle"] = True
        entries.append(entry)
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


def verify_bundle(path: Path, *, k6_output: Path | None = None) -> list[BundleProblem]:
    """Recompute size and SHA-256 of every file the manifest lists.

    `path` is the bundle directory or either report file beside it. The k6 output
    kept outside the bundle is read from `k6_output` when given, else from its
    recorded relative path. Returns one problem per missing, changed or rejected
    entry, so an empty list means the bundle is intact. Raises InvalidInputError
    when `path` is no bundle, and BundleIntegrityError when manifest.json is
    missing, unreadable or lists no files.
    """
    bundle_dir = bundle_dir_of(path)
    entries = _read_manifest(bundle_dir / MANIFEST_NAME)

    problems = []
    seen: set[str] = set()
    has_external = False
    for entry in entries:
        rejection = _rejection(bundle_dir, entry, seen, has_external)
        seen.add(entry["path"])
        is_external = entry.get("kept_outside_bundle") is True
        if rejection is not None:
            problem: BundleProblem | None = BundleProblem(
                entry["path"], "rejected", "", rejection, _REGENERATE
            )
        elif is_external:
            problem = _check_external(bundle_dir, entry, k6_output)
        else:
            problem = _check_file(bundle_dir / entry["path"], entry)
        has_external = has_external or is_external
        if problem is not None:
            problems.append(problem)
    if problems:
        logger.warning(
            "bundle %s: %d files failed verification", bundle_dir, len(problems)
        )
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


def _check_artefact(artefact: Path) -> None:
    if not artefact.is_file():
        raise InvalidInputError(
            f"evidence artefact not found or not a file: {artefact}; "
            "list only files that exist when the manifest is written"
        )


def _entry(artefact: Path, path: str) -> ManifestEntry:
    return {
        "path": path,
        "size_bytes": artefact.stat().st_size,
        "sha256": sha256_file(artefact),
    }


def _relative_path(artefact: Path, bundle_dir: Path) -> str:
    relative = os.path.relpath(artefact.resolve(), bundle_dir.resolve())
    return Path(relative).as_posix()


def _report_paths(bundle_dir: Path) -> tuple[str, str]:
    """Return the manifest paths of the two report files beside the bundle."""
    return (f"../{bundle_dir.name}.html", f"../{bundle_dir.name}.md")


def _escapes_bundle(path: str) -> bool:
    return posixpath.normpath(path).split("/")[0] == ".."


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
    if not isinstance(files, list) or not all(_is_entry(entry) for entry in files):
        raise BundleIntegrityError(
            f"manifest {path} lacks a `files` list of path (str), size_bytes (int) "
            f"and sha256 (str) entries, so the bundle cannot be verified; {_REGENERATE}"
        )
    if not files:
        raise BundleIntegrityError(
            f"manifest {path} lists no files, so nothing can be verified; {_REGENERATE}"
        )
    return files


def _is_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("size_bytes"), int)
        and isinstance(entry.get("sha256"), str)
    )


def _rejection(
    bundle_dir: Path, entry: ManifestEntry, seen: set[str], has_external: bool
) -> str | None:
    """Return why an entry's path must not be read, or None when it may be.

    `seen` contains the paths of earlier entries, and `has_external` is true when an
    earlier entry was already marked as kept outside the bundle.
    """
    path = entry["path"]
    if path in seen:
        return "the path is listed twice"
    if not path or Path(path).is_absolute() or "\\" in path:
        return (
            "the path is empty, absolute or uses backslashes; manifest paths are "
            "relative to the bundle directory and use /"
        )
    if entry.get("kept_outside_bundle") is True:
        if has_external:
            return "a second entry is marked as kept outside the bundle"
        return None
    if path in _report_paths(bundle_dir):
        return None
    resolved = (bundle_dir / path).resolve()
    if _escapes_bundle(path) or not resolved.is_relative_to(bundle_dir.resolve()):
        return (
            "the path leads outside the bundle directory, and only the k6 output "
            "and the two report files may"
        )
    return None


def _check_external(
    bundle_dir: Path, entry: ManifestEntry, k6_output: Path | None
) -> BundleProblem | None:
    listed = f"{entry['size_bytes']} bytes, sha256 {entry['sha256']}"
    file_path = k6_output if k6_output is not None else bundle_dir / entry["path"]
    if not file_path.is_file():
        where = "the given path" if k6_output is not None else "the recorded path"
        return BundleProblem(
            entry["path"],
            "external missing",
            f"{listed}, kept outside the bundle",
            f"no file at {where} {file_path}",
            "the k6 output is not copied into the bundle: copy the run folder so "
            "the recorded path resolves, or pass the file with --k6-output PATH",
        )
    return _check_file(file_path, entry)


def _check_file(file_path: Path, entry: ManifestEntry) -> BundleProblem | None:
    listed = f"{entry['size_bytes']} bytes, sha256 {entry['sha256']}"
    if not file_path.is_file():
        return BundleProblem(
            entry["path"],
            "missing",
            listed,
            "no file",
            "restore the file from the original bundle; a bundle without it is "
            "incomplete evidence",
        )

    size_bytes = file_path.stat().st_size
    digest = sha256_file(file_path)
    if size_bytes == entry["size_bytes"] and digest == entry["sha256"]:
        return None
    return BundleProblem(
        entry["path"],
        "changed",
        listed,
        f"{size_bytes} bytes, sha256 {digest}",
        "the file differs from the one the analysis used: treat the report as "
        "unverified, and render a new bundle if the change was intended",
    )
