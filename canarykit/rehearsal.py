"""Start and stop the rehearsal target as a child process on a loopback port."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from canarykit.errors import CanaryKitError

logger = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"


class TargetStartError(CanaryKitError, RuntimeError):
    """The rehearsal target did not respond to /health in time."""


@dataclass(frozen=True)
class RunningTarget:
    """A rehearsal target process and the URL it serves."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None


def find_free_port(host: str = LOOPBACK_HOST) -> int:
    """Return a TCP port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def rehearsal_target(
    *,
    fault_args: Sequence[str] = (),
    port: int | None = None,
    env: dict[str, str] | None = None,
    output_path: Path | None = None,
    startup_timeout_s: float = 20.0,
) -> Iterator[RunningTarget]:
    """Run `canarykit target` on loopback for the duration of the `with` block.

    `fault_args` are extra command-line options of `canarykit target`, for example
    `["--latency-ms", "150"]`. The target's own console output goes to `output_path`
    (or is discarded).
    """
    chosen_port = port if port is not None else find_free_port()
    base_url = f"http://{LOOPBACK_HOST}:{chosen_port}"
    command = [
        sys.executable,
        "-m",
        "canarykit.target",
        "--host",
        LOOPBACK_HOST,
        "--port",
        str(chosen_port),
        *fault_args,
    ]
    sink = output_path.open("ab") if output_path is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        command,
        stdout=sink,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_until_healthy(base_url, process, startup_timeout_s)
        logger.info("rehearsal target started at %s (pid %d)", base_url, process.pid)
        yield RunningTarget(base_url=base_url, process=process, log_path=output_path)
    finally:
        _stop(process)
        if output_path is not None and not isinstance(sink, int):
            sink.close()
        logger.info("rehearsal target at %s stopped", base_url)


def _wait_until_healthy(
    base_url: str, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetStartError(
                f"rehearsal target exited with {process.returncode} before "
                f"responding to {base_url}/health; run `canarykit target` by hand "
                "to see its output"
            )
        try:
            response = httpx.get(f"{base_url}/health", timeout=1.0)
            if response.status_code == 200:
                return
            last_error = f"status {response.status_code}"
        except httpx.HTTPError as error:
            last_error = str(error) or type(error).__name__
        time.sleep(0.1)
    _stop(process)
    raise TargetStartError(
        f"rehearsal target did not respond to {base_url}/health within "
        f"{timeout_s:.0f} s (last result: {last_error})"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
