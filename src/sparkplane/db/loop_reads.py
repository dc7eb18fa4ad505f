"""The API's polled reads on the event loop: the services' sync code, its queries through psycopg's async driver.

Why: a session or batch GET is a query of about a tenth of a millisecond wrapped in more Python than that.
Run in a thread, it paid a hop there and back, and under load the threads passed the GIL among them after
each round trip. Run on the event loop with a blocking driver, the loop would stop for every round trip (and
for as long as a slow database takes). Here the service runs unchanged in a greenlet (SQLAlchemy's bridge,
`AsyncConnection.run_sync`), and its queries wait on the loop like any other await. Measured with 200 clients
polling a session on 2 cores, 2 api processes, same host, back to back: the api's CPU per GET 1.5-1.8 ms in
threads, 1.1-1.5 ms here; p99 at 600 req/s offered 260-475 ms in threads, 16-33 ms here.

Only `Database.autocommit()` units of work take this connection (uow.LOOP_CONNECTION): the hot reads and
their single-statement stamps. A transaction (`Database.uow()`) inside such a call raises: it would take a
pooled blocking connection and stop the loop for each of its round trips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sparkplane.db.base import ping_when_idle
from sparkplane.db.uow import LOOP_CONNECTION

P = ParamSpec("P")
T = TypeVar("T")

# Requests this lane runs at once per process, each on a connection of its own that it holds for the whole
# service call (its Python too, not only the query). Measured, 200 clients on 2 cores: 4 at once queued too
# much (paced p99 52-62 ms at 600 req/s), 8 and 16 alike (16-33 and 27-61 ms); 8 keeps fewer connections.
LOOP_CONNECTIONS = 8


def supports(engine: Engine) -> bool:
    """PostgreSQL through psycopg, which has an async mode. SQLite here has no async driver: its reads are a
    local file's, and they keep the thread lane."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


class LoopReads:
    """Created on the event loop that will use it (its connections belong to that loop), closed on it."""

    def __init__(self, engine: Engine, connections: int = LOOP_CONNECTIONS) -> None:
        if not supports(engine):
            raise ValueError(f"no async driver for {engine.dialect.name}+{engine.dialect.driver}")
        self._engine: AsyncEngine = create_async_engine(
            engine.url,
            isolation_level="AUTOCOMMIT",
            pool_size=connections,
            max_overflow=0,
        )
        # Requests wait their turn here, first come first served. The pool's own wait is not fair: a request
        # arriving as a connection comes back takes it before the one that waited, which goes to the back of
        # the line (measured: p50 21 ms, p99 1 s with 200 clients).
        self._turns = asyncio.Semaphore(connections)
        ping_when_idle(self._engine.sync_engine)

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._turns, self._engine.connect() as conn:
            return await conn.run_sync(_bound, fn, args, kwargs)

    async def close(self) -> None:
        await self._engine.dispose()


def _bound(conn: Connection, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    # The greenlet shares the request task's context: set for the call, reset after it, whatever happens.
    token = LOOP_CONNECTION.set(conn)
    try:
        return fn(*args, **kwargs)
    finally:
        LOOP_CONNECTION.reset(token)
