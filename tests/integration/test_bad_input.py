"""Every bad input gets a 4xx with a message a person can act on, and nothing half-written stays behind."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sparkplane.services.context import Context
from tests.integration.conftest import ALICE, BOB, basic


def batch_count(ctx: Context) -> int:
    with ctx.db.uow() as uow:
        return uow.batches.page(None, 0, 1)[1]


@pytest.mark.parametrize("prefix", ["/livy/batches", "/api/v1/batches"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"fiel": "x.py"}, 'Unrecognized field "fiel"'),
        ({"conf": {}}, 'Missing required field "file"'),
        ({"driverMemory": "lots"}, "driverMemory 'lots' is not a memory size"),
        ({"executorMemory": "2 gigs"}, "executorMemory '2 gigs' is not a memory size"),
        ({"executorCores": -1}, "executorCores must be a whole number of at least 1, not -1"),
        ({"numExecutors": 0}, "numExecutors must be a whole number of at least 1, not 0"),
        ({"driverCores": 2**70}, f"driverCores must be at most 2147483647, not {2**70}"),
        ({"conf": {"spark sql": "1"}}, "conf key 'spark sql' is not a Spark configuration name"),
        ({"name": "123"}, "name must be 1 to 255 characters and not only digits"),
        ({"proxyUser": "root"}, "proxyUser 'root' is not you"),
    ],
)
def test_bad_fields_are_400_naming_the_problem(
    api: TestClient, ctx: Context, uploaded: str, prefix: str, body: dict[str, object], expected: str
) -> None:
    payload = {"file": uploaded, **body} if "fiel" not in body and body != {"conf": {}} else body
    response = api.post(prefix, headers=ALICE, json=payload)
    assert response.status_code == 400, response.text
    message = response.json()["msg" if prefix.startswith("/livy") else "detail"]
    assert expected in message
    assert batch_count(ctx) == 0


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("/etc/passwd", "outside the blob storage"),
        ("file:///etc/passwd", "outside the blob storage"),
        ("local:/etc/passwd", "outside the blob storage"),
        ("../../etc/passwd", "is not a relative path inside the blob storage"),
        ("uploads/1/../../../etc/passwd", "is not a relative path inside the blob storage"),
        ("ftp://example.invalid/app.py", "uses the scheme 'ftp:'"),
        ("jobs/missing.py", "does not exist in the blob storage"),
        ("", "file is empty"),
    ],
)
def test_files_outside_the_allowed_places_are_refused(api: TestClient, ctx: Context, file: str, expected: str) -> None:
    response = api.post("/livy/batches", headers=ALICE, json={"file": file})
    assert response.status_code == 400
    assert expected in response.json()["msg"]
    assert batch_count(ctx) == 0


def test_a_blob_path_escaping_through_a_symlink_is_refused(api: TestClient, ctx: Context) -> None:
    root = ctx.settings.data_dir / "blob"
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "sneaky.py").symlink_to("/etc/passwd")
    response = api.post("/livy/batches", headers=ALICE, json={"file": "jobs/sneaky.py"})
    assert response.status_code == 400


def test_another_users_upload_cannot_be_run(api: TestClient, uploaded: str) -> None:
    response = api.post("/livy/batches", headers=BOB, json={"file": uploaded})
    assert response.status_code == 400
    assert "does not exist" in response.json()["msg"]


def test_jars_and_py_files_follow_the_same_rule(api: TestClient, uploaded: str) -> None:
    response = api.post("/livy/batches", headers=ALICE, json={"file": uploaded, "pyFiles": ["/etc/hosts"]})
    assert response.status_code == 400
    assert "pyFiles[0]" in response.json()["msg"]


def test_remote_uris_pass_through(api: TestClient) -> None:
    response = api.post("/livy/batches", headers=ALICE, json={"file": "s3://bucket/app.py"})
    assert response.status_code == 201


def test_oversized_body_is_413(api: TestClient, ctx: Context, uploaded: str) -> None:
    big = {"file": uploaded, "args": ["x" * ctx.settings.max_body_bytes]}
    response = api.post("/livy/batches", headers=ALICE, json=big)
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["msg"]
    assert batch_count(ctx) == 0


def test_oversized_upload_is_413_and_leaves_no_file(api: TestClient, ctx: Context) -> None:
    ctx.settings.max_upload_bytes = 1000
    response = api.post("/api/v1/files", headers=ALICE, files={"file": ("big.py", b"#" * 5000)})
    assert response.status_code == 413
    uploads = ctx.settings.data_dir / "blob" / "uploads"
    assert not uploads.exists() or not any(p.is_file() for p in uploads.rglob("*"))


def test_empty_upload_is_400(api: TestClient) -> None:
    response = api.post("/api/v1/files", headers=ALICE, files={"file": ("app.py", b"")})
    assert response.status_code == 400 and "empty" in response.json()["detail"]


def test_malformed_json_is_400(api: TestClient) -> None:
    response = api.post("/livy/batches", headers={**ALICE, "Content-Type": "application/json"}, content=b"{nope")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["msg"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong-password"),
        basic("nobody", "whatever-pass"),
        {"Authorization": "Bearer spk_not-a-token"},
        {"Authorization": "Basic %%%"},
        {"Authorization": "Digest abc"},
    ],
)
def test_bad_credentials_are_401(api: TestClient, headers: dict[str, str]) -> None:
    for path in ("/livy/batches", "/api/v1/batches"):
        response = api.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.json().get("msg") or response.json().get("detail")


def test_health_needs_no_login_but_everything_else_does(api: TestClient) -> None:
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    assert api.get("/livy/version").status_code == 401
    assert api.get("/api/v1/users/me").status_code == 401


def test_unknown_route_is_json_404(api: TestClient) -> None:
    response = api.get("/api/v1/nothing-here", headers=ALICE)
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


BEYOND_INT64 = 2**70


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/batches/{BEYOND_INT64}"),
        ("DELETE", f"/api/v1/batches/{BEYOND_INT64}"),
        ("GET", f"/api/v1/sessions/{BEYOND_INT64}/events"),
        ("GET", f"/livy/batches/{BEYOND_INT64}/state"),
        ("GET", f"/livy/sessions/{BEYOND_INT64}"),
        ("DELETE", f"/api/v1/tokens/{BEYOND_INT64}"),
        ("GET", "/livy/batches/²"),  # str.isdigit() is true of it, int() is not: a name, found by none
        # more digits than Python's int() converts from a string
        pytest.param("GET", "/livy/sessions/" + "9" * 5000, id="GET-/livy/sessions/<5000 digits>"),
    ],
)
def test_ids_no_row_can_have_are_404_not_500(api: TestClient, method: str, path: str) -> None:
    response = api.request(method, path, headers=ALICE)
    assert response.status_code == 404, response.text
    assert response.json().get("msg" if path.startswith("/livy") else "detail")


def test_a_statement_number_no_row_can_have_is_404(api: TestClient, ctx: Context) -> None:
    from tests.integration.resources import make_owned

    owned = make_owned(api, ctx)
    response = api.get(f"/api/v1/sessions/{owned.session_id}/statements/{BEYOND_INT64}", headers=ALICE)
    assert response.status_code == 404 and response.json() == {"detail": "Statement not found"}


@pytest.mark.parametrize(
    "path",
    ["/livy/batches?from={n}", "/livy/sessions?from={n}", "/api/v1/batches?offset={n}", "/api/v1/sessions?offset={n}"],
)
def test_offsets_past_every_row_give_an_empty_page(api: TestClient, uploaded: str, path: str) -> None:
    api.post("/livy/batches", headers=ALICE, json={"file": uploaded})
    response = api.get(path.format(n=BEYOND_INT64), headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("sessions", body.get("items")) == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/batches", "GET, POST"),
        ("PUT", "/api/v1/batches/1", "DELETE, GET"),
        ("POST", "/livy/sessions/1", "DELETE, GET"),
        ("DELETE", "/healthz", "GET"),
        ("PATCH", "/api/v1/users/me", "GET"),  # not PATCH /users/{user_id} with the id "me"
    ],
)
def test_a_wrong_method_is_405_naming_every_method_of_the_resource(
    api: TestClient, method: str, path: str, allow: str
) -> None:
    response = api.request(method, path, headers=ALICE)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert response.json().get("msg" if path.startswith("/livy") else "detail") == "Method Not Allowed"
