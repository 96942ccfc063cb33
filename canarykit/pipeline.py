"""The `run`, `analyze` and `demo` jobs as library calls that never print or exit."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from canarykit.analysis import AnalysisResult, analyze_run
from canarykit.errors import InvalidInputError
from canarykit.k6reader import check_k6_output_start
from canarykit.k6runner import K6Result, LoadSettings, run_k6
from canarykit.logwatch import LogWatcher
from canarykit.notebooks import execute_notebook
from canarykit.paths import (
    RUN_NOTEBOOK,
    canary_script,
    new_run_dir,
    notebook_template,
    parse_duration_s,
    utc_stamp,
)
from canarykit.preflight import run_preflight
from canarykit.rehearsal import rehearsal_target
from canarykit.sampler import Sampler

logger = logging.getLogger(__name__)

DEFAULT_APP = "auto_com_center"
DEFAULT_TOKEN_ENV = "TEST_TOKEN"
# Redaction replaces the token wherever it occurs, so a very short token would
# corrupt scraped metrics and health bodies ("e" inside "healthy").
MIN_TOKEN_CHARS = 8


@dataclass(frozen=True)
class RunSettings:
    """Settings of `canarykit run`; the token stays in the environment."""

    load: LoadSettings
    app: str = DEFAULT_APP
    token_env: str = DEFAULT_TOKEN_ENV
    log_patterns: tuple[str, ...] = ()
    sample_interval_s: float = 5.0
    gzip_output: bool = False
    kernel_name: str = "python3"
    results_root: Path = Path("results")
    evidence_root: Path = Path("docs/evidence")
    script: Path | None = None


@dataclass(frozen=True)
class RunOutcome:
    """The run folder, the k6 result and the rendered analysis of one canary."""

    run_dir: Path
    k6: K6Result
    analysis: AnalysisResult
    extra: dict[str, str] = field(default_factory=dict)


def run_canary(settings: RunSettings, *, echo: IO[str] | None = None) -> RunOutcome:
    """Run a canary end to end: pre-flight, k6 under the sampler, analysis, bundle.

    Raises PreflightError before any load is sent when the target is not healthy,
    and InvalidInputError when the token variable is empty.
    """
    duration_s = parse_duration_s(settings.load.duration)
    if not os.environ.get(settings.token_env):
        raise InvalidInputError(
            f"environment variable {settings.token_env} is empty or unset; the canary "
            "script sends it as the bearer token: export it, or name another variable "
            "with --token-env"
        )
    if len(os.environ[settings.token_env]) < MIN_TOKEN_CHARS:
        raise InvalidInputError(
            f"the token in {settings.token_env} is shorter than {MIN_TOKEN_CHARS} "
            "characters; every copy of it is redacted from the evidence, and so short "
            "a string would also be cut out of ordinary text: use a real token"
        )
    script = settings.script or canary_script()
    run_dir = new_run_dir(settings.results_root, settings.app)
    started_at = datetime.now(UTC)
    _write_run_params(run_dir, settings, started_at=started_at, ended_at=None)

    logger.info("pre-flight checks of %s", settings.load.base_url)
    run_preflight(
        settings.load.base_url,
        run_dir=run_dir,
        secrets=[os.environ[settings.token_env]],
    )

    with _capture(settings, run_dir, duration_s):
        k6 = _execute_run_notebook(settings, run_dir, script, echo)
    _write_run_params(
        run_dir, settings, started_at=started_at, ended_at=datetime.now(UTC)
    )

    analysis = analyze_run(
        k6.output_path,
        run_dir=run_dir,
        app=settings.app,
        evidence_root=settings.evidence_root,
        kernel_name=settings.kernel_name,
        target_rate_per_s=float(settings.load.rate_per_s),
        duration_s=duration_s,
    )
    return RunOutcome(run_dir=run_dir, k6=k6, analysis=analysis)


@contextmanager
def _capture(settings: RunSettings, run_dir: Path, duration_s: float) -> Iterator[None]:
    # The bearer token is passed as a known secret, so a response body or log line
    # that carries it without a "Bearer" prefix is still redacted.
    known_secrets = [os.environ.get(settings.token_env, "")]
    with ExitStack() as stack:
        stack.enter_context(
            Sampler(
                base_url=settings.load.base_url,
                run_dir=run_dir,
                interval_s=settings.sample_interval_s,
                duration_s=duration_s,
                secrets=known_secrets,
            )
        )
        if settings.log_patterns:
            stack.enter_context(
                LogWatcher(
                    patterns=list(settings.log_patterns),
                    run_dir=run_dir,
                    secrets=known_secrets,
                )
            )
        yield


def _execute_run_notebook(
    settings: RunSettings, run_dir: Path, script: Path, echo: IO[str] | None
) -> K6Result:
    executed = run_dir / "executed" / RUN_NOTEBOOK
    executed.parent.mkdir(parents=True, exist_ok=True)
    parameters = {
        "run_dir": str(run_dir.resolve()),
        "base_url": settings.load.base_url,
        "rate_per_s": settings.load.rate_per_s,
        "duration": settings.load.duration,
        "pre_allocated_vus": settings.load.pre_allocated_vus,
        "max_vus": settings.load.max_vus,
        "app": settings.app,
        "token_env": settings.token_env,
        "gzip_output": settings.gzip_output,
        "script": str(script.resolve()),
    }
    execute_notebook(
        notebook_template(RUN_NOTEBOOK),
        executed,
        parameters=parameters,
        kernel_name=settings.kernel_name,
        stdout_file=echo,
    )
    return _k6_result_from_run_dir(run_dir, settings.gzip_output)


def _k6_result_from_run_dir(run_dir: Path, gzip_output: bool) -> K6Result:
    exit_code_path = run_dir / "k6_exit_code.txt"
    exit_code = (
        int(exit_code_path.read_text().strip()) if exit_code_path.is_file() else 0
    )
    return K6Result.in_run_dir(run_dir, exit_code=exit_code, gzip_output=gzip_output)


def _write_run_params(
    run_dir: Path,
    settings: RunSettings,
    *,
    started_at: datetime,
    ended_at: datetime | None,
) -> None:
    params = {
        "run_id": run_dir.name,
        "app": settings.app,
        "load": asdict(settings.load),
        "duration_s": parse_duration_s(settings.load.duration),
        "token_env": settings.token_env,
        "log_patterns": list(settings.log_patterns),
        "sample_interval_s": settings.sample_interval_s,
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat() if ended_at else None,
    }
    path = run_dir / "run_params.json"
    path.write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")


def run_load_in_notebook(
    *,
    run_dir: Path,
    base_url: str,
    load: LoadSettings,
    token_env: str,
    gzip_output: bool,
    script: Path,
    echo: IO[str] | None,
) -> K6Result:
    """Run k6 for the run notebook; an empty `base_url` starts the rehearsal target.

    The exit code is also written to `k6_exit_code.txt` so the caller of the
    notebook can read it.
    """
    with ExitStack() as stack:
        if not base_url:
            token_env = _ensure_rehearsal_token(token_env)
            target = stack.enter_context(rehearsal_target())
            base_url = target.base_url
        settings = LoadSettings(
            base_url=base_url,
            rate_per_s=load.rate_per_s,
            duration=load.duration,
            pre_allocated_vus=load.pre_allocated_vus,
            max_vus=load.max_vus,
        )
        result = run_k6(
            script=script,
            run_dir=run_dir,
            load=settings,
            token_env=token_env,
            gzip_output=gzip_output,
            echo=echo,
        )
    (run_dir / "k6_exit_code.txt").write_text(f"{result.exit_code}\n", encoding="utf-8")
    return result


def _ensure_rehearsal_token(token_env: str) -> str:
    # The rehearsal target accepts any bearer token when its token variable is unset,
    # so a random one serves a rehearsal without a real secret.
    if not os.environ.get(token_env):
        os.environ[token_env] = secrets.token_urlsafe(24)
    return token_env


def run_demo(
    *,
    duration: str = "60s",
    rate_per_s: int = 250,
    app: str = DEFAULT_APP,
    results_root: Path = Path("results"),
    evidence_root: Path = Path("docs/evidence"),
    kernel_name: str = "python3",
    echo: IO[str] | None = None,
) -> RunOutcome:
    """Start the rehearsal target on loopback, run a canary against it, stop it.

    The target writes its log to `results_root`, and the run follows that log, so
    every criterion of the verdict has data.
    """
    token_env = DEFAULT_TOKEN_ENV
    if not os.environ.get(token_env):
        os.environ[token_env] = secrets.token_urlsafe(24)
    results_root.mkdir(parents=True, exist_ok=True)
    target_log = results_root / f"rehearsal_target_{utc_stamp()}.log"
    with rehearsal_target(
        env=dict(os.environ), fault_args=["--log-file", str(target_log)]
    ) as target:
        settings = RunSettings(
            load=LoadSettings(
                base_url=target.base_url, rate_per_s=rate_per_s, duration=duration
            ),
            app=app,
            token_env=token_env,
            log_patterns=(str(target_log),),
            results_root=results_root,
            evidence_root=evidence_root,
            kernel_name=kernel_name,
        )
        return run_canary(settings, echo=echo)


def analyze_file(
    k6_path: Path,
    *,
    app: str = DEFAULT_APP,
    evidence_root: Path = Path("docs/evidence"),
    kernel_name: str = "python3",
    target_rate_per_s: float | None = None,
    duration_s: float | None = None,
) -> AnalysisResult:
    """Analyze an existing k6 output file; its folder is the run folder if it is one.

    Raises InvalidK6OutputError before any bundle is made when the file does not
    start as k6 output.
    """
    check_k6_output_start(k6_path)
    # The analysis notebook takes the planned rate and duration from the run
    # folder's run_params.json where they are not given.
    run_dir = k6_path.parent if (k6_path.parent / "run_params.json").is_file() else None
    return analyze_run(
        k6_path,
        run_dir=run_dir,
        app=app,
        evidence_root=evidence_root,
        kernel_name=kernel_name,
        target_rate_per_s=target_rate_per_s,
        duration_s=duration_s,
    )
