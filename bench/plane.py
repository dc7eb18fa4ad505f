"""A production-shaped control plane for load and scale runs: a fresh PostgreSQL database and RabbitMQ vhost,
`sparkplane db upgrade`, an admin with an API token, and the roles (api, worker, both watchers) as processes,
all on the shared-file fake backend (`SPARKPLANE_BACKEND=fake`).

    with production_plane(Path(tmp)) as plane:
        httpx.get(f"{plane.url}/api/v1/sessions", headers=plane.auth)

It needs the machine's PostgreSQL and RabbitMQ (`source scripts/services.sh` exports their URLs).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.e2e.roles import Roles, free_port, own_database, wait_ready

PASSWORD = "bench-admin-password"
ROLES = ("api", "worker", "watch-batch", "watch-interactive")


@dataclass
class Plane:
    url: str
    token: str
    data_dir: Path
    database_url: str
    roles: Roles
    env: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pids(self, *names: str) -> dict[str, int]:
        return {p.name: p.pid for p in self.roles.alive() if p.pid and (not names or p.name in names)}


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run `source scripts/services.sh` first (it starts PostgreSQL, RabbitMQ)")
    return value


@contextmanager
def fresh_database() -> Iterator[str]:
    with own_database(_required("SPARKPLANE_TEST_PG_ADMIN_URL"), "sparkplane_bench") as url:
        yield url.render_as_string(hide_password=False)


def _rabbitmqctl(*args: str) -> bool:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=120, check=False).returncode == 0


@contextmanager
def fresh_vhost() -> Iterator[str]:
    base = urlsplit(_required("SPARKPLANE_TEST_AMQP_URL"))
    vhost = f"sparkplane_bench_{uuid.uuid4().hex[:10]}"
    if not (
        _rabbitmqctl("add_vhost", vhost)
        and _rabbitmqctl("set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*")
    ):
        raise SystemExit(f"could not create the RabbitMQ vhost {vhost}")
    try:
        yield urlunsplit(base._replace(path=f"/{vhost}"))
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def plane_env(data_dir: Path, database_url: str, broker_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    from sparkplane.services.encryption import new_key

    return {
        "SPARKPLANE_ENVIRONMENT": "production",
        "SPARKPLANE_ENCRYPTION_KEY": new_key(),
        "SPARKPLANE_DATABASE_URL": database_url,
        "SPARKPLANE_BROKER_URL": broker_url,
        "SPARKPLANE_DATA_DIR": str(data_dir),
        "SPARKPLANE_HOST": "127.0.0.1",
        "SPARKPLANE_PORT": str(free_port()),
        "SPARKPLANE_BACKEND": "fake",
        "SPARKPLANE_POOL_SIZE": "0",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.25",
        "SPARKPLANE_LOG_FORMAT": "json",
        "SPARKPLANE_LOG_LEVEL": "WARNING",
        **extra,
    }


def admin_token(env: Mapping[str, str]) -> str:
    """Create the admin (if the database has none) and an API token for it, straight through the services."""
    from sparkplane.services import users
    from sparkplane.services.context import build_context
    from sparkplane.settings import load_settings

    settings = load_settings(
        database_url=env["SPARKPLANE_DATABASE_URL"],
        broker_url=env["SPARKPLANE_BROKER_URL"],
        data_dir=Path(env["SPARKPLANE_DATA_DIR"]),
        encryption_key=env["SPARKPLANE_ENCRYPTION_KEY"],
        environment="production",
    )
    ctx = build_context(settings)
    try:
        users.create_user(ctx, None, "admin", PASSWORD, "admin")
        principal = users.authenticate_basic(ctx, "admin", PASSWORD)
        return users.create_token(ctx, principal, "bench").token
    finally:
        ctx.close()


@contextmanager
def production_plane(
    data_dir: Path, *, roles: tuple[str, ...] = ROLES, extra_env: Mapping[str, str] | None = None
) -> Iterator[Plane]:
    with fresh_database() as database_url, fresh_vhost() as broker_url:
        env = plane_env(data_dir, database_url, broker_url, extra_env or {})
        plane_roles = Roles(data_dir, env)
        try:
            plane_roles.run("db", "upgrade")
            token = admin_token(env)
            url = f"http://127.0.0.1:{env['SPARKPLANE_PORT']}"
            for role in roles:
                started = plane_roles.start(role)
                if role == "api":
                    wait_ready(url, process=started, timeout=90)
            yield Plane(url, token, data_dir, database_url, plane_roles, env)
        finally:
            plane_roles.stop_all()
