"""Submit -> launch -> reconcile -> final, with every way it can go wrong: nothing lost, nothing run twice."""

from __future__ import annotations

import pytest

from sparkplane.backends.base import PermanentBackendError, TransientBackendError
from sparkplane.backends.fake import FakeBackend
from sparkplane.domain.states import BatchState, Observed
from sparkplane.services import batch_runs, batches, cleanup, dispatch
from sparkplane.services.batches import BatchRequest
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from tests.conftest import FakeClock, RecordingDispatcher

ALICE = Principal(2, "alice", False)


def submit(ctx: Context) -> int:
    return batches.submit(ctx, ALICE, BatchRequest(file="s3://bucket/app.py")).id


def state(ctx: Context, batch_id: int) -> str:
    return batches.get(ctx, ALICE, batch_id).state.value


def launched(ctx: Context, fake_backend: FakeBackend, observed: Observed, count: int = 1) -> list[int]:
    """`count` batches submitted and launched, each of which its backend now reports as `observed`."""
    ids = [submit(ctx) for _ in range(count)]
    for batch_id in ids:
        batch_runs.launch(ctx, batch_id)
    for key in fake_backend.runs:
        fake_backend.set_state(key, observed)
    return ids


def outbox(ctx: Context) -> list[tuple[str, int]]:
    with ctx.db.uow() as uow:
        return [(e.task, e.entity_id) for e in uow.outbox.pending(100, skip_locked=False)]


def test_the_api_publishes_after_commit_and_keeps_nothing_in_the_outbox(
    ctx: Context, dispatcher: RecordingDispatcher
) -> None:
    batch_id = submit(ctx)
    assert dispatcher.published == [(dispatch.LAUNCH_BATCH, batch_id)]
    assert outbox(ctx) == []


def test_broker_down_keeps_the_entry_and_the_watcher_relays_it(ctx: Context, dispatcher: RecordingDispatcher) -> None:
    dispatcher.broker_up = False
    batch_id = submit(ctx)  # accepted all the same
    assert state(ctx, batch_id) == "not_started"
    assert outbox(ctx) == [(dispatch.LAUNCH_BATCH, batch_id)]
    batch_runs.watcher_pass(ctx)
    assert outbox(ctx) == [(dispatch.LAUNCH_BATCH, batch_id)]  # still down: still kept
    dispatcher.broker_up = True
    batch_runs.watcher_pass(ctx)
    assert dispatcher.published == [(dispatch.LAUNCH_BATCH, batch_id)]
    assert outbox(ctx) == []


