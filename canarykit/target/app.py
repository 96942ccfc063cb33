"""The rehearsal target's ASGI app: health, readiness, metrics and the events API."""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canarykit.target.config import TargetConfig
from canarykit.target.faults import FaultInjector
from canarykit.target.metrics import TargetMetrics

logger = logging.getLogger(__name__)

EVENT_FIELDS = ("event_type", "user_id", "scholarship_id", "timestamp")
_ROUTES = ("/health", "/readyz", "/metrics", "/api/v1/events")


def build_app(config: TargetConfig) -> Starlette:
    """Build the target app; its faults start and stop with the ASGI lifespan."""
    metrics = TargetMetrics()
    faults = FaultInjector(config, metrics)
    expected_token = os.environ.get(config.token_env)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        faults.start()
        yield
        await faults.stop()

    async def health(request: Request) -> Response:
        await faults.delay()
        if faults.is_critical:
            return JSONResponse({"status": "unhealthy"}, status_code=503)
        return JSONResponse({"status": "healthy"})

    async def readyz(request: Request) -> Response:
        await faults.delay()
        checks = {
            "database": "fail" if faults.pool.waiters > 0 else "pass",
            "application": "fail" if faults.is_critical else "pass",
        }
        is_ready = all(result == "pass" for result in checks.values())
        body = {"status": "ready" if is_ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    async def metrics_text(request: Request) -> Response:
        await faults.delay()
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(metrics.registry), media_type=content_type)

    async def post_event(request: Request) -> Response:
        if not _is_authorized(request, expected_token):
            return JSONResponse({"error": "missing or wrong bearer token"}, 401)
        if faults.is_rate_limited():
            return JSONResponse({"error": "rate limit exceeded"}, status_code=429)
        async with faults.pool.connection():
            await faults.delay()
            if faults.is_error_injected():
                return JSONResponse({"error": "injected fault"}, status_code=500)
            problem = _validate_event(await request.body())
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        return JSONResponse({"event_id": str(uuid.uuid4())}, status_code=202)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/api/v1/events", post_event, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(_RequestMetricsMiddleware, metrics=metrics, faults=faults)
    return app


def _is_authorized(request: Request, expected_token: str | None) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if expected_token is None:
        return True
    return hmac.compare_digest(token.encode(), expected_token.encode())


def _validate_event(body: bytes) -> str | None:
    try:
        event = json.loads(body)
    except ValueError:
        return "request body is not JSON"
    if not isinstance(event, dict):
        return "request body is not a JSON object"
    missing = [field for field in EVENT_FIELDS if field not in event]
    if missing:
        return f"event is missing fields: {', '.join(missing)}"
    return None


class _RequestMetricsMiddleware:
    """Count every HTTP request and observe its duration, by method and route."""

    def __init__(self, app: ASGIApp, metrics: TargetMetrics, faults: FaultInjector):
        self.app = app
        self.metrics = metrics
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, duration_s: float) -> None:
        path = scope["path"]
        # Unknown paths share one label value so scans cannot grow the series count.
        route = path if path in _ROUTES else "other"
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.duration.labels(method, route).observe(duration_s)
        self.faults.count_request()
