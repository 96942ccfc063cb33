"""End-to-end: a real k6 canary against the rehearsal target, analyzed and rendered."""

import json
import os
from pathlib import Path

import pytest

from canarykit.cli import main
from canarykit.rehearsal import rehearsal_target

pytestmark = pytest.mark.k6

KNOWN_TOKEN = "canary-secret-7f3a9c1e5b2d"


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run `canarykit run` once for 6 s at 250 req/s and keep what it produced."""
    root = tmp_path_factory.mktemp("canary")
    env = dict(os.environ, TEST_TOKEN=KNOWN_TOKEN)
    log_file = root / "target.log"
    previous = os.environ.get("TEST_TOKEN")
    os.environ["TEST_TOKEN"] = KNOWN_TOKEN
    try:
        with rehearsal_target(
            env=env, fault_args=["--log-file", str(log_file)]
        ) as target:
            exit_code = main(
                [
                    "run",
                    "--base-url",
                    target.base_url,
                    "--rate",
                    "250",
                    "--duration",
                    "6s",
                    "--sample-interval",
                    "1",
                    "--logs",
                    str(log_file),
                    "--results-dir",
                    str(root / "results"),
                    "--evidence-dir",
                    str(root / "evidence"),
                ]
            )
    finally:
        if previous is None:
            os.environ.pop("TEST_TOKEN", None)
        else:
            os.environ["TEST_TOKEN"] = previous
    (run_dir,) = (root / "results").iterdir()
    return {"root": root, "exit_code": exit_code, "run_dir": run_dir}


def test_run_passes_clean_target(canary_run: dict) -> None:
    assert canary_run["exit_code"] == 0
    verdict = json.loads((canary_run["run_dir"] / "verdict.json").read_text())
    assert verdict["status"] == "PASS"


def test_run_folder_holds_artefacts(canary_run: dict) -> None:
    run_dir: Path = canary_run["run_dir"]
    for name in [
        "k6.json",
        "k6_summary.json",
        "canary_live_output.log",
        "preflight_health.json",
        "preflight_readyz.json",
        "preflight_metrics.txt",
        "run_params.json",
        "samples/metrics.ndjson",
        "samples/health.ndjson",
        "canary_final_metrics.txt",
        "canary_final_health.json",
        "executed/canary_run.ipynb",
        "executed/canary_analysis.ipynb",
        "verdict.json",
    ]:
        assert (run_dir / name).is_file(), name
    scrapes = (run_dir / "samples/metrics.ndjson").read_text().splitlines()
    assert len(scrapes) >= 4


def test_run_renders_bundle(canary_run: dict) -> None:
    app_dir = canary_run["root"] / "evidence" / "auto_com_center"
    (html,) = app_dir.glob("CANARY_REPORT_*.html")
    (markdown,) = app_dir.glob("CANARY_REPORT_*.md")
    text = markdown.read_text()
    for label in ["P95", "error rate", "uptime", "total requests", "PASS"]:
        assert label.lower() in text.lower(), label
    assert "plotly" in html.read_text().lower()
    bundle_dir = html.with_suffix("")
    assert main(["verify", str(bundle_dir)]) == 0


def test_run_writes_no_token(canary_run: dict) -> None:
    leaks = []
    for path in canary_run["root"].rglob("*"):
        is_product = path.is_file() and path.name != "target.log"
        if is_product and KNOWN_TOKEN.encode() in path.read_bytes():
            leaks.append(str(path))
    assert leaks == []


def test_analyze_json_prints_verdict(canary_run: dict, capsys) -> None:
    k6_json = canary_run["run_dir"] / "k6.json"
    evidence = canary_run["root"] / "evidence2"
    code = main(["analyze", str(k6_json), "--json", "--evidence-dir", str(evidence)])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 0
    assert verdict["status"] == "PASS"
    ids = {criterion["id"] for criterion in verdict["criteria"]}
    assert {"p95_latency", "error_rate", "load_delivered", "health"} <= ids
    for criterion in verdict["criteria"]:
        assert set(criterion) >= {"id", "status", "observed", "target", "reason"}


def test_summary_json_matches_k6_export(canary_run: dict, capsys) -> None:
    k6_json = canary_run["run_dir"] / "k6.json"
    assert main(["summary", str(k6_json), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)["metrics"]
    theirs = json.loads((canary_run["run_dir"] / "k6_summary.json").read_text())[
        "metrics"
    ]
    duration = theirs["http_req_duration"]
    for stat in ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"]:
        assert ours["http_req_duration"][stat] == pytest.approx(
            duration[stat], rel=1e-9
        )
    assert ours["http_reqs"]["count"] == theirs["http_reqs"]["count"]


def test_preflight_failure_exits_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TEST_TOKEN", KNOWN_TOKEN)
    code = main(
        [
            "run",
            "--base-url",
            "http://127.0.0.1:9",
            "--duration",
            "5s",
            "--results-dir",
            str(tmp_path / "results"),
            "--evidence-dir",
            str(tmp_path / "evidence"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "/health" in error
    assert not list((tmp_path / "results").rglob("k6.json"))
