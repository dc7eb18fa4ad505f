"""`sparkplane watch batch`: reconciles batches, relays the outbox, collects logs of finished batches."""

from __future__ import annotations

from sparkplane.services import batch_runs
from sparkplane.services.context import Context
from sparkplane.watchers.loop import Loop


def batch_watcher(ctx: Context) -> Loop:
    return Loop("batch", lambda: batch_runs.watcher_pass(ctx), ctx.settings.reconcile_interval_seconds)
