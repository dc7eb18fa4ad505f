"""What the worker and the interactive watcher do with sessions: launch, stop, reconcile, time out.

Idempotent and safe to run twice at once, like batch_runs: the backend's idempotency key is the row's uid,
and every state change is a compare-and-set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sparkplane.backends.base import Handle, Observation, PermanentBackendError
from sparkplane.db.models import Session
from sparkplane.db.repositories.tracking import LiveRow
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.states import (
    SESSION_TERMINAL,
    FailureReason,
    Observed,
    SessionState,
    StatementState,
    next_session_state,
)
from sparkplane.services import credentials, dispatch, faults, placement, sessions, statements, sweep
from sparkplane.services.context import Context

log = logging.getLogger(__name__)
_READY = (SessionState.IDLE, SessionState.BUSY)


def launch(ctx: Context, session_id: int) -> None:
    with ctx.db.uow() as uow:
        row = uow.sessions.get(session_id)
        if row is None or row.state != SessionState.NOT_STARTED or row.handle is not None:
            return
        spec, backend_name, key = sessions.spec_of(row), row.backend, row.uid
        if row.cluster_id is not None:
            placed, refused = placement.on_cluster(uow, row.cluster_id, spec, ctx.settings)
            if refused is not None:
                failed = uow.sessions.get(session_id, for_update=True)
                if failed is not None:
                    uow.sessions.transition(
                        failed, SessionState.ERROR, ctx.clock.now(), reason=FailureReason.SUBMIT_ERROR, message=refused
                    )
                return
            if placed is None:
                return  # the cluster is starting; it enqueues this launch again once it runs
            spec = placed
        owner_id, wanted = row.owner_id, list(row.request.get("credentials") or ())
    faults.point("worker.before_session_launch", ctx.settings.data_dir)
    backend = ctx.backends.session(backend_name)
    try:
        # As for batches: decrypted only into the spec the backend gets (which then starts it cold, not pooled).
        spec = replace(spec, secret_conf=credentials.secret_conf(ctx, owner_id, wanted))
        handle = backend.start_session(spec, idempotency_key=key)
    except (PermanentBackendError, credentials.UnusableCredential) as exc:
        with ctx.db.uow() as uow:
            row = uow.sessions.get(session_id, for_update=True)
            if row is not None:
                uow.sessions.transition(
                    row, SessionState.ERROR, ctx.clock.now(), reason=FailureReason.SUBMIT_ERROR, message=str(exc)
                )
        return
    faults.point("worker.after_session_launch", ctx.settings.data_dir)
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = uow.sessions.get(session_id, for_update=True)
        if row is None:
            backend.cancel(handle, grace=_grace(ctx))
            return
        if row.handle is None:
            uow.sessions.set_fields(row, handle=handle.to_json())
        moved = uow.sessions.transition(row, SessionState.STARTING, now, message="launched", last_observed_at=now)
        stopped_meanwhile = not moved and row.state in (*SESSION_TERMINAL, SessionState.SHUTTING_DOWN)
    if stopped_meanwhile:
        log.info("session %s was stopped while it launched; stopping its agent", session_id)
        backend.cancel(handle, grace=_grace(ctx))
        return
    # A warm agent is ready the moment it is claimed: look now rather than at the watcher's next pass.
    reconcile(ctx, session_id)


def stop(ctx: Context, session_id: int) -> None:
    with ctx.db.uow() as uow:
        row = uow.sessions.get(session_id)
        if row is None or row.handle is None or row.state in SESSION_TERMINAL:
            return
        handle, backend_name = Handle.from_json(row.handle), row.backend
    ctx.backends.session(backend_name).cancel(handle, grace=_grace(ctx))
    reconcile(ctx, session_id)


def reconcile(ctx: Context, session_id: int) -> None:
    """Observe one session's agent, move the row, then hand over and refresh its statements."""
    with ctx.db.uow() as uow:
        row = uow.sessions.get(session_id, for_update=True, skip_locked=uow.skip_locked)
        if row is None:
            return
        handle = Handle.from_json(row.handle) if row.handle is not None else None
        backend = ctx.backends.session(row.backend)
        follow_up = _settle(ctx, uow, row, lambda: backend.observe(handle) if handle else None, ctx.clock.now())
    if follow_up is not None:
        follow_up()


