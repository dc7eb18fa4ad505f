"""One cleanup pass (`sparkplane cleanup`, and periodically inside `sparkplane up`).

Idempotent, and safe to run twice at once: deletions are bounded and by primary key, cancels of runs that
are already gone count as done. A pass that fails halfway is finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sparkplane.backends.base import Capability, Handle
from sparkplane.services.context import Context

log = logging.getLogger(__name__)
DELETE_BATCH = 100  # rows per transaction (Lighter's bound): short locks, steady progress


@dataclass
class CleanupReport:
    deleted_batches: int = 0
    orphans_killed: int = 0


def run_cleanup(ctx: Context) -> CleanupReport:
    report = CleanupReport()
    _delete_expired_batches(ctx, report)
    _kill_orphans(ctx, report)
    log.info(
        "cleanup done: %d old batches deleted, %d orphan runs killed", report.deleted_batches, report.orphans_killed
    )
    return report


def _delete_expired_batches(ctx: Context, report: CleanupReport) -> None:
    cutoff = ctx.clock.now() - dt.timedelta(days=ctx.settings.retention_days)
    while True:
        with ctx.db.uow() as uow:
            rows = uow.batches.finished_before(cutoff, DELETE_BATCH)
            for batch in rows:
                if batch.log_key:
                    ctx.blobs.delete(batch.log_key)
                uow.batches.delete(batch)
            report.deleted_batches += len(rows)
        if len(rows) < DELETE_BATCH:
            return


def _kill_orphans(ctx: Context, report: CleanupReport) -> None:
    """Runs alive on a backend that no unfinished batch owns (a row deleted by hand, a crash mid-launch)."""
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    for name in ctx.backends.names():
        backend = ctx.backends.get(name)
        if Capability.BATCH not in backend.capabilities:
            continue
        alive = backend.active_external_ids()
        with ctx.db.uow() as uow:
            owned = uow.batches.active_uids(name)
        for external_id in sorted(alive - owned):
            log.warning("cleanup: %s run %s belongs to no unfinished batch; killing it", name, external_id)
            backend.cancel(Handle(name, external_id), grace=grace)
            report.orphans_killed += 1
