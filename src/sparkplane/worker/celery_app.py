"""The Celery app: RabbitMQ in production, kombu's SQLAlchemy transport on SQLite when embedded.

Tasks take ids only and are idempotent, which is what makes `acks_late` + `reject_on_worker_lost` safe:
a worker killed mid-task gets its message redelivered (RabbitMQ), and the task finds the work done or not.
"""

from __future__ import annotations

import logging
import time

from celery import Celery

from sparkplane.settings import Settings
from sparkplane.worker import sqlite_transport

log = logging.getLogger(__name__)

QUEUE = "sparkplane"


def make_celery(settings: Settings) -> Celery:
    broker = settings.celery_broker_url()
    embedded = broker.startswith("sqla+")
    if embedded:
        sqlite_transport.register()
        broker = sqlite_transport.ALIAS + broker.removeprefix("sqla")
    app = Celery("sparkplane", broker=broker, include=["sparkplane.worker.tasks"])
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        # A worker outlives any broker outage (the default gives up after 100 retries, ~45 min), and with
        # acks_late a task running when the connection drops is redelivered, so it is cancelled here.
        broker_connection_max_retries=None,
        # AMQP heartbeats find half-open connections; 10 s (not the 120 s default) also lets a worker stop in
        # ~3 s instead of ~10 s, since shutdown waits for the heartbeat timer (measured, see the commit).
        broker_heartbeat=10,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Publishing happens on the API's request path: fail fast and let the outbox relay retry later.
        broker_connection_timeout=2,
        broker_transport_options={} if embedded else {"confirm_publish": True},
        task_soft_time_limit=300,
        task_time_limit=360,
    )
    return app


class CeleryDispatcher:
    """Publishes outbox entries as Celery tasks; False (never an exception) when the broker is unreachable.

    After a failure it stops trying for `backoff` seconds: each attempt against a dead broker costs the
    connection timeout, which would otherwise be paid by every API request during an outage. The outbox
    relay publishes what was skipped.
    """

    def __init__(self, app: Celery, *, backoff: float = 5.0) -> None:
        self.app = app
        self.backoff = backoff
        self._down_until = 0.0

    def publish(self, task: str, entity_id: int) -> bool:
        if time.monotonic() < self._down_until:
            return False
        try:
            self.app.send_task(f"sparkplane.{task}", args=[entity_id], retry=False)
        except Exception as exc:  # kombu raises many kinds (OSError, OperationalError, ChannelError...)
            log.warning("could not publish %s(%s): %s; retrying in %.0fs", task, entity_id, exc, self.backoff)
            self._down_until = time.monotonic() + self.backoff
            return False
        return True

    def warm(self) -> None:
        """Open the publishing connection and declare the queue now, and import the result backend Celery
        looks up on every send: the first publish of a process paid for all three. A broker that is down
        is treated as in publish: no publish for a while, and the outbox relay catches up."""
        try:
            _ = self.app.backend
            with self.app.producer_or_acquire() as producer:
                producer.maybe_declare(self.app.amqp.queues[QUEUE], retry=False)
        except Exception as exc:  # as in publish: kombu raises many kinds
            log.warning("could not reach the broker at start: %s; publishing again in %.0fs", exc, self.backoff)
            self._down_until = time.monotonic() + self.backoff

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
