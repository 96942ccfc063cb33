"""Tests for canarykit.bundle: manifest, verify and new bundle paths."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from canarykit.bundle import (
    bundle_dir_of,
    copy_run_artefacts,
    new_bundle_paths,
    sha256_file,
    verify_bundle,
    write_manifest,
)
from canarykit.errors import BundleIntegrityError, InvalidInputError

NOW = datetime(2026, 12, 4, 15, 45, 0, tzinfo=UTC)


def _bundle_with_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Lay out a run folder and a bundle as analyze_run does, and manifest them."""
    run_dir = tmp_path / "results" / "app-20261204T154500Z"
    (run_dir / "samples").mkdir(parents=True)
    k6_file = run_dir / "k6.json"
    k6_file.write_text('{"type":"Point"}\n')
    (run_dir / "samples" / "health.ndjson").write_text('{"ok": true}\n')
    paths = new_bundle_paths(tmp_path / "evidence", "app", NOW)
    copies = copy_run_artefacts(run_dir, paths.bundle_dir, exclude=k6_file)
    verdict = paths.bundle_dir / "verdict.json"
    verdict.write_text('{"status": "PASS"}')
    chart = paths.charts_dir / "latency_timeline.png"
    chart.write_bytes(b"\x89PNG fake")
    paths.html_path.write_text("<html></html>")
    paths.md_path.write_text("# report\n")
    artefacts = [*copies, verdict, chart, paths.html_path, paths.md_path]
    write_manifest(paths.bundle_dir, artefacts, external=k6_file)
    return paths.bundle_dir, [*artefacts, k6_file]


def _write_entries(bundle_dir: Path, entries: list[dict[str, object]]) -> None:
    manifest = {"schema_version": "2", "algorithm": "sha256", "files": entries}
    (bundle_dir / "manifest.json").write_bytes(orjson.dumps(manifest))


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # 2.56 MB, more than two 1 MiB chunks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_write_manifest_paths_relative_to_bundle(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    manifest = orjson.loads((bundle_dir / "manifest.json").read_bytes())
    paths = [entry["path"] for entry in manifest["files"]]
    stem = bundle_dir.name
    assert paths == [
        "artefacts/samples/health.ndjson",
        "verdict.json",
        "charts/latency_timeline.png",
        f"../{stem}.html",
        f"../{stem}.md",
        "../../../results/app-20261204T154500Z/k6.json",
    ]
    external = [
        entry for entry in manifest["files"] if entry.get("kept_outside_bundle")
    ]
    assert [entry["path"] for entry in external] == [paths[-1]]


