"""The fake backend real processes share: two instances on one folder (as the worker's and the watcher's are)
see the same runs, and the state moves with time."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from sparkplane.backends import fake_shared
from sparkplane.backends.base import TransientBackendError
from sparkplane.backends.fake_shared import SharedFakeBackend, SharedFakeSessionBackend
from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import Observed, StatementState

GRACE = dt.timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_shared, "QUEUED_SECONDS", 0.05)
    monkeypatch.setattr(fake_shared, "RUNNING_SECONDS", 0.1)
    monkeypatch.setattr(fake_shared, "STATEMENT_SECONDS", 0.05)


def test_a_batch_launched_by_one_process_is_observed_by_another(tmp_path: Path) -> None:
    worker, watcher = SharedFakeBackend(tmp_path), SharedFakeBackend(tmp_path)
    handle = worker.submit_batch(BatchSpec(file="job.py", secret_conf={"k": "s3cr3t"}), idempotency_key="k1")
    again = worker.submit_batch(BatchSpec(file="job.py"), idempotency_key="k1")
    assert again.extra["started"] == handle.extra["started"]  # a retried launch finds the first
    first = watcher.observe(handle)
    assert first is not None and first.state == Observed.QUEUED
    time.sleep(0.07)
    running = watcher.observe(handle)
    assert running is not None and running.state == Observed.RUNNING
    assert watcher.active_external_ids() == {"k1"}
    time.sleep(0.1)
    done = watcher.observe(handle)
    assert done is not None and done.state == Observed.SUCCEEDED
    assert "s3cr3t" not in "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert watcher.observe(type(handle)("fake", "unknown")) is None


def test_a_cancel_before_the_end_kills_the_batch_and_its_first_argument_sets_the_run_time(tmp_path: Path) -> None:
    backend = SharedFakeBackend(tmp_path)
    handle = backend.submit_batch(BatchSpec(file="job.py", args=("30",)), idempotency_key="long")
    time.sleep(0.2)
    running = backend.observe(handle)
    assert running is not None and running.state == Observed.RUNNING  # still running: 30 s asked for
    SharedFakeBackend(tmp_path).cancel(handle, grace=GRACE)
    cancelled = backend.observe(handle)
    assert cancelled is not None and cancelled.state == Observed.CANCELLED
    assert backend.active_external_ids() == set()
    assert backend.fetch_logs(handle) == "fake run long\n"


def test_a_session_and_its_statements_across_processes(tmp_path: Path) -> None:
    api, watcher = SharedFakeSessionBackend(tmp_path), SharedFakeSessionBackend(tmp_path)
    handle = api.start_session(SessionSpec(kind="pyspark"), idempotency_key="s1")
    starting = watcher.observe(handle)
    assert starting is not None and starting.state == Observed.STARTING and starting.connect_url is None
    time.sleep(0.07)
    idle = watcher.observe(handle)
    assert idle is not None and idle.state == Observed.IDLE and idle.connect_url
    api.submit_statement(handle, 1, "1 + 1", "pyspark")
    running = watcher.observe_statement(handle, 1)
    assert running is not None and running.state == StatementState.RUNNING
    time.sleep(0.07)
    done = watcher.observe_statement(handle, 1)
    assert done is not None and done.state == StatementState.AVAILABLE
    assert done.output == {"status": "ok", "execution_count": 1, "data": {"text/plain": "fake: 1 + 1"}}
    assert watcher.observe_statement(handle, 2) is None
    api.cancel(handle, grace=GRACE)
    stopped = watcher.observe(handle)
    assert stopped is not None and stopped.state == Observed.CANCELLED
    with pytest.raises(TransientBackendError):
        api.submit_statement(handle, 2, "2", "pyspark")
    assert watcher.active_external_ids() == set()