def _settle(
    ctx: Context, uow: UnitOfWork, row: Session, observe: sweep.Observe, now: dt.datetime
) -> sweep.FollowUp | None:
    """Move the locked row to match its agent; returns the statement work to do once this commits."""
    if row.state in SESSION_TERMINAL:
        return None
    if row.handle is None:
        _redispatch_if_stale(ctx, uow, row, now)
        return None
    handle = Handle.from_json(row.handle)
    observation = observe()
    if observation is None:
        _lost(ctx, uow, row, now)
        return None
    fields = _observed_fields(row, observation, now)
    stop_requested = row.cancel_requested_at is not None
    target = next_session_state(SessionState(row.state), observation.state, stop_requested=stop_requested)
    if target is None:
        uow.sessions.set_fields(row, **fields)
        _start_timeout(ctx, uow, row, now)
    else:
        if target in SESSION_TERMINAL:
            fields["log_key"] = _collect_log(ctx, row, handle)
            _end_statements(uow, row.id, now)
        reason = FailureReason.BACKEND_FAILED if target in (SessionState.ERROR, SessionState.DEAD) else None
        faults.point(f"session_reconcile.before_{target.value}", ctx.settings.data_dir)  # row locked, not written
        uow.sessions.transition(
            row, target, now, reason=reason if not stop_requested else None, message=observation.message, **fields
        )
    state, backend_name, session_id = SessionState(row.state), row.backend, row.id
    pending = [(s.number, s.submitted) for s in uow.statements.unfinished(row.id)] if state in _READY else []
    if not pending:
        return None

    def drive_statements() -> None:
        for number, submitted in pending:
            if submitted:
                statements.refresh(ctx, session_id, backend_name, handle, number)
            elif not statements.hand_over(ctx, session_id, backend_name, handle, number):
                break  # keep the order: later statements wait for this one

    return drive_statements


def live_page(uow: UnitOfWork, after_id: int, limit: int) -> list[LiveRow]:
    """Every live session, a page at a time (for sweep.pages): what the watcher, a restart and cleanup walk."""
    return uow.sessions.live_page(after_id, limit)


class _Tracking:
    """Sessions as `sweep` sees them: a row is quiet when its agent says what the row already says, it has no
    statement to hand over or refresh, and it is not waiting out a start timeout."""

    entity = "session"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    page = staticmethod(live_page)

    def observe(self, backend: str, handle: Handle) -> Observation | None:
        return self.ctx.backends.session(backend).observe(handle)

    def quiet(self, uow: UnitOfWork, seen: Sequence[sweep.Seen]) -> set[int]:
        busy = uow.statements.sessions_with_unfinished(seen[0].row.id, seen[-1].row.id) if seen else set()
        return {
            s.row.id
            for s in seen
            if s.row.id not in busy
            and s.row.state != SessionState.STARTING
            and sweep.unchanged(s.observation, s.row)
            and next_session_state(
                SessionState(s.row.state), s.observation.state, stop_requested=s.row.cancel_requested_at is not None
            )
            is None
        }

    def mark_observed(self, uow: UnitOfWork, ids: Sequence[int], now: dt.datetime) -> None:
        uow.sessions.mark_observed(ids, now, skip_locked=uow.skip_locked)

    def lock(self, uow: UnitOfWork, ids: Sequence[int]) -> Sequence[Session]:
        return uow.sessions.lock_many(ids, skip_locked=uow.skip_locked)

    def settle(self, uow: UnitOfWork, row: Session, observe: sweep.Observe, now: dt.datetime) -> sweep.FollowUp | None:
        return _settle(self.ctx, uow, row, observe, now)

    def reconcile(self, row_id: int) -> None:
        reconcile(self.ctx, row_id)