def test_write_manifest_sizes_and_hashes(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    manifest = orjson.loads((bundle_dir / "manifest.json").read_bytes())
    for entry, artefact in zip(manifest["files"], artefacts, strict=True):
        data = artefact.read_bytes()
        assert entry["size_bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_write_manifest_lists_a_file_once(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    artefact = bundle_dir / "verdict.json"
    artefact.write_text("{}")
    write_manifest(
        bundle_dir, [artefact, bundle_dir / ".." / "bundle" / "verdict.json"]
    )
    manifest = orjson.loads((bundle_dir / "manifest.json").read_bytes())
    assert len(manifest["files"]) == 1


def test_write_manifest_rejects_missing_artefact(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        write_manifest(tmp_path, [tmp_path / "absent.json"])


def test_verify_bundle_intact(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    assert verify_bundle(bundle_dir) == []


def test_verify_bundle_detects_changed_file(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    artefacts[-1].write_text('{"type":"Point","changed":true}\n')
    problems = verify_bundle(bundle_dir)
    assert [problem.kind for problem in problems] == ["changed"]
    assert problems[0].path.endswith("results/app-20261204T154500Z/k6.json")
    assert "changed" in str(problems[0])


def test_verify_bundle_detects_same_size_change(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    verdict = artefacts[1]
    verdict.write_text(verdict.read_text().replace("PASS", "FAIL"))
    problems = verify_bundle(bundle_dir)
    assert [problem.path for problem in problems] == ["verdict.json"]


def test_verify_bundle_detects_missing_file(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    artefacts[2].unlink()
    problems = verify_bundle(bundle_dir)
    assert [(problem.path, problem.kind) for problem in problems] == [
        ("charts/latency_timeline.png", "missing")
    ]
    assert "missing" in str(problems[0])


def test_verify_bundle_from_either_report(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    artefacts[0].unlink()
    for report in (bundle_dir.with_suffix(".html"), bundle_dir.with_suffix(".md")):
        problems = verify_bundle(report)
        assert [problem.kind for problem in problems] == ["missing"]


def test_verify_bundle_without_manifest(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    (bundle_dir / "manifest.json").unlink()
    with pytest.raises(BundleIntegrityError, match="manifest not found"):
        verify_bundle(bundle_dir)


def test_verify_bundle_with_invalid_manifest(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    (bundle_dir / "manifest.json").write_text('{"files": [{"path": "x"}]}')
    with pytest.raises(BundleIntegrityError, match="lacks a `files` list"):
        verify_bundle(bundle_dir)


def test_verify_bundle_moved_evidence_folder(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    moved = tmp_path / "recipient" / "copy" / "app"
    shutil.copytree(bundle_dir.parent, moved)
    problems = verify_bundle(moved / bundle_dir.name)
    assert [problem.kind for problem in problems] == ["external missing"]
    assert problems[0].path == "../../../results/app-20261204T154500Z/k6.json"
    assert "--k6-output PATH" in str(problems[0])


def test_verify_bundle_k6_output_given(tmp_path: Path) -> None:
    bundle_dir, artefacts = _bundle_with_files(tmp_path)
    moved = tmp_path / "recipient" / "copy" / "app"
    shutil.copytree(bundle_dir.parent, moved)
    moved_bundle = moved / bundle_dir.name
    assert verify_bundle(moved_bundle, k6_output=artefacts[-1]) == []
    other = tmp_path / "other_k6.json"
    other.write_text('{"type":"Point","other":true}\n')
    problems = verify_bundle(moved_bundle, k6_output=other)
    assert [problem.kind for problem in problems] == ["changed"]


def test_verify_bundle_empty_manifest(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    _write_entries(bundle_dir, [])
    with pytest.raises(BundleIntegrityError, match="lists no files"):
        verify_bundle(bundle_dir)


@pytest.mark.parametrize(
    "path",
    ["/etc/hostname", "../../../../../../etc/hostname", "charts/../../outside.txt"],
)
def test_verify_bundle_rejects_paths_outside(tmp_path: Path, path: str) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    (bundle_dir.parent.parent / "outside.txt").write_text("outside")
    entry = {"path": path, "size_bytes": 7, "sha256": "0" * 64}
    _write_entries(bundle_dir, [entry])
    problems = verify_bundle(bundle_dir)
    assert [problem.kind for problem in problems] == ["rejected"]
    assert "canarykit analyze" in str(problems[0])


def test_verify_bundle_rejects_symlink_outside(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    (bundle_dir / "link.txt").symlink_to(outside)
    entry = {"path": "link.txt", "size_bytes": 7, "sha256": sha256_file(outside)}
    _write_entries(bundle_dir, [entry])
    assert [problem.kind for problem in verify_bundle(bundle_dir)] == ["rejected"]


def test_verify_bundle_rejects_second_external(tmp_path: Path) -> None:
    bundle_dir, _ = _bundle_with_files(tmp_path)
    manifest = orjson.loads((bundle_dir / "manifest.json").read_bytes())
    external = manifest["files"][-1]
    second = {**external, "path": "../../../results/other/k6.json"}
    _write_entries(bundle_dir, [*manifest["files"], second])
    problems = verify_bundle(bundle_dir)
    assert [(problem.path, problem.kind) for problem in problems] == [
        (second["path"], "rejected")
    ]


def test_write_manifest_rejects_artefact_outside(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    outside = tmp_path / "run_params.json"
    outside.write_text("{}")
    with pytest.raises(InvalidInputError, match="outside the bundle"):
        write_manifest(bundle_dir, [outside])


def test_copy_run_artefacts_skips_k6_output(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "k6.json").write_text("big")
    (run_dir / "logs" / "log_events.ndjson").write_text("{}\n")
    bundle_dir = tmp_path / "bundle"
    copies = copy_run_artefacts(run_dir, bundle_dir, exclude=run_dir / "k6.json")
    assert copies == [bundle_dir / "artefacts" / "logs" / "log_events.ndjson"]
    assert copies[0].read_text() == "{}\n"


def test_bundle_dir_of_rejects_other_file(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InvalidInputError, match="expected a bundle directory"):
        bundle_dir_of(other)


def test_new_bundle_paths_layout(tmp_path: Path) -> None:
    paths = new_bundle_paths(tmp_path, "auto_com_center", NOW)
    app_dir = tmp_path / "auto_com_center"
    assert paths.bundle_dir == app_dir / "CANARY_REPORT_20261204T154500Z"
    assert paths.html_path == app_dir / "CANARY_REPORT_20261204T154500Z.html"
    assert paths.md_path == app_dir / "CANARY_REPORT_20261204T154500Z.md"
    assert paths.charts_dir.is_dir()


def test_new_bundle_paths_never_reuses_a_bundle(tmp_path: Path) -> None:
    first = new_bundle_paths(tmp_path, "app", NOW)
    first.html_path.write_text("first report")
    second = new_bundle_paths(tmp_path, "app", NOW)
    third = new_bundle_paths(tmp_path, "app", NOW)
    assert second.stem == "CANARY_REPORT_20261204T154500Z-2"
    assert third.stem == "CANARY_REPORT_20261204T154500Z-3"
    assert first.html_path.read_text() == "first report"


def test_new_bundle_paths_skips_existing_report(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "CANARY_REPORT_20261204T154500Z.md").write_text("earlier")
    paths = new_bundle_paths(tmp_path, "app", NOW)
    assert paths.stem == "CANARY_REPORT_20261204T154500Z-2"


def test_new_bundle_paths_rejects_naive_time(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        new_bundle_paths(tmp_path, "app", datetime(2026, 12, 4, 15, 45))


@pytest.mark.parametrize("app", ["../outside", "a/b", "", ".."])
def test_new_bundle_paths_rejects_unsafe_app(tmp_path: Path, app: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid app name"):
        new_bundle_paths(tmp_path / "evidence", app, NOW)
    assert not (tmp_path / "evidence").exists()
