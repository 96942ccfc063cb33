"""Command line of the rehearsal target: options, serving, restart supervision."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from types import FrameType

import uvicorn

from canarykit.errors import InvalidInputError
from canarykit.target.app import build_app
from canarykit.target.config import (
    TargetConfig,
    check_log_file,
    config_from_namespace,
)
from canarykit.target.faults import RESTART_EXIT_CODE

logger = logging.getLogger(__name__)

_GRACEFUL_SHUTDOWN_S = 5


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the listening and fault options of the rehearsal target to ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port, 0 to 65535; 0 picks a free port (default %(default)s)",
    )
    parser.add_argument(
        "--token-env",
        default="TEST_TOKEN",
        help="environment variable holding the bearer token that POST "
        "/api/v1/events expects; when it is unset, any non-empty token is accepted",
    )
    faults = parser.add_argument_group("faults (0 turns a fault off)")
    _add_fault_arguments(faults)
    # Set by the restart supervisor for its worker processes only.
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--clock-origin", type=float, default=None, help=argparse.SUPPRESS
    )


def _add_fault_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added to every request"
    )
    group.add_argument(
        "--spike-ms", type=float, default=0.0, help="extra delay during the spike"
    )
    group.add_argument(
        "--spike-start",
        type=float,
        default=0.0,
        help="seconds after start when the spike begins",
    )
    group.add_argument(
        "--spike-duration", type=float, default=0.0, help="spike length in seconds"
    )
    group.add_argument(
        "--error-ratio",
        type=float,
        default=0.0,
        help="fraction (0 to 1) of POST /api/v1/events requests that get HTTP 500",
    )
    group.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        help="POST /api/v1/events requests per second before the rest get 429",
    )
    group.add_argument(
        "--leak-mb-per-min",
        type=float,
        default=0.0,
        help="memory allocated and never freed, in MB (10^6 bytes) per minute",
    )
    group.add_argument(
        "--restart-after",
        type=float,
        default=0.0,
        help="seconds after start when the server process exits and a new one "
        "starts on the same socket (once); counters reset",
    )
    group.add_argument(
        "--pool-size",
        type=int,
        default=100,
        help="connections in the pool each event post holds (default 100)",
    )
    group.add_argument(
        "--log-file", default=None, help="application log file to append lines to"
    )
    group.add_argument(
        "--critical-after",
        type=float,
        default=0.0,
        help="seconds after start when a CRITICAL line is logged and /health "
        "turns unhealthy; needs --log-file",
    )


def serve(args: argparse.Namespace) -> int:
    """Serve the rehearsal target until SIGINT or SIGTERM; return the exit status.

    Raises:
        InvalidInputError: an option is out of range, the log file cannot be
            opened, or the address cannot be bound.
    """
    config = config_from_namespace(args)
    if config.log_file is not None:
        check_log_file(config.log_file)
    if not config.clock_origin:
        config = replace(config, clock_origin=time.time())
    is_worker = args.listen_fd is not None
    listener = socket.socket(fileno=args.listen_fd) if is_worker else _listen(config)

    url = _url(listener)
    if config.restart_after_s > 0 and not is_worker:
        logger.info("rehearsal target listening on %s (restart supervisor)", url)
        return _supervise(config, args.token_env, listener)
    logger.info("rehearsal target listening on %s", url)
    return _run_server(config, listener)


def run_target(argv: list[str] | None = None) -> int:
    """Parse ``argv``, log to stderr and serve; the ``python -m`` entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m canarykit.target",
        description="Serve the canarykit rehearsal target with optional faults.",
    )
    add_target_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return serve(args)
    except InvalidInputError as error:
        logger.error("%s", error)
        return 2


def _listen(config: TargetConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((config.host, config.port))
    except OSError as error:
        listener.close()
        raise InvalidInputError(
            f"cannot listen on {config.host} port {config.port}: {error}; "
            "choose another --host or --port (0 picks a free port)"
        ) from error
    listener.listen(2048)
    return listener


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _run_server(config: TargetConfig, listener: socket.socket) -> int:
    server_config = uvicorn.Config(
        build_app(config),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(server_config)
    server.run(sockets=[listener])
    return 0 if server.started else 1


def _supervise(config: TargetConfig, token_env: str, listener: socket.socket) -> int:
    # The supervisor owns the listening socket, so clients that connect while the
    # worker restarts wait in the accept queue instead of being refused.
    listener.set_inheritable(True)
    stop_signals: list[int] = []
    worker = _start_worker(config, token_env, listener.fileno())

    def forward(signum: int, frame: FrameType | None) -> None:
        stop_signals.append(signum)
        worker.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _STOP_SIGNALS}
    try:
        exit_code = worker.wait()
        if exit_code == RESTART_EXIT_CODE and not stop_signals:
            logger.info("worker %d exited to restart; starting a new one", worker.pid)
            worker = _start_worker(
                replace(config, restart_after_s=0.0), token_env, listener.fileno()
            )
            exit_code = worker.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    return 0 if stop_signals else exit_code


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _start_worker(
    config: TargetConfig, token_env: str, listen_fd: int
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "canarykit.target", *_worker_options(config)]
    argv += ["--token-env", token_env, "--listen-fd", str(listen_fd)]
    worker = subprocess.Popen(argv, pass_fds=(listen_fd,))
    logger.info("started target worker %d", worker.pid)
    return worker


def _worker_options(config: TargetConfig) -> list[str]:
    options: dict[str, object] = {
        "--host": config.host,
        "--port": config.port,
        "--latency-ms": config.latency_ms,
        "--spike-ms": config.spike_ms,
        "--spike-start": config.spike_start_s,
        "--spike-duration": config.spike_duration_s,
        "--error-ratio": config.error_ratio,
        "--rate-limit": config.rate_limit_per_s,
        "--leak-mb-per-min": config.leak_mb_per_min,
        "--restart-after": config.restart_after_s,
        "--pool-size": config.pool_size,
        "--critical-after": config.critical_after_s,
        "--clock-origin": repr(config.clock_origin),
    }
    if config.log_file is not None:
        options["--log-file"] = str(config.log_file)
    return [part for option, value in options.items() for part in (option, str(value))]
