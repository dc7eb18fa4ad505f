"""One cleanup pass (`sparkplane cleanup`, and periodically inside `sparkplane up`).

Idempotent, and safe to run twice at once: deletions are bounded and by primary key, cancels of runs that
are already gone count as done. A pass that fails halfway is finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sparkplane.backends.base import ComputeBackend, Handle
from sparkplane.db.models import Session
from sparkplane.domain.errors import SparkplaneError
from sparkplane.domain.states import FailureReason, SessionState
from sparkplane.services import session_runs, sessions, sweep, web_logins
from sparkplane.services.context import Context

log = logging.getLogger(__name__)
DELETE_BATCH = 100  # rows per transaction (Lighter's bound): short locks, steady progress


@dataclass
class CleanupReport:
    deleted_batches: int = 0
    orphans_killed: int = 0
    orphan_clusters_stopped: int = 0
    sessions_timed_out: int = 0
    deleted_sessions: int = 0
    expired_web_logins: int = 0


def run_cleanup(ctx: Context) -> CleanupReport:
    report = CleanupReport()
    _end_timed_out_sessions(ctx, report)
    _delete_expired_batches(ctx, report)
    _delete_expired_sessions(ctx, report)
    _kill_orphans(ctx, report)
    _stop_orphan_clusters(ctx, report)
    report.expired_web_logins = web_logins.delete_expired(ctx)
    log.info(
        "cleanup done: %d sessions timed out, %d old batches and %d old sessions deleted, %d orphan runs killed",
        report.sessions_timed_out,
        report.deleted_batches,
        report.deleted_sessions,
        report.orphans_killed,
    )
    return report


def _end_timed_out_sessions(ctx: Context, report: CleanupReport) -> None:
    """Idle timeout, TTL and heartbeat timeout, as Livy has them (per-session values beat the defaults).

    A busy session is never ended for being idle: its statement is the activity. A session that never got a
    heartbeat never expires by heartbeat (Livy's rule).
    """
    now = ctx.clock.now()
    for page in sweep.pages(ctx, session_runs.live_page):
        with ctx.db.uow() as uow:
            rows = uow.sessions.load_many([r.id for r in page if r.state != SessionState.SHUTTING_DOWN])
        for row in rows:
            _end_if_timed_out(ctx, row, now, report)


def _end_if_timed_out(ctx: Context, row: Session, now: dt.datetime, report: CleanupReport) -> None:
    idle_limit = row.idle_timeout_s if row.idle_timeout_s is not None else ctx.settings.session_idle_timeout_seconds
    ttl = row.ttl_s if row.ttl_s is not None else ctx.settings.session_ttl_seconds
    why = None
    if ttl and (now - row.submitted_at).total_seconds() > ttl:
        why = f"its time to live ({ttl:.0f}s) ran out"
    elif row.state == SessionState.IDLE and idle_limit and (now - row.last_activity_at).total_seconds() > idle_limit:
        why = f"it was idle for more than {idle_limit:.0f}s"
    elif (
        row.heartbeat_timeout_s
        and row.last_heartbeat_at
        and ((now - row.last_heartbeat_at).total_seconds() > row.heartbeat_timeout_s)
    ):
        why = f"no heartbeat for more than {row.heartbeat_timeout_s}s"
    if why is not None:
        log.info("cleanup: stopping session %s because %s", row.id, why)
        sessions.kill(ctx, None, row.id, reason=FailureReason.TIMEOUT, message=f"stopped because {why}")
        report.sessions_timed_out += 1


def _delete_expired_sessions(ctx: Context, report: CleanupReport) -> None:
    cutoff = ctx.clock.now() - dt.timedelta(days=ctx.settings.retention_days)
    while True:
        with ctx.db.uow() as uow:
            rows = uow.sessions.finished_before(cutoff, DELETE_BATCH)
            for row in rows:
                if row.log_key:
                    ctx.blobs.delete(row.log_key)
                uow.sessions.delete(row)
            report.deleted_sessions += len(rows)
        if len(rows) < DELETE_BATCH:
            return


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
    """Runs alive on a backend that no unfinished batch or session owns (a row deleted, a crash mid-launch)."""
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    backends: list[tuple[str, ComputeBackend, str]] = [
        (name, ctx.backends.get(name), "batch") for name in ctx.backends.names()
    ] + [(name, ctx.backends.session(name), "session") for name in ctx.backends.session_names()]
    for name, backend, what in backends:
        alive = backend.active_external_ids()
        with ctx.db.uow() as uow:
            # Batch and session runs may share a run folder root: neither side kills the other's.
            owned = uow.batches.active_uids(name) | uow.sessions.active_uids(name)
        for external_id in sorted(alive - owned):
            log.warning("cleanup: %s %s run %s belongs to nothing unfinished; killing it", name, what, external_id)
            backend.cancel(Handle(name, external_id), grace=grace)
            report.orphans_killed += 1


def _stop_orphan_clusters(ctx: Context, report: CleanupReport) -> None:
    """Nodes of clusters that are terminated or deleted (a crash between the row and the machines)."""
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    with ctx.db.uow() as uow:
        # The configured provider, and any other that clusters were ever placed on; never one that is merely
        # known (an ec2 provider that nobody configured cannot even be built).
        names = {ctx.settings.cluster_provider} | uow.clusters.providers()
    for name in sorted(names & set(ctx.backends.cluster_names())):
        try:
            provider = ctx.backends.cluster(name)
        except SparkplaneError as exc:
            log.warning("cleanup: cluster provider %s is not usable, skipping its orphans: %s", name, exc)
            continue
        alive = provider.cluster_uids()
        if not alive:
            continue
        with ctx.db.uow() as uow:
            owned = uow.clusters.live_uids(name)
        for uid in sorted(alive - owned):
            log.warning("cleanup: %s cluster %s has live nodes but no live cluster; stopping them", name, uid)
            for node in provider.nodes(uid):
                provider.stop_node(uid, node.key, grace=grace)
            report.orphan_clusters_stopped += 1
