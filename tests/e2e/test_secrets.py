"""No secret leaks: a full scenario on the production roles at DEBUG, then every log line, every API answer,
/metrics and every text column of every table is searched for every secret value.

The secrets: both users' passwords, both API tokens, a data credential's secret values, the session's Spark
Connect token, SPARKPLANE_ENCRYPTION_KEY, PGSQL_PASSWORD and RABBITMQ_PASSWORD (a RabbitMQ user of its own,
so the password is a real one). One real session (local[1]) is given the credential, runs a statement, and
is stopped; one real batch is given it too.

Where a secret may appear, by design, and nowhere else (the exceptions, each checked to be the only place):
- the answer that creates an API token carries it, once (POST /api/v1/tokens);
- the session's Spark Connect token is in its `connect_url`, shown to its owner only (GET of the session);
  it counts as a secret everywhere else: logs, /metrics, other answers, the database;
- files the roles hand secrets through on purpose, all 0600 (checked): a run's spark-secrets.properties
  (the credential's values, for spark-submit), and the session folder's agent.token and connect.token
  (written by the launcher for the agent, read back by the control plane).
Logs are every file under the data folder but those (role logs, driver and agent logs, collected logs).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from sparkplane.db.base import Base
from sparkplane.services import users
from sparkplane.services.context import build_context
from sparkplane.services.encryption import new_key
from sparkplane.settings import load_settings

from .roles import Roles, free_port, own_database, stop_local_runs, wait_ready, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The 0600 files that hand a secret to a process on purpose (see the module docstring).
BY_DESIGN_FILES = {"spark-secrets.properties", "agent.token", "connect.token"}


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


def _rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"rabbitmqctl {args[0]}: {result.stdout}{result.stderr}"


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A vhost and a RabbitMQ user of their own, with a password nobody else knows."""
    base = urlsplit(os.environ["SPARKPLANE_TEST_AMQP_URL"])
    name = f"sparkplane_secrets_{uuid.uuid4().hex[:8]}"
    password = _secret("rabbit")
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("add_user", name, password)
    _rabbitmqctl("set_permissions", "-p", name, name, ".*", ".*", ".*")
    try:
        yield {
            "RABBITMQ_HOST": base.hostname or "127.0.0.1",
            "RABBITMQ_PORT": str(base.port or 5672),
            "RABBITMQ_USER": name,
            "RABBITMQ_PASSWORD": password,
            "RABBITMQ_VHOST": name,
        }
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", name], capture_output=True, check=False)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, check=False)


@pytest.fixture
def database() -> Iterator[dict[str, str]]:
    """A database of its own, reached through PGSQL_* with a password (the server trusts local connections,
    so any password gets in; it is still the one configured, and must leak nowhere)."""
    with own_database(os.environ["SPARKPLANE_TEST_PG_ADMIN_URL"], "sparkplane_secrets") as url:
        yield {
            "PGSQL_HOST": url.host or "127.0.0.1",
            "PGSQL_PORT": str(url.port or 5432),
            "PGSQL_USER": url.username or "postgres",
            "PGSQL_PASSWORD": _secret("pgsql"),
            "PGSQL_DATABASE": str(url.database),
        }


