"""Thin tasks: an id in, one service call. All logic lives in sparkplane.services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from sparkplane.backends.base import TransientBackendError
from sparkplane.services import batch_runs, cluster_runs, session_runs
from sparkplane.services.context import Context

_ctx: Context | None = None


def install_context(ctx: Context) -> None:
    """Called once per worker process by `sparkplane worker`, before any task runs."""
    global _ctx
    _ctx = ctx


def _context() -> Context:
    if _ctx is None:
        raise RuntimeError("the worker's context is not installed; start workers with `sparkplane worker`")
    return _ctx


_RETRY: dict[str, Any] = {
    "autoretry_for": (TransientBackendError,),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="sparkplane.launch_batch", **_RETRY)
def launch_batch(batch_id: int) -> None:
    batch_runs.launch(_context(), batch_id)


@shared_task(name="sparkplane.cancel_batch", **_RETRY)
def cancel_batch(batch_id: int) -> None:
    batch_runs.cancel(_context(), batch_id)


@shared_task(name="sparkplane.launch_session", **_RETRY)
def launch_session(session_id: int) -> None:
    session_runs.launch(_context(), session_id)


@shared_task(name="sparkplane.stop_session", **_RETRY)
def stop_session(session_id: int) -> None:
    session_runs.stop(_context(), session_id)


@shared_task(name="sparkplane.converge_cluster", **_RETRY)
def converge_cluster(cluster_id: int) -> None:
    cluster_runs.converge(_context(), cluster_id)


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _ctx is not None:
        _ctx.close()


__all__ = [
    "cancel_batch",
    "converge_cluster",
    "install_context",
    "launch_batch",
    "launch_session",
    "stop_session",
    "worker_process_init",
]
