"""The Livy face for batches: exact shapes, status codes and states of livy-contract.md §1.2–1.4, §8."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sparkplane.backends.fake import FakeBackend
from sparkplane.domain.states import Observed
from sparkplane.services import batch_runs
from sparkplane.services.context import Context
from tests.integration.conftest import ALICE, BOB

LIVY_BATCH_KEYS = ["id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"]


def submit(api: TestClient, uri: str, **extra: object) -> dict[str, object]:
    response = api.post("/livy/batches", headers=ALICE, json={"file": uri, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_answers_201_with_location_and_livy_shape(api: TestClient, uploaded: str) -> None:
    response = api.post("/livy/batches", headers=ALICE, json={"file": uploaded, "args": ["1"], "name": "nightly"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/livy/batches/{body['id']}"
    assert list(body) == LIVY_BATCH_KEYS  # Livy serialises in declaration order
    assert body["state"] == "not_started"
    assert body["owner"] == "alice"
    assert body["name"] == "nightly"
    assert body["appInfo"] == {"driverLogUrl": None, "sparkUiUrl": None}
    assert body["log"] == []


def test_list_uses_key_sessions_and_pages_with_from_and_size(api: TestClient, uploaded: str) -> None:
    ids = [submit(api, uploaded)["id"] for _ in range(3)]
    body = api.get("/livy/batches", headers=ALICE, params={"from": 1, "size": 1}).json()
    assert list(body) == ["from", "total", "sessions"]
    assert body["from"] == 1 and body["total"] == 3
    assert [b["id"] for b in body["sessions"]] == [ids[1]]


def test_state_log_and_delete_through_a_whole_run(
    api: TestClient, uploaded: str, ctx: Context, fake_backend: FakeBackend
) -> None:
    batch_id = int(submit(api, uploaded)["id"])  # type: ignore[call-overload]
    batch_runs.launch(ctx, batch_id)
    assert api.get(f"/livy/batches/{batch_id}/state", headers=ALICE).json() == {"id": batch_id, "state": "starting"}

    key = next(iter(fake_backend.runs))
    fake_backend.runs[key].log.extend(f"line {i}" for i in range(150))
    fake_backend.set_state(key, Observed.RUNNING)
    batch_runs.reconcile(ctx, batch_id)
    assert api.get(f"/livy/batches/{batch_id}/state", headers=ALICE).json()["state"] == "running"

    fake_backend.set_state(key, Observed.SUCCEEDED)
    batch_runs.reconcile(ctx, batch_id)
    view = api.get(f"/livy/batches/{batch_id}", headers=ALICE).json()
    assert view["state"] == "success"
    assert view["appId"] == f"fake-{key[:8]}"
    assert view["log"] == [f"line {i}" for i in range(140, 150)]  # the last 10 lines, as Livy embeds

    log = api.get(f"/livy/batches/{batch_id}/log", headers=ALICE).json()
    assert list(log) == ["id", "from", "total", "log"]
    assert log["total"] == 151 and log["from"] == 51 and len(log["log"]) == 100  # default: the tail of 100
    page = api.get(f"/livy/batches/{batch_id}/log", headers=ALICE, params={"from": 0, "size": 2}).json()
    assert page["log"] == ["fake run of " + uploaded, "line 0"]
    everything = api.get(f"/livy/batches/{batch_id}/log", headers=ALICE, params={"from": 0, "size": -1}).json()
    assert len(everything["log"]) == 151

    fake_backend.forget(key)  # the collected log outlives the run's own files
    assert api.get(f"/livy/batches/{batch_id}/log", headers=ALICE).json()["total"] == 151

    # DELETE of a finished batch is idempotent, answers JSON, and changes nothing.
    for _ in range(2):
        response = api.delete(f"/livy/batches/{batch_id}", headers=ALICE)
        assert response.status_code == 200 and response.json() == {"msg": "deleted"}
    assert api.get(f"/livy/batches/{batch_id}/state", headers=ALICE).json()["state"] == "success"


def test_delete_before_launch_kills_and_the_launch_stands_down(
    api: TestClient, uploaded: str, ctx: Context, fake_backend: FakeBackend
) -> None:
    batch_id = int(submit(api, uploaded)["id"])  # type: ignore[call-overload]
    assert api.delete(f"/livy/batches/{batch_id}", headers=ALICE).json() == {"msg": "deleted"}
    assert api.get(f"/livy/batches/{batch_id}/state", headers=ALICE).json()["state"] == "killed"
    batch_runs.launch(ctx, batch_id)  # a late launch message
    assert fake_backend.submissions == {}


def test_delete_of_a_running_batch_cancels_it_on_the_backend(
    api: TestClient, uploaded: str, ctx: Context, fake_backend: FakeBackend
) -> None:
    batch_id = int(submit(api, uploaded)["id"])  # type: ignore[call-overload]
    batch_runs.launch(ctx, batch_id)
    assert api.delete(f"/livy/batches/{batch_id}", headers=ALICE).status_code == 200
    batch_runs.cancel(ctx, batch_id)
    assert api.get(f"/livy/batches/{batch_id}/state", headers=ALICE).json()["state"] == "killed"


def test_name_works_as_id(api: TestClient, uploaded: str) -> None:
    created = submit(api, uploaded, name="etl-daily")
    assert api.get("/livy/batches/etl-daily", headers=ALICE).json()["id"] == created["id"]


def test_another_users_batch_is_not_found(api: TestClient, uploaded: str) -> None:
    batch_id = submit(api, uploaded)["id"]
    for path in (f"/livy/batches/{batch_id}", f"/livy/batches/{batch_id}/state", f"/livy/batches/{batch_id}/log"):
        response = api.get(path, headers=BOB)
        assert response.status_code == 404
        assert response.json() == {"msg": f"Batch '{batch_id}' not found."}
    assert api.delete(f"/livy/batches/{batch_id}", headers=BOB).status_code == 404
    assert api.get("/livy/batches", headers=BOB).json()["total"] == 0


def test_version(api: TestClient) -> None:
    body = api.get("/livy/version", headers=ALICE).json()
    assert list(body) == ["version", "user", "revision", "branch", "date", "url"]
    assert body["version"] == "0.9.0"
