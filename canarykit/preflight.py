"""Check the target's /health, /readyz and /metrics before any load is sent.

The three responses are saved in the run folder whatever their outcome, so a failed
pre-flight still leaves the evidence of why it failed. Bodies and connection errors
are redacted before they are saved or quoted in an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson

from canarykit.errors import PreflightError
from canarykit.prom import Scrape, parse_exposition
from canarykit.redact import redact

logger = logging.getLogger(__name__)

HEALTH_PATH = Path("preflight_health.json")
READYZ_PATH = Path("preflight_readyz.json")
METRICS_PATH = Path("preflight_metrics.txt")
_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class PreflightResult:
    """The outcome of a passed pre-flight: parsed bodies and the saved files."""

    base_url: str
    health: dict[str, Any]
    readyz: dict[str, Any]
    metrics: Scrape
    saved_paths: tuple[Path, Path, Path]


def run_preflight(
    base_url: str,
    *,
    run_dir: Path,
    timeout_s: float = 5.0,
    secrets: Iterable[str] = (),
) -> PreflightResult:
    """Request /health, /readyz and /metrics, save the responses, raise on a failure.

    /health must return 200 with JSON ``status`` "healthy", /readyz 200 with every
    check "pass" (or ``true``, "ok", "up"), /metrics 200 with Prometheus text in
    which no line is rejected by the parser. Each body passes through ``redact``
    with ``secrets`` before it is saved, parsed or quoted.

    Raises:
        PreflightError: naming the failed check, its URL, the status and a short
            excerpt of the body, or the connection error.
    """
    base_url = base_url.rstrip("/")
    run_dir.mkdir(parents=True, exist_ok=True)
    known_secrets = [secret for secret in secrets if secret]
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        health = _get_json(client, "/health", run_dir / HEALTH_PATH, known_secrets)
        readyz = _get_json(client, "/readyz", run_dir / READYZ_PATH, known_secrets)
        metrics = _get_metrics(client, run_dir / METRICS_PATH, known_secrets)

    _check_health(health)
    _check_readyz(readyz)
    _check_metrics(metrics)
    logger.info("pre-flight of %s passed", base_url)
    return PreflightResult(
        base_url=base_url,
        health=health.body,
        readyz=readyz.body,
        metrics=metrics.scrape,
        saved_paths=(health.path, readyz.path, metrics.path),
    )


@dataclass(frozen=True)
class _Response:
    """One pre-flight response; ``error`` is set when none came."""

    check: str
    url: str
    path: Path
    status: int | None
    text: str
    body: Any
    error: str | None
    scrape: Scrape


def _fetch(
    client: httpx.Client, route: str, path: Path, secrets: list[str]
) -> _Response:
    url = f"{str(client.base_url).rstrip('/')}{route}"
    try:
        response = client.get(route)
    except httpx.HTTPError as error:
        message = redact(f"{type(error).__name__}: {error}", secrets)
        return _Response(route, url, path, None, "", None, message, Scrape())
    text = redact(response.text, secrets)
    return _Response(route, url, path, response.status_code, text, None, None, Scrape())


def _get_json(
    client: httpx.Client, route: str, path: Path, secrets: list[str]
) -> _Response:
    response = _fetch(client, route, path, secrets)
    try:
        body = orjson.loads(response.text) if response.text else None
    except orjson.JSONDecodeError:
        body = None
    saved = {"url": response.url, "status": response.status, "error": response.error}
    saved["body"] = body if body is not None else (response.text or None)
    path.write_bytes(orjson.dumps(saved, option=orjson.OPT_INDENT_2))
    return replace(response, body=body)


def _get_metrics(client: httpx.Client, path: Path, secrets: list[str]) -> _Response:
    response = _fetch(client, "/metrics", path, secrets)
    path.write_text(response.text, encoding="utf-8")
    scrape = parse_exposition(response.text) if response.status == 200 else Scrape()
    return replace(response, scrape=scrape)


def _check_health(response: _Response) -> None:
    _check_status(response)
    body = response.body
    if not isinstance(body, dict) or body.get("status") != "healthy":
        _fail(response, 'expected JSON with "status": "healthy"')


def _check_readyz(response: _Response) -> None:
    _check_status(response)
    body = response.body
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict) or not checks:
        _fail(response, 'expected JSON with a non-empty "checks" object')
    failing = {name: result for name, result in checks.items() if not _passes(result)}
    if failing:
        _fail(response, f"expected every check to pass, failing: {failing}")


def _check_metrics(response: _Response) -> None:
    _check_status(response)
    scrape = response.scrape
    if scrape.errors:
        first = scrape.errors[0]
        _fail(
            response,
            f"expected Prometheus text, {len(scrape.errors)} lines rejected, first "
            f"line {first.line_no}: {first.line[:80]!r} ({first.message})",
        )
    if not scrape.samples:
        _fail(response, "expected Prometheus text with at least one sample")


def _passes(result: Any) -> bool:
    if isinstance(result, dict):
        result = result.get("status")
    if result is True:
        return True
    return isinstance(result, str) and result.lower() in {"pass", "ok", "up", "healthy"}


def _check_status(response: _Response) -> None:
    if response.error is not None:
        raise PreflightError(
            f"pre-flight check {response.check} failed: GET {response.url} got no "
            f"response ({response.error}); start the service or fix --base-url. "
            f"Details saved in {response.path}"
        )
    if response.status != 200:
        _fail(response, "expected HTTP 200")


def _fail(response: _Response, expectation: str) -> NoReturn:
    excerpt = response.text[:_EXCERPT_CHARS]
    raise PreflightError(
        f"pre-flight check {response.check} failed: GET {response.url} returned "
        f"HTTP {response.status}, {expectation}; body starts {excerpt!r}. "
        f"Fix the service before sending load; response saved in {response.path}"
    )
