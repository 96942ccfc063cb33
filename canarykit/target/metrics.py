"""Prometheus metrics of the rehearsal target, kept in a registry of their own.

Besides the process and platform collectors of prometheus_client, the registry holds:

- ``http_requests_total{method, route, status}``: requests served, by status.
- ``http_request_duration_seconds{method, route}``: time from request to response.
- ``db_pool_connections_in_use{pool}``: connections of the pool held by requests.
- ``db_pool_connections_max{pool}``: pool size (``--pool-size``).
- ``db_pool_waiters{pool}``: requests waiting for a free connection.
- ``rehearsal_leaked_bytes``: bytes held on purpose by ``--leak-mb-per-min``.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

# Bucket bounds in seconds; 0.12 matches the canary's P95 SLO of 120 ms.
DURATION_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.12,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
POOL_NAME = "main"


class TargetMetrics:
    """Every metric the target exposes on GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served by the rehearsal target.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to sending its response, in seconds.",
            ["method", "route"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.pool_in_use = self._pool_gauge(
            "db_pool_connections_in_use", "Pool connections held by requests."
        )
        self.pool_max = self._pool_gauge(
            "db_pool_connections_max", "Connections in the pool."
        )
        self.pool_waiters = self._pool_gauge(
            "db_pool_waiters", "Requests waiting for a free pool connection."
        )
        self.leaked_bytes = Gauge(
            "rehearsal_leaked_bytes",
            "Bytes held on purpose by the memory leak fault.",
            registry=self.registry,
        )

    def _pool_gauge(self, name: str, documentation: str) -> Gauge:
        gauge = Gauge(name, documentation, ["pool"], registry=self.registry)
        return gauge.labels(pool=POOL_NAME)
