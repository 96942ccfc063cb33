"""Tests for canarykit.notebooks: papermill execution, failures and parameter guard."""

from __future__ import annotations

import logging
from pathlib import Path

import nbformat
import pytest

from canarykit.errors import InvalidInputError, NotebookExecutionError
from canarykit.notebooks import (
    execute_notebook,
    find_failed_cell,
    validate_parameters,
)


def _template(tmp_path: Path, *cells: str, kernel: str = "python3") -> Path:
    """Write a notebook whose first cell is the `parameters` cell."""
    parameters = nbformat.v4.new_code_cell('label = "default"\nfactor = 1')
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(
        cells=[parameters, *(nbformat.v4.new_code_cell(cell) for cell in cells)]
    )
    notebook.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": kernel,
        "language": "python",
    }
    path = tmp_path / "template.ipynb"
    nbformat.write(notebook, path)
    return path


def _stream_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def test_execute_notebook_injects_parameters(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(label * factor)")
    output = execute_notebook(
        template,
        tmp_path / "out" / "run.ipynb",
        parameters={"label": "ab", "factor": 3},
    )
    assert output == tmp_path / "out" / "run.ipynb"
    assert _stream_text(output) == "ababab\n"


def test_execute_notebook_ignores_metadata_kernel(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(label)", kernel="no-such-kernel-here")
    output = execute_notebook(
        template, tmp_path / "run.ipynb", parameters={}, kernel_name="python3"
    )
    assert _stream_text(output) == "default\n"


def test_execute_notebook_strips_environment_keeps_parameters(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(label)")
    output = execute_notebook(
        template, tmp_path / "run.ipynb", parameters={"label": "x", "factor": 2}
    )
    metadata = nbformat.read(output, as_version=4).metadata["papermill"]
    assert metadata["parameters"] == {"label": "x", "factor": 2}
    assert "environment_variables" not in metadata
    assert "input_path" not in metadata
    assert "output_path" not in metadata


def test_execute_notebook_passes_paths_as_strings(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(type(label).__name__, label)")
    output = execute_notebook(
        template, tmp_path / "run.ipynb", parameters={"label": tmp_path / "a b"}
    )
    assert _stream_text(output) == f"str {tmp_path / 'a b'}\n"


def test_execute_notebook_failing_cell(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        "value = factor + 1",
        "check_value(value)\nraise ValueError(f'bad value {value}')",
    )
    output = tmp_path / "run.ipynb"
    with pytest.raises(NotebookExecutionError) as raised:
        execute_notebook(template, output, parameters={"factor": 41})
    message = str(raised.value)
    # Cells: parameters 0, injected parameters 1, `value = ...` 2, failing 3.
    assert "cell 3" in message
    assert "`check_value(value)`" in message
    assert "NameError" in message
    assert str(output) in message
    assert output.is_file()


def test_find_failed_cell_reads_executed_notebook(tmp_path: Path) -> None:
    template = _template(tmp_path, "print('ok')", "raise KeyError('missing key')")
    output = tmp_path / "run.ipynb"
    with pytest.raises(NotebookExecutionError):
        execute_notebook(template, output, parameters={})
    failure = find_failed_cell(nbformat.read(output, as_version=4))
    assert failure is not None
    assert failure.index == 2
    assert failure.source_first_line == "raise KeyError('missing key')"
    assert failure.ename == "KeyError"
    assert failure.evalue == "'missing key'"


def test_find_failed_cell_none_after_success(tmp_path: Path) -> None:
    template = _template(tmp_path, "print('ok')")
    output = execute_notebook(template, tmp_path / "run.ipynb", parameters={})
    assert find_failed_cell(nbformat.read(output, as_version=4)) is None


def test_execute_notebook_unknown_kernel(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(label)")
    with pytest.raises(NotebookExecutionError, match="not installed"):
        execute_notebook(
            template,
            tmp_path / "run.ipynb",
            parameters={},
            kernel_name="no-such-kernel-here",
        )


def test_execute_notebook_missing_template(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="template not found"):
        execute_notebook(tmp_path / "absent.ipynb", tmp_path / "o.ipynb", parameters={})


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "api_token",
        "TEST_TOKEN",
        "password",
        "db_password",
        "secret",
        "api_key",
    ],
)
def test_validate_parameters_rejects_secret_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="looks like a secret") as raised:
        validate_parameters({name: "s3cr3t-value"})
    assert "s3cr3t-value" not in str(raised.value)


def test_validate_parameters_allows_env_variable_name() -> None:
    validate_parameters({"token_env": "TEST_TOKEN", "run_dir": "/tmp/run"})


def test_validate_parameters_rejects_value_in_env_name() -> None:
    with pytest.raises(InvalidInputError, match="looks like a secret"):
        validate_parameters({"token_env": "abc.def-123/xyz="})


def test_validate_parameters_rejects_authorization_value() -> None:
    with pytest.raises(InvalidInputError, match="Authorization header") as raised:
        validate_parameters({"headers": "Bearer eyJhbGciOi.payload"})
    assert "eyJhbGciOi" not in str(raised.value)


def test_execute_notebook_rejects_secret_before_running(tmp_path: Path) -> None:
    template = _template(tmp_path, "print(label)")
    output = tmp_path / "run.ipynb"
    with pytest.raises(InvalidInputError):
        execute_notebook(template, output, parameters={"password": "hunter2"})
    assert not output.exists()


def test_execute_notebook_warning_starts_with_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    template = _template(tmp_path, "raise ValueError('not k6 output')")
    with (
        caplog.at_level(logging.WARNING, logger="canarykit.notebooks"),
        pytest.raises(NotebookExecutionError),
    ):
        execute_notebook(template, tmp_path / "run.ipynb", parameters={})
    (record,) = caplog.records
    assert record.getMessage().startswith("ValueError: not k6 output (notebook ")
