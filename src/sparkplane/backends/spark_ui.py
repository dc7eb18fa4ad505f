"""What a running Spark driver's own REST API (its web UI, /api/v1) tells about demand for executors."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)
_TIMEOUT = 2.0  # a driver's UI answers in milliseconds; a slow one counts as "unknown", not as demand


def pending_tasks(ui_url: str, app_id: str, *, client: httpx.Client | None = None) -> int | None:
    """Tasks of the application's active stages that wait for a core; None when the UI cannot be read."""
    url = f"{ui_url.rstrip('/')}/api/v1/applications/{app_id}/stages"
    try:
        if client is not None:
            response = client.get(url, params={"status": "active"}, timeout=_TIMEOUT)
        else:
            response = httpx.get(url, params={"status": "active"}, timeout=_TIMEOUT)
        if response.status_code != 200:
            return None
        stages = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.debug("driver UI %s did not answer: %s", ui_url, exc)
        return None
    if not isinstance(stages, list):
        return None
    waiting = 0
    for stage in stages:
        if isinstance(stage, dict):
            total = int(stage.get("numTasks") or 0)
            started = int(stage.get("numActiveTasks") or 0) + int(stage.get("numCompleteTasks") or 0)
            waiting += max(0, total - started)
    return waiting