def _observed_fields(row: Session, obs: Observation, now: dt.datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {"last_observed_at": now, "native_state": obs.native_state}
    if obs.spark_app_id and obs.spark_app_id != row.app_id:
        fields["app_id"] = obs.spark_app_id
    if obs.ui_url and obs.ui_url != row.ui_url:
        fields["ui_url"] = obs.ui_url
    if obs.state == Observed.UNKNOWN:
        # A session being stopped goes through such states every time (its agent says 'stopping', then stops
        # answering): a warning there is noise in every DELETE. Anywhere else it is news.
        level = logging.INFO if row.state == SessionState.SHUTTING_DOWN else logging.WARNING
        log.log(level, "session %s: agent state %r decides nothing yet; waiting", row.id, obs.native_state)
    return fields


def _end_statements(uow: UnitOfWork, session_id: int, now: dt.datetime) -> None:
    """A session that ended takes its unfinished statements with it: they end cancelled, never hang."""
    for statement in uow.statements.unfinished(session_id):
        uow.statements.transition(statement, StatementState.CANCELLED, now)


def _collect_log(ctx: Context, row: Session, handle: Handle) -> str | None:
    try:
        text = ctx.backends.session(row.backend).fetch_logs(handle)
    except Exception:  # a log we cannot fetch must not keep a finished session from finishing
        log.exception("session %s: could not fetch the driver log", row.id)
        return None
    if text is None:
        return None
    key = f"{sessions.LOG_PREFIX}/{row.uid}/driver.log"
    ctx.blobs.put_text(key, text)
    return key


def _redispatch_if_stale(ctx: Context, uow: UnitOfWork, row: Session, now: dt.datetime) -> None:
    last = row.last_observed_at or row.submitted_at
    if row.state != SessionState.NOT_STARTED or (now - last).total_seconds() < ctx.settings.redispatch_after_seconds:
        return
    if uow.outbox.has_pending(dispatch.LAUNCH_SESSION, row.id):
        return
    log.warning("session %s: not launched yet; enqueueing the launch again", row.id)
    dispatch.enqueue(uow, ctx, dispatch.LAUNCH_SESSION, row.id)
    uow.sessions.set_fields(row, last_observed_at=now)


def _lost(ctx: Context, uow: UnitOfWork, row: Session, now: dt.datetime) -> None:
    seen = row.last_observed_at or row.submitted_at
    if (now - seen).total_seconds() < ctx.settings.zombie_after_seconds:
        return
    target = SessionState.ERROR if row.state in (SessionState.NOT_STARTED, SessionState.STARTING) else SessionState.DEAD
    _end_statements(uow, row.id, now)
    uow.sessions.transition(
        row, target, now, reason=FailureReason.LOST, message="the backend has no record of this session any more"
    )


def _start_timeout(ctx: Context, uow: UnitOfWork, row: Session, now: dt.datetime) -> None:
    if row.state != SessionState.STARTING:
        return
    if (now - row.submitted_at).total_seconds() > ctx.settings.session_start_timeout_seconds:
        uow.sessions.transition(
            row,
            SessionState.SHUTTING_DOWN,
            now,
            reason=FailureReason.START_TIMEOUT,
            message="the session did not start in time",
            cancel_requested_at=now,
        )
        dispatch.enqueue(uow, ctx, dispatch.STOP_SESSION, row.id)


def _grace(ctx: Context) -> dt.timedelta:
    return dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)


def watcher_pass(ctx: Context) -> int:
    """One pass of the interactive watcher: relay the outbox, observe every live session, keep the warm pool full."""
    dispatch.relay(ctx)
    seen = sweep.Sweep(ctx, _Tracking(ctx)).run()
    # Only the backend new sessions go to keeps warm agents: another enabled one would start Spark drivers
    # that no session can claim (with SPARKPLANE_BACKEND=fake, local JVMs nobody asked for).
    name = ctx.settings.backend
    if name in ctx.backends.session_names():
        refill = getattr(ctx.backends.session(name), "refill_pool", None)
        if refill is not None:
            try:
                refill()
            except Exception:
                log.exception("backend %s: refilling the warm pool failed", name)
    dispatch.relay(ctx)
    return seen


def mark_recovering(ctx: Context) -> int:
    """At a watcher's start: running sessions show `recovering` until their agent is observed again (Livy)."""
    moved = 0
    for page in sweep.pages(ctx, live_page):
        ready = [r.id for r in page if r.state in _READY]
        with ctx.db.uow() as uow:
            for row in uow.sessions.lock_many(ready, skip_locked=False):
                if row.state in _READY and uow.sessions.transition(
                    row, SessionState.RECOVERING, ctx.clock.now(), message="the control plane restarted"
                ):
                    moved += 1
    return moved


def stop_all(ctx: Context, *, reason: str) -> int:
    """Stop every unfinished session now and empty the warm pools (`sparkplane up` stopping)."""
    stopped = 0
    due = [row.id for page in sweep.pages(ctx, live_page) for row in page]
    for session_id in due:
        sessions.kill(ctx, None, session_id, message=reason)
        stop(ctx, session_id)
        with ctx.db.uow() as uow:
            row = uow.sessions.get(session_id, for_update=True)
            if row is not None and row.state not in SESSION_TERMINAL:
                uow.sessions.transition(row, SessionState.DEAD, ctx.clock.now(), message=reason)
        stopped += 1
    for name in ctx.backends.session_names():
        drain = getattr(ctx.backends.session(name), "drain_pool", None)
        if drain is not None:
            drain()
    return stopped
