"""`sparkplane up`: every role on this machine, on embedded defaults, with no external service.

It migrates the database, creates the first admin, starts api, worker and both watchers as child processes
(restarting any that dies), runs cleanup periodically, and on Ctrl-C or SIGTERM stops them all. By default
it also stops the Spark applications it launched, so nothing is left running; with --keep-apps they keep
running and are re-adopted at the next start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from sparkplane.cli import logs
from sparkplane.cli.server import DataDir, context_for, settings_for
from sparkplane.settings import Settings

ROLES: dict[str, list[str]] = {
    "api": ["api"],
    "worker": ["worker"],
    "watch-batch": ["watch", "batch"],
    "watch-interactive": ["watch", "interactive"],
}
STOP_GRACE = 15.0  # seconds a role gets to finish after SIGTERM; the worker may be mid-launch


@dataclass
class Role:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self.roles = [Role(name, [sys.executable, "-m", "sparkplane", *argv]) for name, argv in ROLES.items()]
        self.stopping = threading.Event()

    def start(self, role: Role) -> None:
        log_path = self.settings.data_dir / "logs" / f"{role.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            role.process = subprocess.Popen(role.argv, env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        role.started_at = time.monotonic()

    def start_all(self) -> None:
        for role in self.roles:
            self.start(role)

    def watch_once(self) -> None:
        """Restart any role that died, with a growing pause so a crash loop does not spin."""
        now = time.monotonic()
        for role in self.roles:
            if role.process is None or role.process.poll() is None:
                continue
            if role.next_start == 0.0:
                if now - role.started_at > 60:
                    role.restarts = 0  # it ran fine for a while: forget earlier crashes
                delay = min(30.0, 0.5 * 2**role.restarts)
                role.next_start = now + delay
                typer.echo(
                    f"role {role.name} exited with code {role.process.returncode}; restarting in {delay:.1f}s", err=True
                )
            elif now >= role.next_start:
                role.restarts += 1
                role.next_start = 0.0
                self.start(role)

    def stop_all(self) -> None:
        for role in self.roles:
            if role.process is not None and role.process.poll() is None:
                role.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for role in self.roles:
            if role.process is None:
                continue
            try:
                role.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                role.process.kill()
                role.process.wait()


def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
    keep_apps: Annotated[bool, typer.Option("--keep-apps", help="Leave Spark applications running on exit")] = False,
) -> None:
    """Run every role on this machine on embedded defaults: SQLite, no broker process, local Spark."""
    settings = settings_for(data_dir, host=host, port=port)
    ctx = context_for(settings, "up", check_schema=False)  # up migrates first
    from sparkplane.db import migrate
    from sparkplane.services import cleanup, users

    migrate.upgrade(ctx.db.engine)
    generated = users.ensure_admin(ctx)
    password_file = settings.data_dir / "initial-admin-password"
    if generated:
        password_file.write_text(generated + "\n")
        password_file.chmod(0o600)

    env = _role_env(settings)
    supervisor = Supervisor(settings, env)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    supervisor.start_all()
    url = f"http://{settings.host}:{settings.port}"
    try:
        if not _wait_ready(url, supervisor):
            if supervisor.stopping.is_set():
                return  # interrupted while starting: the finally block stops what started
            typer.echo(f"the API did not become ready; see {settings.data_dir / 'logs' / 'api.log'}", err=True)
            raise typer.Exit(1)
        _banner(url, settings, generated, password_file)
        next_cleanup = time.monotonic() + settings.cleanup_interval_seconds
        while not supervisor.stopping.wait(0.5):
            supervisor.watch_once()
            if time.monotonic() >= next_cleanup:
                _safe_cleanup(cleanup.run_cleanup, ctx)
                next_cleanup = time.monotonic() + settings.cleanup_interval_seconds
    finally:
        typer.echo("stopping sparkplane...", err=True)
        supervisor.stop_all()
        if not keep_apps:
            from sparkplane.services import batch_runs, cluster_runs, session_runs

            stopped = batch_runs.stop_active(ctx, reason="sparkplane up was stopped")
            stopped += session_runs.stop_all(ctx, reason="sparkplane up was stopped")
            if stopped:
                typer.echo(f"stopped {stopped} running Spark application(s)", err=True)
            terminated = cluster_runs.stop_all(ctx, reason="sparkplane up was stopped")
            if terminated:
                typer.echo(f"terminated {terminated} cluster(s)", err=True)
        ctx.close()
        typer.echo("stopped.", err=True)


def _role_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["SPARKPLANE_DATA_DIR"] = str(settings.data_dir)
    env["SPARKPLANE_HOST"] = settings.host
    env["SPARKPLANE_PORT"] = str(settings.port)
    metrics_dir = settings.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters restart with the processes that own them
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


def _wait_ready(url: str, supervisor: Supervisor, timeout: float = 180.0) -> bool:
    # Generous: on a busy 2-core machine the four roles importing at once take the api over a minute. An api
    # that exits is given up on at once instead.
    api = next(role for role in supervisor.roles if role.name == "api")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not supervisor.stopping.is_set():
        if api.process is not None and api.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _banner(url: str, settings: Settings, generated: str | None, password_file: Path) -> None:
    lines = [
        "",
        f"sparkplane is up at {url}",
        f"  Livy API:   {url}/livy      native API: {url}/api/v1      docs: {url}/docs",
        f"  data:       {settings.data_dir}",
    ]
    if generated:
        lines.append(f"  first admin: user 'admin', password '{generated}' (also in {password_file}, mode 0600)")
    elif password_file.exists():
        lines.append(f"  admin password: see {password_file}")
    else:
        lines.append("  admin: user 'admin' with the password from SPARKPLANE_ADMIN_PASSWORD")
    lines.append("  Ctrl-C stops everything.")
    typer.echo("\n".join(lines) + "\n")


def _safe_cleanup(run: object, ctx: object) -> None:
    import logging

    try:
        run(ctx)  # type: ignore[operator]
    except Exception:  # a failed pass is repaired by the next one
        logging.getLogger(__name__).exception("cleanup pass failed")


__all__ = ["logs", "up"]