def test_a_lost_message_is_enqueued_again_and_the_launch_runs_once(
    ctx: Context, dispatcher: RecordingDispatcher, fake_backend: FakeBackend
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    batch_id = submit(ctx)
    dispatcher.published.clear()  # the broker lost it
    batch_runs.watcher_pass(ctx)
    assert dispatcher.published == []  # too early to tell lost from slow
    clock.advance(ctx.settings.redispatch_after_seconds + 1)
    batch_runs.watcher_pass(ctx)
    assert dispatcher.published == [(dispatch.LAUNCH_BATCH, batch_id)]
    batch_runs.watcher_pass(ctx)
    assert len(dispatcher.published) == 1  # not again right away
    # Both the original and the re-sent message get delivered: one launch.
    batch_runs.launch(ctx, batch_id)
    batch_runs.launch(ctx, batch_id)
    assert list(fake_backend.submissions.values()) == [1]


def test_a_worker_that_died_after_submitting_is_covered_by_the_idempotency_key(
    ctx: Context, fake_backend: FakeBackend
) -> None:
    batch_id = submit(ctx)
    with ctx.db.uow() as uow:
        uid = uow.batches.get(batch_id).uid  # type: ignore[union-attr]
    fake_backend.submit_batch(batches.spec_of_request(ctx, batch_id), idempotency_key=uid)  # launched, then died
    batch_runs.launch(ctx, batch_id)  # the retry
    assert fake_backend.submissions[uid] == 2 and len(fake_backend.runs) == 1
    assert state(ctx, batch_id) == "starting"


def test_transient_errors_propagate_for_retry_and_change_nothing(ctx: Context, fake_backend: FakeBackend) -> None:
    batch_id = submit(ctx)
    fake_backend.fail_next(TransientBackendError("throttled", retry_after=2))
    with pytest.raises(TransientBackendError):
        batch_runs.launch(ctx, batch_id)
    assert state(ctx, batch_id) == "not_started"
    batch_runs.launch(ctx, batch_id)
    fake_backend.fail_next(TransientBackendError("503"))
    batch_runs.watcher_pass(ctx)  # the loop survives it
    assert state(ctx, batch_id) == "starting"


def test_permanent_submit_errors_fail_the_batch_with_the_reason(ctx: Context, fake_backend: FakeBackend) -> None:
    batch_id = submit(ctx)
    fake_backend.fail_next(PermanentBackendError("no such file: s3://bucket/app.py"))
    batch_runs.launch(ctx, batch_id)
    view = batches.get(ctx, ALICE, batch_id)
    assert view.state == BatchState.DEAD and view.failure_reason == "SUBMIT_ERROR"
    assert view.message == "no such file: s3://bucket/app.py"


def test_unknown_vendor_states_wait(ctx: Context, fake_backend: FakeBackend) -> None:
    batch_id = submit(ctx)
    batch_runs.launch(ctx, batch_id)
    fake_backend.set_state(next(iter(fake_backend.runs)), Observed.UNKNOWN, "PENDING_QUANTUM")
    batch_runs.reconcile(ctx, batch_id)
    view = batches.get(ctx, ALICE, batch_id)
    assert view.state == BatchState.STARTING and view.native_state == "PENDING_QUANTUM"


def test_a_run_the_backend_forgot_is_lost_only_after_zombie_after(ctx: Context, fake_backend: FakeBackend) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    batch_id = submit(ctx)
    batch_runs.launch(ctx, batch_id)
    fake_backend.forget(next(iter(fake_backend.runs)))
    batch_runs.reconcile(ctx, batch_id)
    assert state(ctx, batch_id) == "starting"
    clock.advance(ctx.settings.zombie_after_seconds + 1)
    batch_runs.reconcile(ctx, batch_id)
    view = batches.get(ctx, ALICE, batch_id)
    assert view.state == BatchState.DEAD and view.failure_reason == "LOST"


def test_a_lost_race_changes_nothing(ctx: Context, fake_backend: FakeBackend) -> None:
    batch_id = submit(ctx)
    with ctx.db.uow() as uow:
        stale = uow.batches.get(batch_id)
    batches.kill(ctx, ALICE, batch_id)  # someone else moves it first
    with ctx.db.uow() as uow:
        assert stale is not None
        stale.state = BatchState.NOT_STARTED  # what the slow process believed
        uow.db.add(stale)
        assert uow.batches.transition(stale, BatchState.STARTING, ctx.clock.now()) is False
    assert state(ctx, batch_id) == "killed"


def test_cancel_requests_are_retried_when_a_run_will_not_stop(
    ctx: Context, dispatcher: RecordingDispatcher, fake_backend: FakeBackend
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    batch_id = submit(ctx)
    batch_runs.launch(ctx, batch_id)
    fake_backend.set_state(next(iter(fake_backend.runs)), Observed.RUNNING)
    batches.kill(ctx, ALICE, batch_id)
    assert dispatcher.published[-1] == (dispatch.CANCEL_BATCH, batch_id)
    dispatcher.published.clear()  # the cancel message was lost
    clock.advance(ctx.settings.cancel_grace_seconds + ctx.settings.redispatch_after_seconds + 1)
    batch_runs.watcher_pass(ctx)
    assert dispatcher.published == [(dispatch.CANCEL_BATCH, batch_id)]
    batch_runs.cancel(ctx, batch_id)
    assert state(ctx, batch_id) == "killed"


def test_cleanup_kills_orphans_and_deletes_expired_rows_idempotently(ctx: Context, fake_backend: FakeBackend) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    batch_id = submit(ctx)
    batch_runs.launch(ctx, batch_id)
    key = next(iter(fake_backend.runs))
    fake_backend.set_state(key, Observed.SUCCEEDED)
    batch_runs.reconcile(ctx, batch_id)
    orphan = fake_backend.submit_batch(batches.spec_of_request(ctx, batch_id), idempotency_key="orphan")

    report = cleanup.run_cleanup(ctx)
    assert report.orphans_killed == 1 and report.deleted_batches == 0
    assert fake_backend.runs[orphan.external_id].cancelled
    assert cleanup.run_cleanup(ctx).orphans_killed == 0  # idempotent

    clock.advance(ctx.settings.retention_days * 86400 + 1)
    assert cleanup.run_cleanup(ctx).deleted_batches == 1
    assert cleanup.run_cleanup(ctx).deleted_batches == 0
    assert not ctx.blobs.exists(f"logs/batches/{key}/driver.log")


def observed_at(ctx: Context, batch_id: int) -> object:
    with ctx.db.uow() as uow:
        row = uow.batches.get(batch_id)
        assert row is not None
        return row.last_observed_at


def test_a_pass_writes_nothing_for_a_quiet_row_until_its_stamp_grows_old(
    ctx: Context, fake_backend: FakeBackend
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    [batch_id] = launched(ctx, fake_backend, Observed.RUNNING)
    assert batch_runs.watcher_pass(ctx) == 1
    assert state(ctx, batch_id) == "running"
    stamped = observed_at(ctx, batch_id)
    assert stamped == clock.now()
    clock.advance(1)
    assert batch_runs.watcher_pass(ctx) == 1  # observed, and it said nothing new: no write
    assert observed_at(ctx, batch_id) == stamped
    clock.advance(ctx.settings.zombie_after_seconds / 4)
    batch_runs.watcher_pass(ctx)
    assert observed_at(ctx, batch_id) == clock.now()  # an old stamp is renewed


def test_a_row_its_backend_cannot_observe_holds_back_no_other(ctx: Context, fake_backend: FakeBackend) -> None:
    ids = launched(ctx, fake_backend, Observed.RUNNING, 3)
    fake_backend.fail_next(TransientBackendError("the vendor API timed out"))
    assert batch_runs.watcher_pass(ctx) == 3
    assert [state(ctx, i) for i in ids] == ["starting", "running", "running"]  # the first look failed
    batch_runs.watcher_pass(ctx)
    assert [state(ctx, i) for i in ids] == ["running"] * 3


def test_a_row_that_fails_to_settle_holds_back_no_other(
    ctx: Context, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = launched(ctx, fake_backend, Observed.SUCCEEDED, 3)
    real_collect = batch_runs._collect_log

    def collect(ctx: Context, batch: object, handle: object) -> object:
        if getattr(batch, "id", None) == ids[1]:
            raise RuntimeError("the blob store refused the log")
        return real_collect(ctx, batch, handle)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_runs, "_collect_log", collect)
    batch_runs.watcher_pass(ctx)  # the page's transaction fails; its rows are settled one by one
    assert [state(ctx, i) for i in ids] == ["success", "starting", "success"]
    monkeypatch.setattr(batch_runs, "_collect_log", real_collect)
    batch_runs.watcher_pass(ctx)
    assert [state(ctx, i) for i in ids] == ["success"] * 3
