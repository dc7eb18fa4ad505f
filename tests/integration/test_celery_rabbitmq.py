"""Celery on the machine's real RabbitMQ: the API publishes, a real worker consumes, the watcher finishes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from kombu import Connection
from kombu.exceptions import ChannelError
from pydantic import SecretStr

from sparkplane.backends.fake import FakeBackend
from sparkplane.domain.states import BatchState, Observed
from sparkplane.services import batch_runs, batches
from sparkplane.services.batches import BatchRequest
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from sparkplane.settings import load_settings
from sparkplane.worker import tasks
from sparkplane.worker.celery_app import QUEUE, CeleryDispatcher, make_celery

pytestmark = pytest.mark.rabbitmq
ALICE = Principal(2, "alice", False)


@pytest.fixture
def amqp_url() -> str:
    url = os.environ.get("SPARKPLANE_TEST_AMQP_URL")
    if not url:
        pytest.fail("SPARKPLANE_TEST_AMQP_URL is not set: run the suite with scripts/test, which starts RabbitMQ")
    with Connection(url) as conn:
        # Start from no queue at all: whatever an earlier run left (messages, other arguments) is gone,
        # and Celery declares the queue its own way.
        channel = conn.channel()
        try:
            channel.queue_delete(QUEUE)
        except ChannelError:  # the queue does not exist yet
            pass
        finally:
            channel.close()
    return url


@pytest.fixture
def celery_ctx(ctx: Context, amqp_url: str) -> Iterator[Context]:
    ctx.settings.broker_url = SecretStr(amqp_url)
    app = make_celery(ctx.settings)
    ctx.dispatcher = CeleryDispatcher(app)
    tasks.install_context(ctx)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        yield ctx


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("db_kind", ["postgres"], indirect=True)
def test_submit_is_launched_by_a_real_worker_and_reconciled_to_success(
    celery_ctx: Context, fake_backend: FakeBackend
) -> None:
    batch_id = batches.submit(celery_ctx, ALICE, BatchRequest(file="s3://bucket/app.py")).id
    wait_for(lambda: batches.get(celery_ctx, ALICE, batch_id).state == BatchState.STARTING)
    key = next(iter(fake_backend.runs))
    fake_backend.set_state(key, Observed.SUCCEEDED)
    batch_runs.watcher_pass(celery_ctx)
    assert batches.get(celery_ctx, ALICE, batch_id).state == BatchState.SUCCESS
    assert fake_backend.submissions[key] == 1

    # A kill goes through the queue too.
    other = batches.submit(celery_ctx, ALICE, BatchRequest(file="s3://bucket/app.py")).id
    wait_for(lambda: batches.get(celery_ctx, ALICE, other).state == BatchState.STARTING)
    batches.kill(celery_ctx, ALICE, other)
    wait_for(lambda: batches.get(celery_ctx, ALICE, other).state == BatchState.KILLED)


def test_readyz_reports_the_broker(celery_ctx: Context) -> None:
    from sparkplane.services import health

    assert health.broker_ok(celery_ctx) is None


def test_warm_declares_the_queue_before_the_first_publish(amqp_url: str, tmp_path: Path) -> None:
    # Producers are pooled per broker URL for the whole process (kombu.pools), each connection remembering what
    # it declared: an earlier test's would skip the declaration. A role's process starts with none.
    kombu.pools.reset()
    dispatcher = CeleryDispatcher(make_celery(load_settings(broker_url=amqp_url, data_dir=tmp_path)))
    try:
        dispatcher.warm()  # the fixture deleted the queue
        with Connection(amqp_url) as conn:
            _, messages, _ = conn.default_channel.queue_declare(QUEUE, passive=True)  # raises if it is missing
        assert messages == 0
    finally:
        dispatcher.app.pool.force_close_all()


def test_a_broker_down_at_start_makes_the_first_publish_skip_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        url = f"amqp://guest:guest@127.0.0.1:{closed.getsockname()[1]}//"
        dispatcher = CeleryDispatcher(make_celery(load_settings(broker_url=url, data_dir=tmp_path)))
        dispatcher.warm()  # logs, never raises: the role starts all the same
    sent: list[str] = []
    monkeypatch.setattr(dispatcher.app, "send_task", lambda name, **_: sent.append(name))
    assert dispatcher.publish("launch_batch", 1) is False  # the outbox relay publishes it later
    assert sent == []  # without a second connection attempt on the request's path
