"""Prometheus metrics. Counters and histograms live in each role's process; when `sparkplane up` runs the
roles as separate processes it sets PROMETHEUS_MULTIPROC_DIR, and the API's /metrics adds them all up.
State gauges are read from the database at scrape time, so they are right whichever process moved a row."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from sparkplane.domain.states import BatchState, SessionState
from sparkplane.services.context import Context

HTTP_REQUESTS = Counter("sparkplane_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "sparkplane_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_LAUNCH_SECONDS = Histogram(
    "sparkplane_batch_launch_seconds",
    "Time from a batch's submission to its backend reporting it running",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)


class _StateGauges(Collector):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.ctx.db.uow() as uow:
            batch_counts = uow.batches.counts_by_state()
            session_counts = uow.sessions.counts_by_state()
        batches = GaugeMetricFamily("sparkplane_batches", "Batches by state", labels=["state"])
        for batch_state in BatchState:
            batches.add_metric([batch_state.value], batch_counts.get(batch_state.value, 0))
        yield batches
        sessions = GaugeMetricFamily("sparkplane_sessions", "Interactive sessions by state", labels=["state"])
        for session_state in SessionState:
            sessions.add_metric([session_state.value], session_counts.get(session_state.value, 0))
        yield sessions


def render(ctx: Context) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for collector in (HTTP_REQUESTS, HTTP_SECONDS, BATCH_LAUNCH_SECONDS):
            registry.register(collector)
    registry.register(_StateGauges(ctx))
    return generate_latest(registry)


__all__ = ["BATCH_LAUNCH_SECONDS", "HTTP_REQUESTS", "HTTP_SECONDS", "REGISTRY", "render"]
