"""Tests of the command line: usage errors, bad input and exit codes."""

from pathlib import Path

import pytest

from canarykit.cli import main


def test_no_command_is_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_run_rejects_zero_rate(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--base-url", "http://127.0.0.1:9", "--rate", "0"])
    assert caught.value.code == 2
    assert "above 0" in capsys.readouterr().err


def test_summary_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    code = main(["summary", str(tmp_path / "none.json")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]\n", b"\x00\x01\x02garbage\xff\xfe", b'{\n  "type": "Point"\n}\n', b""],
    ids=["json-array", "binary", "pretty-printed", "empty"],
)
def test_summary_bad_input_exits_2(tmp_path: Path, capsys, content: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    code = main(["summary", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "bad.json" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_analyze_bad_duration_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "k6.json"
    path.write_text("")
    code = main(["analyze", str(path), "--duration", "soon"])
    assert code == 2
    assert "soon" in capsys.readouterr().err


def test_verify_missing_bundle_exits_2(tmp_path: Path, capsys) -> None:
    code = main(["verify", str(tmp_path / "nothing")])
    assert code == 2
    assert "bundle not found" in capsys.readouterr().err


def test_verify_folder_without_manifest_exits_1(tmp_path: Path, capsys) -> None:
    code = main(["verify", str(tmp_path)])
    assert code == 1
    assert "manifest" in capsys.readouterr().err


def test_run_without_token_exits_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    code = main(
        [
            "run",
            "--base-url",
            "http://127.0.0.1:9",
            "--token-env",
            "NO_SUCH_TOKEN_VAR",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 2
    assert "NO_SUCH_TOKEN_VAR" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/", "http://"])
def test_run_rejects_bad_base_url(url: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--base-url", url])
    assert caught.value.code == 2
    assert "URL" in capsys.readouterr().err


def test_run_rejects_vus_above_max(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TEST_TOKEN", "x")
    code = main(
        [
            "run",
            "--base-url",
            "http://127.0.0.1:9",
            "--pre-allocated-vus",
            "5",
            "--max-vus",
            "1",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 2
    assert "--max-vus" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_analyze_garbage_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\x00\x01garbage\xff")
    code = main(["analyze", str(path), "--evidence-dir", str(tmp_path / "evidence")])
    captured = capsys.readouterr()
    assert code == 2
    assert "garbage.json" in captured.err
    assert "line 1" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "evidence").exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"[1, 2]\n", b'{\n  "type": "Point"\n}\n', b"a,b\n1,2\n", b'{"a": 1}\n'],
    ids=["empty", "json-array", "pretty-printed", "foreign-csv", "not-k6-object"],
)
def test_analyze_rejects_non_k6_before_bundle(
    tmp_path: Path, capsys, content: bytes
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    code = main(["analyze", str(path), "--evidence-dir", str(tmp_path / "evidence")])
    assert code == 2
    assert "input.json" in capsys.readouterr().err
    assert not (tmp_path / "evidence").exists()


def test_run_rejects_short_token(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SHORT_TOKEN_VAR", "e")
    code = main(
        [
            "run",
            "--base-url",
            "http://127.0.0.1:9",
            "--token-env",
            "SHORT_TOKEN_VAR",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "shorter than 8" in error
    assert not (tmp_path / "results").exists()
