"""What the worker and the batch watcher do with batches: launch, cancel, reconcile, collect logs.

Every function here is idempotent and safe to run twice at once: the backend's idempotency key (the row's
uid) makes a second launch find the first, and every state change is a compare-and-set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sparkplane.backends.base import Handle, Observation, PermanentBackendError
from sparkplane.db.models import Batch
from sparkplane.db.repositories.tracking import LiveRow
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.states import BATCH_TERMINAL, BatchState, FailureReason, Observed, next_batch_state
from sparkplane.services import batches, credentials, dispatch, faults, metrics, placement, sweep
from sparkplane.services.context import Context

log = logging.getLogger(__name__)


def launch(ctx: Context, batch_id: int) -> None:
    """Start the batch on its backend, once. TransientBackendError propagates, so Celery retries."""
    with ctx.db.uow() as uow:
        batch = uow.batches.get(batch_id)
        if batch is None or batch.state != BatchState.NOT_STARTED or batch.handle is not None:
            return  # gone, killed, or already launched: a redelivered message
        spec, backend_name, key = batches.spec_of(batch), batch.backend, batch.uid
        if batch.cluster_id is not None:
            placed, refused = placement.on_cluster(uow, batch.cluster_id, spec, ctx.settings)
            if refused is not None:
                failed = uow.batches.get(batch_id, for_update=True)
                if failed is not None:
                    uow.batches.transition(
                        failed, BatchState.DEAD, ctx.clock.now(), reason=FailureReason.SUBMIT_ERROR, message=refused
                    )
                return
            if placed is None:
                return  # the cluster is starting; it enqueues this launch again once it runs
            spec = placed
        owner_id, wanted = batch.owner_id, list(batch.request.get("credentials") or ())
    faults.point("worker.before_launch", ctx.settings.data_dir)
    backend = ctx.backends.get(backend_name)
    try:
        # Decrypted only here, in the worker, and only into the spec the backend gets; never onto the row.
        spec = replace(spec, secret_conf=credentials.secret_conf(ctx, owner_id, wanted))
        handle = backend.submit_batch(spec, idempotency_key=key)
    except (PermanentBackendError, credentials.UnusableCredential) as exc:
        with ctx.db.uow() as uow:
            row = uow.batches.get(batch_id, for_update=True)
            if row is not None:
                uow.batches.transition(
                    row, BatchState.DEAD, ctx.clock.now(), reason=FailureReason.SUBMIT_ERROR, message=str(exc)
                )
        return
    faults.point("worker.after_launch", ctx.settings.data_dir)
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = uow.batches.get(batch_id, for_update=True)
        if row is None:
            backend.cancel(handle, grace=_grace(ctx))
            return
        if row.handle is None:
            uow.batches.set_fields(row, handle=handle.to_json())
        moved = uow.batches.transition(
            row, BatchState.STARTING, now, reason=None, message="launched", last_observed_at=now
        )
        killed_meanwhile = not moved and row.state == BatchState.KILLED
    if killed_meanwhile:
        log.info("batch %s was killed while it launched; stopping it", batch_id)
        backend.cancel(handle, grace=_grace(ctx))


def cancel(ctx: Context, batch_id: int) -> None:
    with ctx.db.uow() as uow:
        batch = uow.batches.get(batch_id)
        if batch is None or batch.state in BATCH_TERMINAL or batch.handle is None:
            return
        handle, backend_name = Handle.from_json(batch.handle), batch.backend
    faults.point("worker.before_cancel", ctx.settings.data_dir)
    ctx.backends.get(backend_name).cancel(handle, grace=_grace(ctx))
    faults.point("worker.after_cancel", ctx.settings.data_dir)
    reconcile(ctx, batch_id)  # record `killed` now rather than at the watcher's next pass


def reconcile(ctx: Context, batch_id: int) -> None:
    """Observe one batch on its backend and move its row to match. Transient errors propagate to the caller."""
    with ctx.db.uow() as uow:
        batch = uow.batches.get(batch_id, for_update=True, skip_locked=uow.skip_locked)
        if batch is None:
            return
        handle = Handle.from_json(batch.handle) if batch.handle is not None else None
        backend = ctx.backends.get(batch.backend)
        _settle(ctx, uow, batch, lambda: backend.observe(handle) if handle else None, ctx.clock.now())


def _settle(ctx: Context, uow: UnitOfWork, batch: Batch, observe: sweep.Observe, now: dt.datetime) -> None:
    """Move the locked row to match what its backend says."""
    if batch.state in BATCH_TERMINAL:
        return
    if batch.handle is None:
        _redispatch_if_stale(ctx, uow, batch, now)
        return
    handle = Handle.from_json(batch.handle)
    observation = observe()
    if observation is None:
        _lost(ctx, uow, batch, now)
        return
    fields = _observed_fields(batch, observation, now)
    target = next_batch_state(BatchState(batch.state), observation.state)
    if target is None:
        uow.batches.set_fields(batch, **fields)
        _retry_cancel_if_stuck(ctx, uow, batch, now)
        return
    if target not in BATCH_TERMINAL:
        _retry_cancel_if_stuck(ctx, uow, batch, now)
    if target in BATCH_TERMINAL:
        fields["log_key"] = _collect_log(ctx, batch, handle)
        if target != BatchState.SUCCESS:
            fields["failure_reason"] = (
                FailureReason.USER_REQUEST if target == BatchState.KILLED else FailureReason.BACKEND_FAILED
            )
    # The row is locked and nothing is written yet: a kill here must leave the transition to a retry.
    faults.point(f"batch_reconcile.before_{target.value}", ctx.settings.data_dir)
    moved = uow.batches.transition(
        batch, target, now, reason=fields.get("failure_reason"), message=observation.message, **fields
    )
    if moved and target == BatchState.RUNNING:
        metrics.BATCH_LAUNCH_SECONDS.observe((now - batch.submitted_at).total_seconds())


def _live_page(uow: UnitOfWork, after_id: int, limit: int) -> list[LiveRow]:
    return uow.batches.live_page(after_id, limit)


class _Tracking:
    """Batches as `sweep` sees them: a row is quiet when its backend says what the row already says and no
    kill request is waiting on it."""

    entity = "batch"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    page = staticmethod(_live_page)

    def observe(self, backend: str, handle: Handle) -> Observation | None:
        return self.ctx.backends.get(backend).observe(handle)

    def quiet(self, uow: UnitOfWork, seen: Sequence[sweep.Seen]) -> set[int]:
        return {
            s.row.id
            for s in seen
            if s.row.cancel_requested_at is None
            and sweep.unchanged(s.observation, s.row)
            and next_batch_state(BatchState(s.row.state), s.observation.state) is None
        }

    def mark_observed(self, uow: UnitOfWork, ids: Sequence[int], now: dt.datetime) -> None:
        uow.batches.mark_observed(ids, now, skip_locked=uow.skip_locked)

    def lock(self, uow: UnitOfWork, ids: Sequence[int]) -> Sequence[Batch]:
        return uow.batches.lock_many(ids, skip_locked=uow.skip_locked)

    def settle(self, uow: UnitOfWork, row: Batch, observe: sweep.Observe, now: dt.datetime) -> sweep.FollowUp | None:
        _settle(self.ctx, uow, row, observe, now)
        return None

    def reconcile(self, row_id: int) -> None:
        reconcile(self.ctx, row_id)


def _observed_fields(batch: Batch, obs: Observation, now: dt.datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {"last_observed_at": now, "native_state": obs.native_state}
    if obs.spark_app_id and obs.spark_app_id != batch.app_id:
        fields["app_id"] = obs.spark_app_id
    if obs.ui_url and obs.ui_url != batch.ui_url:
        fields["ui_url"] = obs.ui_url
    if obs.state == Observed.UNKNOWN:
        log.warning("batch %s: backend state %r is unknown to sparkplane; waiting", batch.id, obs.native_state)
    return fields


def _collect_log(ctx: Context, batch: Batch, handle: Handle) -> str | None:
    """Copy the driver log into blob storage, so it outlives the run's own files."""
    try:
        text = ctx.backends.get(batch.backend).fetch_logs(handle)
    except Exception:  # a log we cannot fetch must not keep a finished batch from finishing
        log.exception("batch %s: could not fetch the driver log", batch.id)
        return None
    if text is None:
        return None
    key = batches.log_key(batch)
    ctx.blobs.put_text(key, text)
    return key


