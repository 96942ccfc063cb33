"""Settings of the rehearsal target: where it listens and which faults it injects."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from canarykit.errors import InvalidInputError


@dataclass(frozen=True)
class TargetConfig:
    """Listening address and fault options of one rehearsal target process.

    Times are in seconds after ``clock_origin`` (a Unix time), so a restarted process
    keeps the fault schedule of the first one. Zero turns a fault off.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token_env: str = "TEST_TOKEN"
    latency_ms: float = 0.0
    spike_ms: float = 0.0
    spike_start_s: float = 0.0
    spike_duration_s: float = 0.0
    error_ratio: float = 0.0
    rate_limit_per_s: int = 0
    leak_mb_per_min: float = 0.0
    restart_after_s: float = 0.0
    pool_size: int = 100
    log_file: Path | None = None
    critical_after_s: float = 0.0
    clock_origin: float = 0.0

    def __post_init__(self) -> None:
        _check_finite_non_negative(self)
        if self.port > _MAX_PORT:
            raise InvalidInputError(
                f"--port must be between 0 and {_MAX_PORT}, got {self.port!r}; "
                "0 picks a free port"
            )
        if not 0.0 <= self.error_ratio <= 1.0:
            raise InvalidInputError(
                f"--error-ratio must be between 0 and 1, got {self.error_ratio!r}"
            )
        if self.pool_size < 1:
            raise InvalidInputError(
                f"--pool-size must be at least 1, got {self.pool_size!r}"
            )
        if self.spike_ms > 0 and self.spike_duration_s <= 0:
            raise InvalidInputError(
                f"--spike-ms {self.spike_ms:g} needs a window: set --spike-duration "
                "to the spike length in seconds"
            )
        if self.critical_after_s > 0 and self.log_file is None:
            raise InvalidInputError(
                f"--critical-after {self.critical_after_s:g} needs --log-file, the "
                "file the CRITICAL line is written to"
            )

    def fault_descriptions(self) -> list[str]:
        """Describe each fault that is switched on, one phrase per fault."""
        descriptions = []
        if self.latency_ms > 0:
            descriptions.append(f"{self.latency_ms:g} ms added to every request")
        if self.spike_ms > 0:
            descriptions.append(
                f"{self.spike_ms:g} ms spike from {self.spike_start_s:g} s for "
                f"{self.spike_duration_s:g} s"
            )
        if self.error_ratio > 0:
            descriptions.append(f"{self.error_ratio:g} of event posts get HTTP 500")
        if self.rate_limit_per_s > 0:
            descriptions.append(f"event posts over {self.rate_limit_per_s}/s get 429")
        if self.leak_mb_per_min > 0:
            descriptions.append(f"memory leak of {self.leak_mb_per_min:g} MB/min")
        if self.restart_after_s > 0:
            descriptions.append(f"restart after {self.restart_after_s:g} s")
        if self.critical_after_s > 0:
            descriptions.append(f"CRITICAL log line after {self.critical_after_s:g} s")
        return descriptions


def config_from_namespace(args: argparse.Namespace) -> TargetConfig:
    """Build a ``TargetConfig`` from options added by ``add_target_arguments``."""
    log_file = Path(args.log_file) if args.log_file else None
    return TargetConfig(
        host=args.host,
        port=args.port,
        token_env=args.token_env,
        latency_ms=args.latency_ms,
        spike_ms=args.spike_ms,
        spike_start_s=args.spike_start,
        spike_duration_s=args.spike_duration,
        error_ratio=args.error_ratio,
        rate_limit_per_s=args.rate_limit,
        leak_mb_per_min=args.leak_mb_per_min,
        restart_after_s=args.restart_after,
        pool_size=args.pool_size,
        log_file=log_file,
        critical_after_s=args.critical_after,
        clock_origin=args.clock_origin or 0.0,
    )


_MAX_PORT = 65535


def check_log_file(path: Path) -> None:
    """Check that the target can append to ``path`` in a folder that exists.

    Missing parent folders are not created, so a mistyped path fails here instead
    of writing the log somewhere nobody looks.

    Raises:
        InvalidInputError: the folder does not exist or the file cannot be opened.
    """
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"--log-file {str(path)!r}: folder {str(folder)!r} does not exist or is "
            "not a directory; create it first or choose another path"
        )
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise InvalidInputError(
            f"--log-file {str(path)!r} cannot be opened for appending: "
            f"{error.strerror or error}; choose a writable file path"
        ) from error


def _check_finite_non_negative(config: TargetConfig) -> None:
    numeric_options = {
        "--port": config.port,
        "--latency-ms": config.latency_ms,
        "--spike-ms": config.spike_ms,
        "--spike-start": config.spike_start_s,
        "--spike-duration": config.spike_duration_s,
        "--rate-limit": config.rate_limit_per_s,
        "--leak-mb-per-min": config.leak_mb_per_min,
        "--restart-after": config.restart_after_s,
        "--critical-after": config.critical_after_s,
        "--clock-origin": config.clock_origin,
    }
    for option, value in numeric_options.items():
        if not math.isfinite(value):
            raise InvalidInputError(f"{option} must be a finite number, got {value!r}")
        if value < 0:
            raise InvalidInputError(f"{option} must be 0 or more, got {value!r}")
