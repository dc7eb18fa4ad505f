"""FastAPI dependencies as `Annotated` aliases: the context, and who is calling."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from sparkplane.db import loop_reads
from sparkplane.db.base import QUICK_READ_THREADS
from sparkplane.domain.errors import Unauthenticated
from sparkplane.services import users, web_logins
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

P = ParamSpec("P")
T = TypeVar("T")


async def get_context(request: Request) -> Context:
    # async: FastAPI would run a sync dependency in its thread pool, a hop that costs more than this does
    ctx: Context = request.app.state.ctx
    return ctx


CtxDep = Annotated[Context, Depends(get_context)]


# Methods that change nothing (RFC 9110 "safe"): a cookie alone may make them; every other needs the CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def web_login(request: Request, ctx: Context) -> web_logins.LoginSession | None:
    """The browser's web login, if the request carries a live one (and no Authorization header)."""
    cookie = request.cookies.get(web_logins.COOKIE)
    if not cookie or request.headers.get("authorization"):
        return None
    session = web_logins.authenticate(ctx, cookie)
    request.state.web_login = session
    return session


async def get_principal(request: Request, ctx: CtxDep) -> Principal:
    """Three ways in: HTTP Basic, a Bearer API token, or the web UI's cookie. The header wins when both come.

    A token or a Basic pair checked moments ago is answered here, on the event loop (measured: a Basic
    check took about 1 ms of the 6 ms of CPU a statement run costs); everything else needs the database (or
    argon2) and runs in the thread pool."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    scheme = scheme.lower()
    key: str | None = None
    recent: Principal | None = None
    if scheme == "bearer" and (token := value.strip()):
        recent, key = users.recent_token(ctx, token), token
    elif scheme == "basic":
        key = users.basic_key(*_basic_pair(value))
        recent = users.recent_basic(ctx, key)
    if key is None:
        return await run_in_threadpool(_authenticate, request, ctx)
    if recent is not None:
        return recent
    checks: CredentialChecks = request.app.state.credential_checks
    return await checks.check(key, lambda: run_in_threadpool(_authenticate, request, ctx))


class CredentialChecks:
    """One database check at a time per credential: the requests that arrive meanwhile wait for its answer.

    Why: when a busy client's cached token expires, every request it has in flight missed the cache at once,
    and each went to the database from the shared thread pool. Measured at 1,000 req/s from one token: a
    stall of about 250 ms every 5 s (the cache's life), with a hundred requests over 50 ms in each."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Principal]] = {}

    async def check(self, key: str, authenticate: Callable[[], Awaitable[Principal]]) -> Principal:
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)  # one waiter's cancellation must not cancel the others' answer
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            principal = await authenticate()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: without waiters, asyncio would log it as never retrieved
            raise
        else:
            future.set_result(principal)
            return principal
        finally:
            del self._pending[key]


def _authenticate(request: Request, ctx: Context) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        session = web_login(request, ctx)
        if session is not None:
            if request.method not in SAFE_METHODS:
                web_logins.check_csrf(session, request.headers.get(web_logins.CSRF_HEADER))
            return session.principal
        raise Unauthenticated("log in: send HTTP Basic credentials or 'Authorization: Bearer <API token>'")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return users.authenticate_token(ctx, value.strip())
    if scheme == "basic":
        return users.authenticate_basic(ctx, *_basic_pair(value))
    raise Unauthenticated("unsupported Authorization scheme; use Basic or Bearer")


def _basic_pair(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("the Basic credentials are not valid base64 of 'user:password'") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("the Basic credentials must be 'user:password'")
    return username, password


PrincipalDep = Annotated[Principal, Depends(get_principal)]


class QuickReads:
    """The lane for the reads clients poll (a session, a batch): on the event loop when the database has an
    async driver (db/loop_reads.py, PostgreSQL), else a few threads of their own.

    Why a lane of threads at all: a sync route runs in the shared thread pool (API_THREADS), and under load every
    one of those threads is runnable at once, passing the GIL among them after each database round trip.
    Measured with 200 clients polling a session on 2 cores: 20 threads served 1,190 req/s, 4 threads 1,520. Slow
    work (uploads, logs from blob storage, calls to agents) stays in the shared pool, so it never holds this
    lane up."""

    def __init__(self, threads: int = QUICK_READ_THREADS) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._on_loop: loop_reads.LoopReads | None = None

    def open_on_loop(self, engine: Engine) -> None:
        """From the app's lifespan, on the loop that will serve the requests; a no-op without an async driver."""
        if loop_reads.supports(engine):
            self._on_loop = loop_reads.LoopReads(engine)

    async def close(self) -> None:
        on_loop, self._on_loop = self._on_loop, None
        if on_loop is not None:
            await on_loop.close()

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._on_loop is not None:
            return await self._on_loop(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._limiter)


async def get_quick_reads(request: Request) -> QuickReads:
    quick: QuickReads = request.app.state.quick_reads
    return quick


QuickDep = Annotated[QuickReads, Depends(get_quick_reads)]
