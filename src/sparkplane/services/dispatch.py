"""The outbox: tasks are written with their row, in one transaction, and published after the commit.

If the broker is down the entry stays, and the watcher's relay publishes it later. Consumers are idempotent,
so publishing twice (a relay racing the API) is harmless.
"""

from __future__ import annotations

import logging

from sparkplane.db.uow import UnitOfWork
from sparkplane.services import faults
from sparkplane.services.context import Context

log = logging.getLogger(__name__)

LAUNCH_BATCH = "launch_batch"
CANCEL_BATCH = "cancel_batch"
LAUNCH_SESSION = "launch_session"
STOP_SESSION = "stop_session"
CONVERGE_CLUSTER = "converge_cluster"
TASKS = (LAUNCH_BATCH, CANCEL_BATCH, LAUNCH_SESSION, STOP_SESSION, CONVERGE_CLUSTER)


def enqueue(uow: UnitOfWork, ctx: Context, task: str, entity_id: int) -> int:
    return uow.outbox.add(task, entity_id, ctx.clock.now()).id


def publish(ctx: Context, entry_ids: list[int]) -> None:
    """Publish these committed outbox entries now if the broker takes them; the relay covers any failure."""
    if entry_ids:
        relay(ctx, only=entry_ids)


def relay(ctx: Context, *, only: list[int] | None = None, limit: int = 500) -> int:
    """Publish pending outbox entries; returns how many were published."""
    published: list[int] = []
    failed: list[int] = []
    with ctx.db.uow() as uow:
        if only is not None:
            entries = uow.outbox.by_ids(only, skip_locked=uow.skip_locked)
        else:
            entries = uow.outbox.pending(limit, skip_locked=uow.skip_locked)
        for entry in entries:
            if ctx.dispatcher.publish(entry.task, entry.entity_id):
                published.append(entry.id)
            else:
                failed.append(entry.id)
                break  # the broker is down: the rest would fail the same way
        if published:
            faults.point("relay.after_publish", ctx.settings.data_dir)  # published, not yet deleted: it goes out again
        uow.outbox.delete(published)
        uow.outbox.bump_attempts(failed)
        # The watcher's "lost message" timer counts from the last dispatch, not from submission.
        now = ctx.clock.now()
        uow.batches.mark_dispatched([e.entity_id for e in entries if e.id in published and e.task == LAUNCH_BATCH], now)
        uow.sessions.mark_dispatched(
            [e.entity_id for e in entries if e.id in published and e.task == LAUNCH_SESSION], now
        )
    if failed:
        log.warning("broker unavailable; %d outbox entries wait for the relay", len(failed))
    return len(published)