def _redispatch_if_stale(ctx: Context, uow: UnitOfWork, batch: Batch, now: dt.datetime) -> None:
    age = (now - batch.submitted_at).total_seconds()
    last = batch.last_observed_at
    recently = last is not None and (now - last).total_seconds() < ctx.settings.redispatch_after_seconds
    if batch.state != BatchState.NOT_STARTED or age < ctx.settings.redispatch_after_seconds or recently:
        return
    if uow.outbox.has_pending(dispatch.LAUNCH_BATCH, batch.id):
        return  # the relay will publish it
    # The broker lost the message (or a worker died holding it): enqueue the launch again. Launches are
    # idempotent, so a message that was only late does no harm.
    log.warning("batch %s: not launched %.0fs after submission; enqueueing the launch again", batch.id, age)
    dispatch.enqueue(uow, ctx, dispatch.LAUNCH_BATCH, batch.id)
    uow.batches.set_fields(batch, last_observed_at=now)


def _lost(ctx: Context, uow: UnitOfWork, batch: Batch, now: dt.datetime) -> None:
    seen = batch.last_observed_at or batch.submitted_at
    if (now - seen).total_seconds() < ctx.settings.zombie_after_seconds:
        return
    uow.batches.transition(
        batch,
        BatchState.DEAD,
        now,
        reason=FailureReason.LOST,
        message="the backend has no record of this batch any more",
    )


