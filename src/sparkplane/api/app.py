"""The FastAPI application factory. Everything is injected through the Context; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from sparkplane import __version__
from sparkplane.api import errors, web_render
from sparkplane.api.deps import CredentialChecks, QuickReads
from sparkplane.api.middleware import BodyLimit, Metrics
from sparkplane.api.routers import (
    accounts,
    credentials,
    livy,
    livy_sessions,
    native_batches,
    native_clusters,
    native_sessions,
    ops,
    web,
    web_pages,
    workspace,
)
from sparkplane.db.base import API_THREADS
from sparkplane.services.context import Context


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # No more request threads than pooled database connections (anyio's default is 40): a thread past the
    # pool would open, and close, a connection of its own per request.
    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    quick_reads: QuickReads = app.state.quick_reads
    ctx: Context = app.state.ctx
    quick_reads.open_on_loop(ctx.db.engine)
    try:
        yield
    finally:
        await quick_reads.close()


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="sparkplane",
        version=__version__,
        description="A self-hosted control plane for Apache Spark. Native API under /api/v1, "
        "Livy-compatible API under /livy.",
        lifespan=_lifespan,
    )
    app.state.ctx = ctx
    app.state.quick_reads = QuickReads()
    app.state.credential_checks = CredentialChecks()
    errors.install(app)
    app.add_exception_handler(web_render.LoginRequired, web_render.login_redirect)  # type: ignore[arg-type]
    # The router tries routes in this order, so the ones clients poll come first: matching a route near the
    # end of the list cost a quarter of a session GET's time. No two routers share a path prefix.
    routers = (
        native_sessions.router,
        livy_sessions.router,
        native_batches.router,
        livy.router,
        ops.router,
        accounts.router,
        credentials.router,
        native_clusters.router,
        workspace.router,
        web.router,
        web_pages.router,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(
        BodyLimit,
        max_body=ctx.settings.max_body_bytes,
        max_upload=ctx.settings.max_upload_bytes,
        max_notebook=ctx.settings.max_notebook_bytes,
    )
    app.add_middleware(Metrics)
    return app