class Recorder:
    """Every answer of the API the scenario got, kept with the request that got it."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, str, str]] = []  # (method, path, body)

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.answers.append((response.request.method, response.request.url.path, response.text))


def _wait_state(http: httpx.Client, path: str, wanted: set[str], timeout: float = 240) -> str:
    seen: list[str] = []

    def reached() -> bool:
        seen.append(str(http.get(path).json()["state"]))
        return seen[-1] in wanted

    wait_until(reached, timeout, interval=0.5, message=lambda: f"{path} to be {sorted(wanted)} (last {seen[-1:]})")
    return seen[-1]


def test_no_secret_in_logs_answers_metrics_or_database(
    tmp_path: Path, database: dict[str, str], broker: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    key = new_key()
    env = {
        "SPARKPLANE_ENVIRONMENT": "production",
        "SPARKPLANE_ENCRYPTION_KEY": key,
        "SPARKPLANE_DATA_DIR": str(data_dir),
        "SPARKPLANE_HOST": "127.0.0.1",
        "SPARKPLANE_PORT": str(free_port()),
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_POOL_SIZE": "0",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "SPARKPLANE_LOG_LEVEL": "DEBUG",
        "SPARKPLANE_LOG_FORMAT": "json",
        **database,
        **broker,
    }
    admin_password, alice_password = _secret("admin-pw"), _secret("alice-pw")
    secret_key, session_token = _secret("s3-secret"), _secret("s3-session")
    roles = Roles(data_dir, env)
    roles.run("db", "upgrade")
    database_url = (
        f"postgresql+psycopg://{database['PGSQL_USER']}@{database['PGSQL_HOST']}:{database['PGSQL_PORT']}"
        f"/{database['PGSQL_DATABASE']}"
    )
    settings = load_settings(encryption_key=key, data_dir=data_dir, database_url=database_url)
    ctx = build_context(settings)
    try:
        users.create_user(ctx, None, "admin", admin_password, "admin")
    finally:
        ctx.close()

    url = f"http://127.0.0.1:{env['SPARKPLANE_PORT']}"
    recorder = Recorder()
    by_design: list[tuple[str, str, str]] = []  # (method, path, secret) of the answers allowed to carry one
    try:
        wait_ready(url, process=roles.start("api"), timeout=90)
        for role in ("worker", "watch-batch", "watch-interactive"):
            roles.start(role)
        hooks = {"response": [recorder.hook]}
        with httpx.Client(base_url=url, auth=("admin", admin_password), timeout=60, event_hooks=hooks) as admin:
            admin_token = admin.post("/api/v1/tokens", json={"name": "admin's"}).json()["token"]
            by_design.append(("POST", "/api/v1/tokens", admin_token))
            assert admin.post(
                "/api/v1/users", json={"username": "alice", "password": alice_password, "role": "user"}
            ).is_success
            made = admin.post("/api/v1/tokens", json={"name": "alice's"}, auth=("alice", alice_password))
            alice_token = made.json()["token"]
            by_design.append(("POST", "/api/v1/tokens", alice_token))
        headers = {"Authorization": f"Bearer {alice_token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60, event_hooks=hooks) as alice:
            fields = {
                "access_key_id": "AKIASECRETSTEST",
                "secret_access_key": secret_key,
                "session_token": session_token,
            }
            created = alice.post("/api/v1/credentials", json={"name": "lake", "kind": "s3", "fields": fields})
            assert created.status_code == 201, created.text
            assert alice.get("/api/v1/credentials").is_success and alice.get("/api/v1/credentials/lake").is_success
            with open(EXAMPLES / "pi.py", "rb") as f:
                alice_uri = alice.post("/api/v1/files", files={"file": ("pi.py", f)}).json()["uri"]
            session = alice.post("/api/v1/sessions", json={"kind": "pyspark", "credentials": ["lake"]}).json()
            path = f"/api/v1/sessions/{session['id']}"
            assert _wait_state(alice, path, {"idle", "error", "dead"}) == "idle"
            connect_url = str(alice.get(path).json()["connect_url"])
            connect_token = connect_url.rsplit("token=", 1)[1]
            by_design.append(("GET", path, connect_token))
            code = "print(spark.conf.get('spark.hadoop.fs.s3a.access.key'))"
            statement = alice.post(f"{path}/statements", json={"code": code}).json()
            done = _wait_state(alice, f"{path}/statements/{statement['id']}", {"available", "cancelled"})
            assert done == "available"
            assert alice.get(f"{path}/log").is_success
            batch = alice.post("/api/v1/batches", json={"file": alice_uri, "args": ["2"], "credentials": ["lake"]})
            assert batch.status_code == 201, batch.text
            batch_path = f"/api/v1/batches/{batch.json()['id']}"
            assert _wait_state(alice, batch_path, {"success", "dead", "killed"}) == "success"
            assert alice.get(f"{batch_path}/log", params={"limit": -1}).is_success
            assert alice.delete(path).is_success
            assert _wait_state(alice, path, {"dead", "killed"}) in ("dead", "killed")
            for listing in ("/api/v1/sessions", "/api/v1/batches", f"{path}/events", f"{batch_path}/events"):
                assert alice.get(listing).is_success
            for livy in (f"/livy/sessions/{session['id']}", f"/livy/batches/{batch.json()['id']}/log"):
                alice.get(livy)
            metrics = alice.get("/metrics").text
    finally:
        roles.stop_all()
        stop_local_runs(data_dir / "runs")

    found = {
        "admin password": admin_password,
        "alice's password": alice_password,
        "admin's API token": admin_token,
        "alice's API token": alice_token,
        "the credential's secret_access_key": secret_key,
        "the credential's session_token": session_token,
        "the session's Spark Connect token": connect_token,
        "SPARKPLANE_ENCRYPTION_KEY": key,
        "PGSQL_PASSWORD": database["PGSQL_PASSWORD"],
        "RABBITMQ_PASSWORD": broker["RABBITMQ_PASSWORD"],
    }
    leaks: list[str] = []
    # logs: every file the roles, the agent, Spark or the log collector wrote, but the 0600 hand-over files
    scanned = 0
    for file in sorted(p for p in data_dir.rglob("*") if p.is_file() and p.name in BY_DESIGN_FILES):
        assert file.stat().st_mode & 0o077 == 0, f"{file} is readable by others"
    for file in sorted(p for p in data_dir.rglob("*") if p.is_file() and p.name not in BY_DESIGN_FILES):
        if file.suffix in (".sqlite", ".db", ".jar", ".pyc") or "blob/files" in file.as_posix():
            continue
        text = file.read_bytes().decode(errors="replace")
        scanned += 1
        leaks += [f"{what} in {file.relative_to(data_dir)}" for what, value in found.items() if value in text]
    assert scanned > 10 and any(p.suffix == ".log" for p in data_dir.rglob("*.log"))
    # answers: each may carry only the secret it carries by design
    allowed = {(method, p, value) for method, p, value in by_design}
    for method, answer_path, body in recorder.answers:
        for what, value in found.items():
            if value in body and (method, answer_path, value) not in allowed:
                leaks.append(f"{what} in the answer to {method} {answer_path}")
    assert any(connect_token in body for _, p, body in recorder.answers if p == path)  # the owner does see it
    leaks += [f"{what} in /metrics" for what, value in found.items() if value in metrics]
    # the database: every column of every table, as text
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    text = json.dumps([str(v) for v in row])
                    leaks += [f"{what} in table {table.name}" for what, value in found.items() if value in text]
    finally:
        engine.dispose()
    assert not leaks, "\n".join(sorted(set(leaks)))
