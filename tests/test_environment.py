"""The analyst's environment: environment.yml, JupyterLab and notebook defaults."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import papermill
import pytest
import yaml

from canarykit.paths import PROJECT_DIR, RUN_NOTEBOOK, notebook_template
from canarykit.rehearsal import find_free_port

ENVIRONMENT_YML = PROJECT_DIR / "environment.yml"


def test_environment_yml_lists_design_dependencies() -> None:
    spec = yaml.safe_load(ENVIRONMENT_YML.read_text(encoding="utf-8"))
    conda_names = {
        str(entry).split("=")[0].split(">")[0]
        for entry in spec["dependencies"]
        if isinstance(entry, str)
    }
    for name in ["python", "jupyterlab", "papermill", "nbconvert", "pandas", "numpy"]:
        assert name in conda_names, name
    assert "plotly" in conda_names
    (pip_section,) = [
        entry for entry in spec["dependencies"] if isinstance(entry, dict)
    ]
    assert "-e ." in pip_section["pip"]


def test_jupyter_lab_starts_on_loopback(tmp_path: Path) -> None:
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.is_file():
        pytest.skip(
            "jupyter is not installed in this environment (pip install -e '.[lab]')"
        )
    port = find_free_port()
    command = [
        str(jupyter),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--IdentityProvider.token=",
        # Jupyter rejects running as root without this option, and CI runs as root.
        "--allow-root",
        f"--ServerApp.root_dir={PROJECT_DIR}",
    ]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path))
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    try:
        status = _wait_for_status(f"http://127.0.0.1:{port}/lab", process)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert status == 200


def _wait_for_status(url: str, process: subprocess.Popen[bytes]) -> int | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.HTTPError:
            time.sleep(0.5)
    return None


@pytest.mark.k6
def test_run_notebook_runs_with_defaults(tmp_path: Path) -> None:
    output = tmp_path / "canary_run.ipynb"
    papermill.execute_notebook(
        notebook_template(RUN_NOTEBOOK),
        output,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    (run_dir,) = (tmp_path / "results").iterdir()
    assert (run_dir / "k6.json").stat().st_size > 0
    assert (run_dir / "k6_summary.json").is_file()
    assert (run_dir / "k6_exit_code.txt").read_text().strip() == "0"
    assert "P95 latency (ms)" in output.read_text(encoding="utf-8")
