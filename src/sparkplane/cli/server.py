"""Server roles: `sparkplane api | worker | watch | cleanup | db | config`. Each builds its context from the
settings once, runs, and closes it; `sparkplane up` (cli/up.py) runs them all as child processes."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sparkplane.cli import logs
from sparkplane.services.context import Context, build_context
from sparkplane.settings import Settings, load_settings, masked

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sparkplane.watchers.loop import Loop

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder for embedded mode's files")]

db_app = typer.Typer(help="Database schema (alembic).", no_args_is_help=True)
watch_app = typer.Typer(help="Reconcile loops.", no_args_is_help=True)


def settings_for(data_dir: Path | None = None, **overrides: object) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir.expanduser().resolve()
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    return settings


def context_for(settings: Settings, role: str, *, check_schema: bool = True) -> Context:
    from sparkplane.worker.celery_app import CeleryDispatcher, make_celery

    logs.configure(settings.log_level, settings.log_format, role)
    ctx = build_context(settings, dispatcher=CeleryDispatcher(make_celery(settings)))
    if check_schema:
        _require_current_schema(ctx)
    return ctx


def _require_current_schema(ctx: Context) -> None:
    """Refuse to run on a database the migrations have not reached: missing tables fail later, obscurely."""
    from sparkplane.db import migrate

    current, head = migrate.current_revision(ctx.db.engine), migrate.head_revision()
    if current != head:
        ctx.close()
        typer.echo(
            f"error: the database schema is at {current or 'nothing'}, this sparkplane needs {head}: "
            "run `sparkplane db upgrade` first",
            err=True,
        )
        raise typer.Exit(2)


def api(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes sharing the port (SPARKPLANE_API_WORKERS)")] = None,
) -> None:
    """Serve the REST API (native /api/v1 and Livy-compatible /livy), /metrics and health."""
    import uvicorn

    settings = settings_for(data_dir, host=host, port=port, api_workers=workers)
    common = {"log_config": None, "access_log": False, "timeout_graceful_shutdown": 10}
    if settings.api_workers > 1:
        # Each worker process builds its own context (engine, pool) from the same environment; their
        # counters meet in one multiprocess folder, which /metrics adds up.
        _metrics_folder(settings, "api")
        if data_dir is not None:
            os.environ["SPARKPLANE_DATA_DIR"] = str(settings.data_dir)
        os.environ["SPARKPLANE_HOST"], os.environ["SPARKPLANE_PORT"] = settings.host, str(settings.port)
        context_for(settings, "api").close()  # configures the parent's logging; refuses a stale schema
        uvicorn.run(
            "sparkplane.cli.server:api_worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.api_workers,
            **common,  # type: ignore[arg-type]
        )
        return
    ctx = context_for(settings, "api")
    from sparkplane.api.app import create_app

    config = uvicorn.Config(create_app(ctx), host=settings.host, port=settings.port, **common)  # type: ignore[arg-type]
    _ready_to_serve(ctx, publishes=True)
    try:
        uvicorn.Server(config).run()
    finally:
        ctx.close()


def api_worker_app() -> FastAPI:
    """The app of one api worker process (uvicorn --workers imports this by name in each of them)."""
    from sparkplane.api.app import create_app

    ctx = context_for(settings_for(), "api")
    app = create_app(ctx)
    _ready_to_serve(ctx, publishes=True)
    return app


def _ready_to_serve(ctx: Context, *, publishes: bool) -> None:
    """Build what the role's first request would otherwise build (services/warmup.py), then freeze it all."""
    from sparkplane.services.warmup import warm_up

    warm_up(ctx, publishes=publishes)
    _freeze_startup_objects()


def _freeze_startup_objects() -> None:
    """Take what the process built to start (modules, routes, schemas, mappers: about 170,000 objects in an
    api process) out of the garbage collector's reach: it lives as long as the process. Why: each full
    collection walked all of it, about 130 ms with every thread stopped. Measured under load (200 clients,
    2 api processes on 2 cores): session GET p99 275 -> 157-169 ms with clients never pausing, and 312 ->
    111-139 ms when they offer 80% of the top rate. Only in a role's process, once it is built: a test
    process must stay free to collect what it frees."""
    gc.collect()
    gc.freeze()


