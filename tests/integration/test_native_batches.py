"""The native face: the same service behind clean REST, documented in /openapi.json."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sparkplane.backends.fake import FakeBackend
from sparkplane.domain.states import Observed
from sparkplane.services import batch_runs
from sparkplane.services.context import Context
from tests.integration.conftest import ADMIN, ALICE, BOB


def test_submit_get_list_log_events_kill(
    api: TestClient, uploaded: str, ctx: Context, fake_backend: FakeBackend
) -> None:
    body = {"file": uploaded, "args": ["--n", "5"], "conf": {"spark.sql.shuffle.partitions": "4"}, "name": "pi"}
    response = api.post("/api/v1/batches", headers=ALICE, json=body)
    assert response.status_code == 201
    batch = response.json()
    assert response.headers["location"] == f"/api/v1/batches/{batch['id']}"
    assert batch["state"] == "not_started" and batch["args"] == ["--n", "5"] and batch["owner"] == "alice"
    assert batch["conf"] == {"spark.sql.shuffle.partitions": "4"}

    batch_runs.launch(ctx, batch["id"])
    fake_backend.set_state(next(iter(fake_backend.runs)), Observed.FAILED, "EXIT_1")
    batch_runs.reconcile(ctx, batch["id"])

    got = api.get(f"/api/v1/batches/{batch['id']}", headers=ALICE).json()
    assert got["state"] == "dead" and got["failure_reason"] == "BACKEND_FAILED" and got["native_state"] == "EXIT_1"
    assert api.get("/api/v1/batches", headers=ALICE, params={"state": "dead"}).json()["total"] == 1
    assert api.get("/api/v1/batches", headers=ALICE, params={"state": "running"}).json()["total"] == 0
    log = api.get(f"/api/v1/batches/{batch['id']}/log", headers=ALICE, params={"offset": 0}).json()
    assert log["lines"] == [f"fake run of {uploaded}"]
    events = api.get(f"/api/v1/batches/{batch['id']}/events", headers=ALICE).json()
    assert [(e["from"], e["to"]) for e in events] == [
        (None, "not_started"),
        ("not_started", "starting"),
        ("starting", "dead"),
    ]
    assert api.delete(f"/api/v1/batches/{batch['id']}", headers=ALICE).json()["state"] == "dead"


def test_admin_sees_everyone_users_see_their_own(api: TestClient, uploaded: str) -> None:
    api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded})
    api.post("/api/v1/batches", headers=BOB, json={"file": "s3://bucket/bob.py"})
    assert api.get("/api/v1/batches", headers=ALICE).json()["total"] == 1
    assert api.get("/api/v1/batches", headers=BOB).json()["total"] == 1
    everyone = api.get("/api/v1/batches", headers=ADMIN).json()
    assert everyone["total"] == 2 and {b["owner"] for b in everyone["items"]} == {"alice", "bob"}


def test_bad_state_filter_is_400(api: TestClient) -> None:
    response = api.get("/api/v1/batches", headers=ALICE, params={"state": "exploded"})
    assert response.status_code == 400 and "state must be one of" in response.json()["detail"]


def test_openapi_documents_both_faces(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/batches",
        "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/log",
        "/api/v1/files",
        "/api/v1/users",
        "/api/v1/tokens",
        "/livy/batches",
        "/livy/batches/{batch_id}/log",
    ):
        assert path in paths


def test_openapi_documents_the_errors_each_face_sends(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # never sent: validation errors are 400s
    for path, model in (("/api/v1/batches", "NativeError"), ("/livy/batches", "LivyError")):
        responses = spec["paths"][path]["post"]["responses"]
        assert "422" not in responses
        for status in ("4XX", "5XX"):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
