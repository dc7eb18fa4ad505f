"""Users' credentials through the API and the services, on SQLite and PostgreSQL: stored encrypted, shown
never, usable only by their owner, and decrypted only into the spec a backend gets at launch."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from sparkplane.backends.fake import FakeBackend, FakeSessionBackend
from sparkplane.db.models import Batch, Session
from sparkplane.services import batch_runs, credentials, session_runs
from sparkplane.services.context import Context
from sparkplane.services.encryption import Cipher, DecryptionFailed, new_key, parse_key
from tests.integration.conftest import ADMIN, ALICE, BOB

ACCESS = "AKIAALICEEXAMPLE0001"
SECRET = "alice/Secret+Key/0123456789abcdefEXAMPLE"
TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token=="
LAKE = {
    "name": "lake",
    "kind": "s3",
    "fields": {
        "access_key_id": ACCESS,
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "endpoint": "http://minio.internal:9000",
        "region": "eu-west-1",
    },
}
SECRETS = (ACCESS, SECRET, TOKEN)


def assert_no_secret(body: str) -> None:
    for value in SECRETS:
        assert value not in body, "a secret field came back"


def create(api: TestClient, headers: dict[str, str] = ALICE, **overrides: object) -> dict[str, object]:
    response = api.post("/api/v1/credentials", headers=headers, json={**LAKE, **overrides})
    assert response.status_code == 201, response.text
    assert_no_secret(response.text)
    return dict(response.json())


# -- the resource ---------------------------------------------------------------------------------------------


def test_create_list_get_delete_and_no_secret_ever_comes_back(api: TestClient) -> None:
    created = create(api)
    assert created["name"] == "lake" and created["kind"] == "s3"
    assert created["details"] == {"endpoint": "http://minio.internal:9000", "region": "eu-west-1"}
    listed = api.get("/api/v1/credentials", headers=ALICE)
    assert [set(item) for item in listed.json()] == [{"name", "kind", "created_at"}]
    one = api.get("/api/v1/credentials/lake", headers=ALICE)
    assert one.status_code == 200 and one.json() == created
    for response in (listed, one):
        assert_no_secret(response.text)
    deleted = api.delete("/api/v1/credentials/lake", headers=ALICE)
    assert deleted.status_code == 200 and deleted.json()["name"] == "lake"
    assert_no_secret(deleted.text)
    assert api.get("/api/v1/credentials/lake", headers=ALICE).status_code == 404
    assert api.get("/api/v1/credentials", headers=ALICE).json() == []
    assert_no_secret(api.get("/openapi.json").text)


def test_each_user_sees_only_their_own_and_admins_are_no_exception(api: TestClient) -> None:
    create(api)
    create(api, headers=BOB, name="bobs")
    assert [c["name"] for c in api.get("/api/v1/credentials", headers=BOB).json()] == ["bobs"]
    assert [c["name"] for c in api.get("/api/v1/credentials", headers=ADMIN).json()] == []
    for headers in (BOB, ADMIN):
        for method in ("get", "delete"):
            response = getattr(api, method)("/api/v1/credentials/lake", headers=headers)
            assert response.status_code == 404 and response.json() == {"detail": "Credential 'lake' not found."}
    assert api.get("/api/v1/credentials/lake", headers=ALICE).status_code == 200  # still there


def test_a_duplicate_name_is_409_and_another_users_same_name_is_fine(api: TestClient) -> None:
    create(api)
    again = api.post("/api/v1/credentials", headers=ALICE, json=LAKE)
    assert again.status_code == 409 and "already have a credential named 'lake'" in again.json()["detail"]
    assert_no_secret(again.text)
    create(api, headers=BOB)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "gcs"}, "kind 'gcs' is not a credential kind"),
        ({"name": "no spaces"}, "credential name 'no spaces' is not valid"),
        ({"fields": {"access_key_id": ACCESS}}, "fields.secret_access_key is required"),
        ({"fields": {**LAKE["fields"], "colour": "red"}}, "fields.colour is not a field of a s3 credential"),
        ({"fields": {**LAKE["fields"], "secret_access_key": 7}}, "fields.secret_access_key: Input should be a valid"),
        ({"fields": {**LAKE["fields"], "secret_access_key": SECRET + "\n"}}, None),  # stripped: fine
        ({"fields": {**LAKE["fields"], "session_token": TOKEN + "\nx=1"}}, "fields.session_token must not contain"),
        ({"fields": {**LAKE["fields"], "endpoint": "gopher://x"}}, "fields.endpoint 'gopher://x' is not an endpoint"),
        ({"secret": "x"}, 'Unrecognized field "secret"'),
        ({"fields": None}, "fields: Input should be a valid dictionary"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_never_echoing_a_secret(
    api: TestClient, body: dict[str, object], expected: str | None
) -> None:
    response = api.post("/api/v1/credentials", headers=ALICE, json={**LAKE, **body})
    assert_no_secret(response.text)
    if expected is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400, response.text
    assert expected in response.json()["detail"]
    assert api.get("/api/v1/credentials", headers=ALICE).json() == []


def test_the_database_holds_no_plaintext(api: TestClient, ctx: Context) -> None:
    create(api)
    with ctx.db.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(text("SELECT * FROM credentials"))]
        dumps = [line for line in conn.exec_driver_sql("SELECT * FROM credentials")]
    assert len(rows) == 1
    stored = json.dumps(rows, default=str) + repr(dumps)
    assert_no_secret(stored)
    assert rows[0]["ciphertext"].startswith("gAAAA")  # a Fernet token
    opened = json.loads(ctx.cipher.open(rows[0]["ciphertext"]))
    assert opened["fields"]["secret_access_key"] == SECRET and opened["name"] == "lake"


# -- use in batches and sessions ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/v1/batches", "/livy/batches"])
def test_a_batch_gets_the_decrypted_confs_at_launch_and_its_row_only_the_names(
    api: TestClient, ctx: Context, uploaded: str, fake_backend: FakeBackend, prefix: str
) -> None:
    create(api)
    response = api.post(prefix, headers=ALICE, json={"file": uploaded, "credentials": ["lake"]})
    assert response.status_code == 201, response.text
    assert_no_secret(response.text)
    batch_id = response.json()["id"]
    with ctx.db.uow() as uow:
        row = uow.db.get(Batch, batch_id)
        assert row is not None
        assert row.request["credentials"] == ["lake"]
        assert_no_secret(json.dumps(row.request))
        uid = row.uid
    batch_runs.launch(ctx, batch_id)
    spec = fake_backend.runs[uid].spec
    assert spec.secret_conf["spark.hadoop.fs.s3a.access.key"] == ACCESS
    assert spec.secret_conf["spark.hadoop.fs.s3a.secret.key"] == SECRET
    assert spec.secret_conf["spark.hadoop.fs.s3a.session.token"] == TOKEN
    assert spec.secret_conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio.internal:9000"
    assert "spark.hadoop.fs.s3a.secret.key" not in spec.conf
    assert_no_secret(repr(spec))
    native = api.get(f"/api/v1/batches/{batch_id}", headers=ALICE)
    assert native.json()["credentials"] == ["lake"] and native.json()["state"] == "starting"
    assert_no_secret(native.text + api.get("/livy/batches", headers=ALICE).text)


@pytest.mark.parametrize("prefix", ["/api/v1/sessions", "/livy/sessions"])
def test_a_session_gets_the_decrypted_confs_at_launch_and_is_not_pooled(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend, prefix: str
) -> None:
    create(api)
    response = api.post(prefix, headers=ALICE, json={"kind": "pyspark", "credentials": ["lake", "lake"]})
    assert response.status_code == 201, response.text
    assert_no_secret(response.text)
    session_id = response.json()["id"]
    with ctx.db.uow() as uow:
        row = uow.db.get(Session, session_id)
        assert row is not None and row.request["credentials"] == ["lake"]
        assert_no_secret(json.dumps(row.request))
        uid = row.uid
    session_runs.launch(ctx, session_id)
    spec = fake_sessions.agents[uid].spec
    assert spec.secret_conf["spark.hadoop.fs.s3a.secret.key"] == SECRET
    assert not spec.poolable()
    assert_no_secret(repr(spec) + api.get(f"{prefix}/{session_id}", headers=ALICE).text)


@pytest.mark.parametrize("prefix", ["/api/v1/batches", "/livy/batches", "/api/v1/sessions", "/livy/sessions"])
@pytest.mark.parametrize("who", [BOB, ADMIN], ids=["another-user", "an-admin"])
def test_someone_elses_credential_is_404_naming_it_and_nothing_is_written(
    api: TestClient, ctx: Context, uploaded: str, prefix: str, who: dict[str, str]
) -> None:
    create(api)
    body: dict[str, object] = {"credentials": ["lake"]}
    body.update({"file": "s3://bucket/app.py"} if "batches" in prefix else {"kind": "pyspark"})
    response = api.post(prefix, headers=who, json=body)
    assert response.status_code == 404, response.text
    assert "Credential 'lake' not found." in response.text
    with ctx.db.uow() as uow:
        assert uow.batches.page(None, 0, 1)[1] == 0 and uow.sessions.page(None, 0, 1)[1] == 0


def test_livy_accepts_credentials_but_still_refuses_other_unknown_fields(api: TestClient, uploaded: str) -> None:
    create(api)
    refused = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark", "credential": ["lake"]})
    assert refused.status_code == 400 and refused.json() == {"msg": 'Unrecognized field "credential"'}
    refused = api.post("/livy/batches", headers=ALICE, json={"file": uploaded, "credentials": "lake"})
    assert refused.status_code == 400 and "credentials" in refused.json()["msg"]


def test_two_credentials_for_the_same_buckets_are_refused(api: TestClient, uploaded: str) -> None:
    create(api)
    create(api, name="lake2")
    create(api, name="eu", fields={**LAKE["fields"], "bucket": "eu-data"})
    both = api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded, "credentials": ["lake", "lake2"]})
    assert both.status_code == 400
    assert both.json()["detail"] == (
        "credentials 'lake' and 'lake2' would both configure every s3a bucket; ask for only one of them"
    )
    apart = api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded, "credentials": ["lake", "eu"]})
    assert apart.status_code == 201


def test_a_credential_deleted_before_launch_fails_the_run_with_a_clear_message(
    api: TestClient, ctx: Context, uploaded: str, fake_backend: FakeBackend, fake_sessions: FakeSessionBackend
) -> None:
    create(api)
    batch_id = api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded, "credentials": ["lake"]}).json()["id"]
    session_id = api.post("/api/v1/sessions", headers=ALICE, json={"credentials": ["lake"]}).json()["id"]
    api.delete("/api/v1/credentials/lake", headers=ALICE)
    batch_runs.launch(ctx, batch_id)
    session_runs.launch(ctx, session_id)
    batch = api.get(f"/api/v1/batches/{batch_id}", headers=ALICE).json()
    assert batch["state"] == "dead" and batch["failure_reason"] == "SUBMIT_ERROR"
    assert batch["message"] == "credential 'lake' was deleted after this run was created"
    session = api.get(f"/api/v1/sessions/{session_id}", headers=ALICE).json()
    assert session["state"] == "error" and "credential 'lake' was deleted" in session["message"]
    assert not fake_backend.runs and not fake_sessions.agents  # nothing was started without them


def test_a_wrong_key_fails_the_launch_without_a_secret_in_the_message(
    api: TestClient, ctx: Context, uploaded: str, fake_backend: FakeBackend
) -> None:
    create(api)
    batch_id = api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded, "credentials": ["lake"]}).json()["id"]
    ctx.cipher = Cipher([parse_key(new_key(), "K")])  # SPARKPLANE_ENCRYPTION_KEY changed, the old one forgotten
    batch_runs.launch(ctx, batch_id)
    batch = api.get(f"/api/v1/batches/{batch_id}", headers=ALICE).json()
    assert batch["state"] == "dead" and "cannot be decrypted with the configured keys" in batch["message"]
    assert "SPARKPLANE_ENCRYPTION_OLD_KEYS" in batch["message"]
    assert not fake_backend.runs


def test_a_ciphertext_moved_to_another_users_row_does_not_open(
    api: TestClient, ctx: Context, fake_backend: FakeBackend
) -> None:
    create(api)
    create(api, headers=BOB, name="bobs", fields={"access_key_id": "BOBKEY", "secret_access_key": "bob-secret"})
    with ctx.db.engine.begin() as conn:  # someone with write access to the database swaps the ciphertexts
        alices = conn.execute(text("SELECT ciphertext FROM credentials WHERE name = 'lake'")).scalar_one()
        conn.execute(text("UPDATE credentials SET ciphertext = :c WHERE name = 'bobs'"), {"c": alices})
        bob_id = conn.execute(text("SELECT id FROM users WHERE username = 'bob'")).scalar_one()
    with pytest.raises(credentials.UnusableCredential, match="does not belong to its row"):
        credentials.secret_conf(ctx, bob_id, ["bobs"])


def test_reencrypt_moves_every_credential_to_the_new_key(api: TestClient, ctx: Context) -> None:
    create(api)
    create(api, headers=BOB)
    old = parse_key(ctx.settings.generated_key_file().read_text(), "K")  # embedded mode's generated key
    new = parse_key(new_key(), "K")
    ctx.cipher = Cipher([new])  # the key changed and the old one was not kept: nothing can be moved
    with pytest.raises(ValueError, match="opens with no configured key; put the key it was encrypted with"):
        credentials.reencrypt_all(ctx)
    with ctx.db.engine.connect() as conn:
        before = [row[0] for row in conn.execute(text("SELECT ciphertext FROM credentials ORDER BY id"))]
    ctx.cipher = Cipher([new, old])  # SPARKPLANE_ENCRYPTION_KEY=new, SPARKPLANE_ENCRYPTION_OLD_KEYS=old
    assert credentials.reencrypt_all(ctx) == 2
    with ctx.db.engine.connect() as conn:
        after = [row[0] for row in conn.execute(text("SELECT ciphertext FROM credentials ORDER BY id"))]
    only_new = Cipher([new])
    for token in after:
        assert json.loads(only_new.open(token))["fields"]["secret_access_key"] == SECRET
    with pytest.raises(DecryptionFailed):
        only_new.open(before[0])


def test_nothing_secret_is_logged(
    api: TestClient, ctx: Context, uploaded: str, fake_backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    create(api)
    batch_id = api.post("/api/v1/batches", headers=ALICE, json={"file": uploaded, "credentials": ["lake"]}).json()["id"]
    batch_runs.launch(ctx, batch_id)
    api.post("/api/v1/credentials", headers=ALICE, json=LAKE)  # a 409
    assert "lake" in caplog.text  # the service does log, by name
    assert_no_secret(caplog.text)