def _metrics_folder(settings: Settings, role: str) -> None:
    """A multiprocess metrics folder for a role's processes, unless one was given (`sparkplane up` does)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = settings.data_dir / "metrics" / role
    shutil.rmtree(folder, ignore_errors=True)  # counters restart with the processes that own them
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[int, typer.Option(help="Tasks run at once (threads)")] = 4,
) -> None:
    """Run the Celery worker that launches and cancels work on the backends."""
    settings = settings_for(data_dir)
    ctx = context_for(settings, "worker")
    from sparkplane.worker import tasks
    from sparkplane.worker.celery_app import make_celery

    tasks.install_context(ctx)
    app = make_celery(settings)
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-Q",
        "sparkplane",
    ]
    _ready_to_serve(ctx, publishes=False)
    try:
        app.worker_main(argv)
    finally:
        ctx.close()


def _run_watcher(role: str, data_dir: Path | None, make: Callable[[Context], Loop]) -> None:
    ctx = context_for(settings_for(data_dir), role)
    loop = make(ctx)
    loop.install_signal_handlers()
    _ready_to_serve(ctx, publishes=True)
    try:
        loop.run()
    finally:
        ctx.close()


@watch_app.command("batch")
def watch_batch(data_dir: DataDir = None) -> None:
    """Reconcile batches with their backends, relay the outbox, collect logs of finished batches."""
    from sparkplane.watchers.batch import batch_watcher

    _run_watcher("watch-batch", data_dir, batch_watcher)


@watch_app.command("interactive")
def watch_interactive(data_dir: DataDir = None) -> None:
    """Reconcile sessions and clusters with their backends."""
    from sparkplane.watchers.interactive import interactive_watcher

    _run_watcher("watch-interactive", data_dir, interactive_watcher)


def cleanup(data_dir: DataDir = None) -> None:
    """One cleanup pass: expired rows and logs, orphaned runs. Idempotent; safe to run twice at once."""
    from sparkplane.services.cleanup import run_cleanup

    ctx = context_for(settings_for(data_dir), "cleanup")
    try:
        report = run_cleanup(ctx)
    finally:
        ctx.close()
    typer.echo(json.dumps(dataclasses.asdict(report)))


@db_app.command("upgrade")
def db_upgrade(
    data_dir: DataDir = None, revision: Annotated[str, typer.Argument(help="Target revision")] = "head"
) -> None:
    """Apply migrations up to REVISION (alembic upgrade); the only way the schema changes."""
    from sparkplane.db import migrate
    from sparkplane.db.base import make_engine

    settings = settings_for(data_dir)
    logs.configure(settings.log_level, settings.log_format, "migrate")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url())
    try:
        migrate.upgrade(engine, revision)
        typer.echo(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")], data_dir: DataDir = None
) -> None:
    """Revert migrations down to REVISION."""
    from sparkplane.db import migrate
    from sparkplane.db.base import make_engine

    engine = make_engine(settings_for(data_dir).sqlalchemy_url())
    try:
        migrate.downgrade(engine, revision)
        typer.echo(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    from sparkplane.db import migrate
    from sparkplane.db.base import make_engine

    engine = make_engine(settings_for(data_dir).sqlalchemy_url())
    try:
        typer.echo(f"current: {migrate.current_revision(engine)}  head: {migrate.head_revision()}")
    finally:
        engine.dispose()


@db_app.command("reencrypt")
def db_reencrypt(data_dir: DataDir = None) -> None:
    """Encrypt every stored credential again with SPARKPLANE_ENCRYPTION_KEY, after a key change.

    Keep the previous key in SPARKPLANE_ENCRYPTION_OLD_KEYS while this runs (it reads the credentials); once
    it has, the old key can be dropped. Idempotent.
    """
    from sparkplane.services.credentials import reencrypt_all

    settings = settings_for(data_dir)
    logs.configure(settings.log_level, settings.log_format, "reencrypt")
    ctx = build_context(settings)
    _require_current_schema(ctx)
    try:
        count = reencrypt_all(ctx)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        ctx.close()
    typer.echo(f"{count} credentials encrypted with the current key")


def config(data_dir: DataDir = None) -> None:
    """Print the effective settings, with every secret masked."""
    try:
        settings = settings_for(data_dir)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    json.dump(masked(settings), sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
