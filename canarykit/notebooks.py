"""Execute a notebook template with papermill and an explicitly named kernel.

The executed notebook is evidence, so two rules apply to it. Parameters never carry
a secret, though a parameter may name the environment variable that contains one.
Papermill's metadata keeps the parameters but loses its environment variables and
the local input and output paths.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import nbformat
import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from papermill.exceptions import PapermillExecutionError

from canarykit.errors import InvalidInputError, NotebookExecutionError

logger = logging.getLogger(__name__)

# Words that mark a parameter name as a secret, matched per `_`-separated word.
SECRET_NAME_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
# `token_env="TEST_TOKEN"` names the variable holding a token; that name is no secret.
_ENV_NAME_SUFFIX = "_env"
_ENV_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S|authorization\s*:", re.IGNORECASE)
# papermill notebook metadata that can describe the machine rather than the run.
_STRIPPED_PAPERMILL_KEYS = ("environment_variables", "input_path", "output_path")
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


@dataclass(frozen=True)
class CellFailure:
    """The first cell whose output is an error, as found in an executed notebook.

    `index` counts cells of the executed notebook from 0, leaving out the marker
    cells papermill adds; `execution_count` is the `In [n]` number or None.
    """

    index: int
    execution_count: int | None
    source_first_line: str
    ename: str
    evalue: str

    def describe(self) -> str:
        """Return text such as ``cell 7 (In [5]) `x = f()` raised ValueError: bad``."""
        return f"{self.location()} raised {self.ename}: {self.evalue}"

    def location(self) -> str:
        """Return text such as ``cell 7 (In [5]) `x = f()```."""
        count = (
            "" if self.execution_count is None else f" (In [{self.execution_count}])"
        )
        return f"cell {self.index}{count} `{self.source_first_line}`"


def execute_notebook(
    template: Path,
    output: Path,
    *,
    parameters: dict[str, Any],
    kernel_name: str = "python3",
    log_output: bool = False,
    cwd: Path | None = None,
    progress_bar: bool = False,
    stdout_file: IO[str] | None = None,
) -> Path:
    """Execute `template` with papermill into `output` and return `output`.

    The kernel is always `kernel_name`, whatever the notebook metadata names.
    Raises InvalidInputError for a missing template or a parameter that could carry
    a secret, and NotebookExecutionError when a cell raises or the kernel is not
    installed. After a cell raised, `output` contains the notebook up to that cell.
    `stdout_file` receives what the cells print while they run, so a long cell can
    show its progress.
    """
    if not template.is_file():
        raise InvalidInputError(
            f"notebook template not found: {template}; pass the path of an .ipynb file"
        )
    validate_parameters(parameters)
    output.parent.mkdir(parents=True, exist_ok=True)

    logger.info("executing %s into %s with kernel %s", template, output, kernel_name)
    try:
        papermill.execute_notebook(
            template,
            output,
            parameters=_papermill_values(parameters),
            kernel_name=kernel_name,
            log_output=log_output,
            progress_bar=progress_bar,
            cwd=cwd,
            stdout_file=stdout_file,
            extra_arguments=_kernel_arguments(kernel_name),
        )
    except PapermillExecutionError as error:
        raise _cell_error(output, error) from error
    except NoSuchKernel as error:
        raise NotebookExecutionError(
            f"Jupyter kernel {kernel_name!r} is not installed, so {template} could not "
            "be executed; list kernels with `jupyter kernelspec list` or install "
            "one with `python -m ipykernel install --user`"
        ) from error
    finally:
        if output.is_file():
            strip_environment_metadata(output)

    logger.info("notebook executed: %s", output)
    return output


def _kernel_arguments(kernel_name: str) -> list[str]:
    # ipykernel warns on every start that its local TCP transport is unencrypted.
    # The kernel serves one notebook on loopback, so only its errors are shown.
    try:
        argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    except NoSuchKernel:
        return []
    if any("ipykernel" in part for part in argv):
        return ["--IPKernelApp.log_level=ERROR"]
    return []


def validate_parameters(parameters: Mapping[str, Any]) -> None:
    """Raise InvalidInputError when a notebook parameter could carry a secret.

    A name with a word such as token, password or secret is rejected, except a
    name ending in `_env` whose value is an environment variable name. A string
    value that looks like an Authorization header is rejected whatever its name.
    The value never appears in the message.
    """
    for name, value in parameters.items():
        if _is_secret_name(name, value):
            raise InvalidInputError(
                f"notebook parameter {name!r} looks like a secret, and parameters are "
                "stored in the executed notebook; pass the name of the environment "
                f"variable instead (for example {name.split('_')[0]}_env='TEST_TOKEN')"
            )
        if isinstance(value, str) and _SECRET_VALUE.search(value):
            raise InvalidInputError(
                f"notebook parameter {name!r} has a value that looks like an "
                "Authorization header, and parameters are stored in the executed "
                "notebook; keep credentials in environment variables"
            )


def find_failed_cell(notebook: nbformat.NotebookNode) -> CellFailure | None:
    """Return the first cell with an error output, or None when every cell ran."""
    cells = [
        cell
        for cell in notebook.cells
        if PAPERMILL_ERROR_TAG not in cell.get("metadata", {}).get("tags", [])
    ]
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return CellFailure(
                    index=index,
                    execution_count=cell.get("execution_count"),
                    source_first_line=_first_line(cell.get("source", "")),
                    ename=str(output.get("ename", "")),
                    evalue=str(output.get("evalue", "")),
                )
    return None


def strip_environment_metadata(path: Path) -> None:
    """Remove papermill metadata that describes the machine, keeping the parameters."""
    notebook = nbformat.read(path, as_version=4)
    papermill_metadata = notebook.metadata.get("papermill", {})
    removed = [key for key in _STRIPPED_PAPERMILL_KEYS if key in papermill_metadata]
    if not removed:
        return
    for key in removed:
        del papermill_metadata[key]
    nbformat.write(notebook, path)


def _is_secret_name(name: str, value: Any) -> bool:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    if not words & SECRET_NAME_WORDS and "api_key" not in name.lower():
        return False
    names_a_variable = isinstance(value, str) and _ENV_VARIABLE_NAME.fullmatch(value)
    return not (name.lower().endswith(_ENV_NAME_SUFFIX) and names_a_variable)


def _papermill_values(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Turn Path values into strings, which papermill writes as Python literals."""
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in parameters.items()
    }


def _cell_error(output: Path, error: PapermillExecutionError) -> NotebookExecutionError:
    failure = None
    if output.is_file():
        failure = find_failed_cell(nbformat.read(output, as_version=4))
    if failure is None:
        failure = CellFailure(
            index=int(error.cell_index),
            execution_count=error.exec_count,
            source_first_line=_first_line(str(error.source)),
            ename=str(error.ename),
            evalue=str(error.evalue),
        )
    logger.warning(
        "%s: %s (notebook %s, %s)",
        failure.ename,
        failure.evalue,
        output,
        failure.location(),
    )
    return NotebookExecutionError(
        f"{failure.describe()}; the executed notebook up to that cell is {output}; "
        "open it to read the traceback"
    )


def _first_line(source: str | list[str]) -> str:
    text = "".join(source) if isinstance(source, list) else source
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
