"""Users, roles and API tokens."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from sparkplane.services import security, users
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from tests.integration.conftest import ADMIN, ALICE, basic


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_principal(user: dict[str, Any]) -> Principal:
    return Principal(user["id"], user["username"], user["role"] == "admin")


def test_token_lifecycle(api: TestClient) -> None:
    created = api.post("/api/v1/tokens", headers=ALICE, json={"name": "laptop"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("spk_")
    assert api.get("/api/v1/users/me", headers=bearer(secret)).json()["username"] == "alice"

    listed = api.get("/api/v1/tokens", headers=ALICE).json()
    assert [t["name"] for t in listed] == ["laptop"]
    assert "token" not in listed[0]  # the secret is shown once only
    assert listed[0]["last_used_at"] is not None

    assert api.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=ALICE).json()["revoked"] is True
    response = api.get("/api/v1/users/me", headers=bearer(secret))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_tokens_are_private(api: TestClient) -> None:
    token_id = api.post("/api/v1/tokens", headers=ALICE, json={"name": "x"}).json()["id"]
    assert api.get("/api/v1/tokens", headers=basic("bob", "bob-password-1")).json() == []
    assert api.delete(f"/api/v1/tokens/{token_id}", headers=basic("bob", "bob-password-1")).status_code == 404


def test_admin_creates_users_who_can_log_in(api: TestClient) -> None:
    response = api.post("/api/v1/users", headers=ADMIN, json={"username": "carol", "password": "carol-pass-1"})
    assert response.status_code == 201 and response.json()["role"] == "user"
    assert api.get("/api/v1/users/me", headers=basic("carol", "carol-pass-1")).status_code == 200
    assert api.post("/api/v1/users", headers=ADMIN, json={"username": "carol", "password": "x" * 10}).status_code == 409
    assert [u["username"] for u in api.get("/api/v1/users", headers=ADMIN).json()] == ["admin", "alice", "bob", "carol"]


def test_only_admins_manage_users(api: TestClient) -> None:
    assert api.get("/api/v1/users", headers=ALICE).status_code == 403
    response = api.post("/api/v1/users", headers=ALICE, json={"username": "mallory", "password": "mallory-pass"})
    assert response.status_code == 403 and "admin" in response.json()["detail"]


def test_user_input_is_checked(api: TestClient) -> None:
    short = api.post("/api/v1/users", headers=ADMIN, json={"username": "dave", "password": "short"})
    assert short.status_code == 400 and "at least 8" in short.json()["detail"]
    bad_name = api.post("/api/v1/users", headers=ADMIN, json={"username": "Dave Smith", "password": "long-enough"})
    assert bad_name.status_code == 400 and "username" in bad_name.json()["detail"]
    bad_role = api.post(
        "/api/v1/users", headers=ADMIN, json={"username": "dave", "password": "long-enough", "role": "root"}
    )
    assert bad_role.status_code == 400


def test_disabled_users_cannot_log_in_and_password_changes_apply(api: TestClient) -> None:
    users = {u["username"]: u["id"] for u in api.get("/api/v1/users", headers=ADMIN).json()}
    assert api.get("/api/v1/users/me", headers=ALICE).status_code == 200  # cached as verified
    api.patch(f"/api/v1/users/{users['alice']}", headers=ADMIN, json={"is_active": False})
    assert api.get("/api/v1/users/me", headers=ALICE).status_code == 401
    api.patch(f"/api/v1/users/{users['alice']}", headers=ADMIN, json={"is_active": True, "password": "new-password"})
    assert api.get("/api/v1/users/me", headers=ALICE).status_code == 401  # the old password no longer works
    assert api.get("/api/v1/users/me", headers=basic("alice", "new-password")).status_code == 200


def test_users_change_their_own_password_but_not_their_role(api: TestClient) -> None:
    me = api.get("/api/v1/users/me", headers=ALICE).json()
    assert api.patch(f"/api/v1/users/{me['id']}", headers=ALICE, json={"role": "admin"}).status_code == 403
    assert api.patch(f"/api/v1/users/{me['id']}", headers=ALICE, json={"password": "alice-new-pass"}).status_code == 200


def test_a_token_checked_moments_ago_is_dropped_at_once_on_revoke_disable_or_role_change(
    api: TestClient, ctx: Context
) -> None:
    secret = api.post("/api/v1/tokens", headers=ALICE, json={"name": "poller"}).json()["token"]
    alice = api.get("/api/v1/users/me", headers=bearer(secret)).json()
    assert users.recent_token(ctx, secret) is not None  # the next request needs no database

    api.patch(f"/api/v1/users/{alice['id']}", headers=ADMIN, json={"role": "admin"})
    assert users.recent_token(ctx, secret) is None
    assert api.get("/api/v1/users/me", headers=bearer(secret)).json()["role"] == "admin"

    api.patch(f"/api/v1/users/{alice['id']}", headers=ADMIN, json={"is_active": False})
    response = api.get("/api/v1/users/me", headers=bearer(secret))
    assert response.status_code == 401 and "disabled" in response.json()["detail"]


def test_basic_credentials_checked_moments_ago_are_dropped_at_once_on_a_new_password_or_disable(
    api: TestClient, ctx: Context
) -> None:
    alice = api.get("/api/v1/users/me", headers=basic("alice", "alice-password")).json()
    assert users.recent_basic(ctx, users.basic_key("alice", "alice-password")) == as_principal(alice)
    assert users.recent_basic(ctx, users.basic_key("alice", "not-her-password")) is None  # only the exact pair

    api.patch(f"/api/v1/users/{alice['id']}", headers=ADMIN, json={"password": "alice-new-pass"})
    assert users.recent_basic(ctx, users.basic_key("alice", "alice-password")) is None
    assert api.get("/api/v1/users/me", headers=basic("alice", "alice-password")).status_code == 401
    assert api.get("/api/v1/users/me", headers=basic("alice", "alice-new-pass")).status_code == 200

    api.patch(f"/api/v1/users/{alice['id']}", headers=ADMIN, json={"is_active": False})
    assert api.get("/api/v1/users/me", headers=basic("alice", "alice-new-pass")).status_code == 401


def test_a_wrong_password_is_never_remembered(api: TestClient, ctx: Context) -> None:
    assert api.get("/api/v1/users/me", headers=basic("alice", "wrong-password")).status_code == 401
    assert users.recent_basic(ctx, users.basic_key("alice", "wrong-password")) is None


def test_with_no_token_cache_every_request_asks_the_database(api: TestClient, ctx: Context) -> None:
    ctx.recent_credentials = security.RecentCredentials(ttl_seconds=0)
    secret = api.post("/api/v1/tokens", headers=ALICE, json={"name": "uncached"}).json()["token"]
    assert api.get("/api/v1/users/me", headers=bearer(secret)).status_code == 200
    assert users.recent_token(ctx, secret) is None