def _retry_cancel_if_stuck(ctx: Context, uow: UnitOfWork, batch: Batch, now: dt.datetime) -> None:
    requested = batch.cancel_requested_at
    if requested is None:
        return
    waited = (now - requested).total_seconds()
    if (
        waited > ctx.settings.cancel_grace_seconds + ctx.settings.redispatch_after_seconds
        and not uow.outbox.has_pending(dispatch.CANCEL_BATCH, batch.id)
    ):
        log.warning("batch %s: still running %.0fs after a kill request; asking again", batch.id, waited)
        dispatch.enqueue(uow, ctx, dispatch.CANCEL_BATCH, batch.id)
        uow.batches.set_fields(batch, cancel_requested_at=now)


def _grace(ctx: Context) -> dt.timedelta:
    return dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)


def watcher_pass(ctx: Context) -> int:
    """One pass of the batch watcher: relay the outbox, then observe every unfinished batch."""
    dispatch.relay(ctx)
    seen = sweep.Sweep(ctx, _Tracking(ctx)).run()
    dispatch.relay(ctx)  # publish what this pass enqueued
    return seen


def stop_active(ctx: Context, *, reason: str) -> int:
    """Kill every unfinished batch now (used when `sparkplane up` stops without --keep-apps)."""
    stopped = 0
    due = [row.id for page in sweep.pages(ctx, _live_page) for row in page]
    for batch_id in due:
        with ctx.db.uow() as uow:
            batch = uow.batches.get(batch_id, for_update=True)
            if batch is None or batch.state in BATCH_TERMINAL:
                continue
            handle = Handle.from_json(batch.handle) if batch.handle else None
            backend_name = batch.backend
            uow.batches.set_fields(batch, cancel_requested_at=ctx.clock.now())
        if handle is not None:
            ctx.backends.get(backend_name).cancel(handle, grace=_grace(ctx))
            reconcile(ctx, batch_id)
        with ctx.db.uow() as uow:
            batch = uow.batches.get(batch_id, for_update=True)
            if batch is not None and batch.state not in BATCH_TERMINAL:
                uow.batches.transition(
                    batch, BatchState.KILLED, ctx.clock.now(), reason=FailureReason.USER_REQUEST, message=reason
                )
        stopped += 1
    return stopped
