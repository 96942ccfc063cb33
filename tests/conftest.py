"""Shared fixtures: the rehearsal target as a subprocess, k6, and a mock HTTP server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

LOOPBACK = "127.0.0.1"
TARGET_START_TIMEOUT_S = 20.0
TARGET_STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port that nothing listened on a moment ago."""
    return _free_port()


@pytest.fixture(scope="session")
def k6_binary() -> str:
    """Path of the k6 executable: next to the Python interpreter, else on PATH."""
    beside_python = Path(sys.executable).parent / "k6"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("k6")
    if on_path is None:
        pytest.skip("k6 is not installed next to the Python interpreter or on PATH")
    return on_path


def _option_arguments(fault_options: Mapping[str, object]) -> list[str]:
    arguments = []
    for name, value in fault_options.items():
        arguments += [f"--{name.replace('_', '-')}", str(value)]
    return arguments


def _wait_for_health(
    base_url: str, process: subprocess.Popen[bytes], output_path: Path
) -> None:
    deadline = time.monotonic() + TARGET_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = output_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"target exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"target at {base_url} gave no healthy answer within 20 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=TARGET_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=TARGET_STOP_TIMEOUT_S)


@pytest.fixture
def rehearsal_target(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., str]]:
    """Start ``python -m canarykit.target`` on loopback; return its base URL.

    Call it as ``rehearsal_target(latency_ms=50, error_ratio=0.1)``: each keyword
    becomes an option (``--latency-ms 50``). ``env`` replaces the environment of
    the target process. Every target started is stopped at teardown.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def start(*, env: Mapping[str, str] | None = None, **fault_options: object) -> str:
        port = _free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        output_path = tmp_path_factory.mktemp("target") / "target_output.log"
        command = [sys.executable, "-m", "canarykit.target", "--host", LOOPBACK]
        command += ["--port", str(port), *_option_arguments(fault_options)]
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
            )
        processes.append(process)
        _wait_for_health(base_url, process, output_path)
        return base_url

    yield start
    for process in processes:
        _stop(process)


@dataclass(frozen=True)
class MockRoute:
    """A fixed response of the mock server, sent after waiting ``delay_s`` seconds."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    delay_s: float = 0.0


@pytest.fixture
def mock_http_server() -> Iterator[Callable[[dict[str, MockRoute]], str]]:
    """Serve fixed responses by path on loopback; return the base URL.

    Unknown paths get 404. Delayed responses are sent early at teardown.
    """
    servers: list[ThreadingHTTPServer] = []
    release = threading.Event()

    def start(routes: dict[str, MockRoute]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path, MockRoute(404, b"not found"))
                if route.delay_s:
                    release.wait(route.delay_s)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://{LOOPBACK}:{server.server_address[1]}"

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()
