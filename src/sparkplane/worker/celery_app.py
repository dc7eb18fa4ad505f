"""The Celery app: RabbitMQ in production, kombu's SQLAlchemy transport on SQLite when embedded.

Tasks take ids only and are idempotent, which is what makes `acks_late` + `reject_on_worker_lost` safe:
a worker killed mid-task gets its message redelivered (RabbitMQ), and the task finds the work done or not.
"""

from __future__ import annotations

import logging

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
        # Publishing happens on the API's request path: fail fast and let the outbox relay retry later.
        broker_connection_timeout=2,
        broker_transport_options={} if embedded else {"confirm_publish": True},
        task_soft_time_limit=300,
        task_time_limit=360,
    )
    return app


class CeleryDispatcher:
    """Publishes outbox entries as Celery tasks; False (never an exception) when the broker is unreachable."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, task: str, entity_id: int) -> bool:
        try:
            self.app.send_task(f"sparkplane.{task}", args=[entity_id], retry=False)
        except Exception as exc:  # kombu raises many kinds (OSError, OperationalError, ChannelError...)
            log.warning("could not publish %s(%s): %s", task, entity_id, exc)
            return False
        return True

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
