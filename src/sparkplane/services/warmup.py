"""What the first request of a role's process would pay for, paid once as the role starts.

Measured on `sparkplane up` (2 cores): the first session create after start answered its POST in 440 ms and was
idle in 700 ms, the next ones in 30 ms and 70 to 150 ms. The api and the worker each built the session backend
on first use (importing its HTTP stack and making a TLS context for the agent client), the api's first publish
connected to the broker, imported Celery's result backend and declared the queue, and each process's first query
configured the ORM's mappers. All of it is built here instead, before the process freezes its startup objects
(cli/server.py), so the first user does not wait for it.
"""

from __future__ import annotations

import contextlib

from sparkplane.domain.errors import Unsupported
from sparkplane.services.context import Context


def warm_up(ctx: Context, *, publishes: bool) -> None:
    """Build the configured backends, the ORM's mappers and, for a role that publishes, the broker connection."""
    ctx.db.warm()
    name = ctx.settings.backend
    ctx.backends.get(name)
    with contextlib.suppress(Unsupported):  # a backend that runs batches only
        ctx.backends.session(name)
    if publishes:
        ctx.dispatcher.warm()
