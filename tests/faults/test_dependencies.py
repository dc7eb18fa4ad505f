"""The control plane's dependencies fail under it: RabbitMQ stopped for a while, PostgreSQL restarted, and
the database unreachable for a moment. Every role keeps running, the API says what is wrong (503 with a
message, never a 500), and every batch ends as it should, launched once.

The services are the suite's own (conftest.py, services.py), with a TCP proxy between the roles and
PostgreSQL to cut; the matrix then runs on the same plane, after these outages.
"""

from __future__ import annotations

import time
import uuid

import pytest

from .harness import Plane
from .services import PrivatePostgres, PrivateRabbit, TcpProxy

# All three are in the short subset plain pytest runs (conftest.py): together they cost about one cell.
pytestmark = [pytest.mark.faults, pytest.mark.faults_short, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

TERMINAL = ("success", "dead", "killed")


def submit(plane: Plane, app_file: str, seconds: int) -> int:
    response = plane.http.post("/livy/batches", json={"file": app_file, "args": [str(seconds)]})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def finish(plane: Plane, *batch_ids: int) -> None:
    for batch_id in batch_ids:
        state = plane.poll(lambda b=batch_id: plane.batch_state(b), TERMINAL, f"batch {batch_id}", 120)
        assert state == "success", plane.diagnostics()
        assert plane.launch_counts()[plane.uid_of(batch_id)] == 1, plane.diagnostics()
    plane.all_alive()
    plane.assert_no_strays()


def test_rabbitmq_stopped_for_a_while_then_restarted(plane: Plane, app_file: str, rabbit: PrivateRabbit) -> None:
    running = submit(plane, app_file, 4)
    plane.poll(lambda: plane.batch_state(running), ("running",), "batch running")
    rabbit.stop()
    try:
        queued = []
        for _ in range(2):
            started = time.monotonic()
            queued.append(submit(plane, app_file, 1))  # the outbox keeps the launch; the API does not wait
            assert time.monotonic() - started < 5.0, "POST /livy/batches waited for the broker"
        ready = plane.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] != "ok", ready.text
        time.sleep(3)  # long enough for every role to notice the broker is gone
        plane.all_alive()
    finally:
        rabbit.start()
    finish(plane, running, *queued)


def test_postgresql_restarted(plane: Plane, app_file: str, postgres: PrivatePostgres) -> None:
    running = submit(plane, app_file, 5)
    plane.poll(lambda: plane.batch_state(running), ("running",), "batch running")
    postgres.stop()
    try:
        down = plane.http.get("/livy/batches")
        assert down.status_code == 503, down.text
        assert "database" in down.json()["msg"], down.text
        time.sleep(2)
    finally:
        postgres.start()
    after = submit(plane, app_file, 1)  # the pools reconnect (pre-ping) without any role restarting
    finish(plane, running, after)


def test_database_briefly_unreachable_answers_503_then_recovers(plane: Plane, app_file: str, proxy: TcpProxy) -> None:
    running = submit(plane, app_file, 5)
    plane.poll(lambda: plane.batch_state(running), ("running",), "batch running")
    proxy.cut()
    try:
        for method, path, body in (
            ("GET", "/livy/batches", None),
            ("POST", "/livy/batches", {"file": app_file, "args": ["1"], "name": f"cut-{uuid.uuid4().hex[:6]}"}),
            ("GET", "/api/v1/clusters", None),
            ("GET", f"/api/v1/batches/{running}", None),  # a polled read: on the event loop (db/loop_reads.py)
            ("GET", f"/livy/batches/{running}/state", None),
        ):
            response = plane.http.request(method, path, json=body)
            assert response.status_code == 503, f"{method} {path}: {response.status_code} {response.text}"
            message = next(iter(response.json().values()))
            assert "database" in message and "unavailable" in message, response.text
            assert response.headers.get("Retry-After"), response.headers
        time.sleep(2)
        plane.all_alive()
    finally:
        proxy.restore()
    after = submit(plane, app_file, 1)
    finish(plane, running, after)
    names = [b["name"] for b in plane.get_json("/livy/batches", size=1000)["sessions"]]
    assert not any(n and n.startswith("cut-") for n in names), "a request refused with 503 must write nothing"
