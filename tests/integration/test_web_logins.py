"""The web UI's cookie login on the in-process app: log in (with the login form's CSRF token), use the cookie,
the CSRF rule for changes, expiry (idle and hard limit), log out, disabled users, and the pages' redirect."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sparkplane.api.app import create_app
from sparkplane.services import security
from sparkplane.services.context import Context
from tests.conftest import FakeClock
from tests.integration.conftest import ADMIN, BOB

COOKIE = "sparkplane_session"


def login_form(client: TestClient, path: str = "/ui/login") -> str:
    """Open the login page as a browser does: it sets the login CSRF cookie and puts the same value in a <meta>."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="login-csrf" content="([^"]+)">', page.text)
    assert found, page.text[:500]
    assert "sparkplane_login_csrf" in client.cookies
    return found.group(1)


def log_in(client: TestClient, username: str, password: str, **extra: object) -> str:
    """Log in like the login page's script; returns the page CSRF token of the new login."""
    token = login_form(client)
    response = client.post(
        "/ui/login", json={"username": username, "password": password, **extra}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    page = client.get("/ui/")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text[:500]
    return found.group(1)


def browser(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx), raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def alice(ctx: Context) -> tuple[TestClient, str]:
    client = browser(ctx)
    return client, log_in(client, "alice", "alice-password")


def test_login_sets_an_httponly_samesite_cookie_that_authenticates(ctx: Context) -> None:
    client = browser(ctx)
    token = login_form(client)
    response = client.post(
        "/ui/login",
        json={"username": "alice", "password": "alice-password", "next": "/ui/batches"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"username": "alice", "next": "/ui/batches"}
    set_cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # embedded runs on plain http://127.0.0.1; web_cookie_secure turns it on
    assert client.get("/api/v1/users/me").json()["username"] == "alice"
    # the stored value is a hash: the cookie's secret appears nowhere in the database
    with ctx.db.uow() as uow:
        assert uow.web_logins.by_hash(client.cookies[COOKIE]) is None
        assert uow.web_logins.by_hash(security.token_hash(client.cookies[COOKIE])) is not None


def test_wrong_password_is_a_json_401_without_a_basic_challenge(ctx: Context) -> None:
    client = browser(ctx)
    token = login_form(client)
    response = client.post(
        "/ui/login", json={"username": "alice", "password": "wrong-password"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password"}
    assert "www-authenticate" not in response.headers  # it would pop the browser's own password dialog
    assert COOKIE not in client.cookies


@pytest.mark.parametrize("sent", [None, "forged-token"])
def test_login_without_the_login_forms_token_is_refused(ctx: Context, sent: str | None) -> None:
    client = browser(ctx)
    login_form(client)
    headers = {"X-CSRF-Token": sent} if sent else {}
    response = client.post("/ui/login", json={"username": "alice", "password": "alice-password"}, headers=headers)
    assert response.status_code == 403
    assert "reload the login page" in response.json()["detail"]
    assert COOKIE not in client.cookies


def test_next_never_leaves_the_ui(ctx: Context) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/ui//evil.example", "/api/v1/users"):
        client = browser(ctx)
        token = login_form(client)
        response = client.post(
            "/ui/login",
            json={"username": "alice", "password": "alice-password", "next": target},
            headers={"X-CSRF-Token": token},
        )
        assert response.json()["next"] == "/ui/", target


def test_a_change_with_the_cookie_needs_the_csrf_header(alice: tuple[TestClient, str]) -> None:
    client, csrf = alice
    missing = client.post("/api/v1/tokens", json={"name": "laptop"})
    assert missing.status_code == 403
    assert "X-CSRF-Token" in missing.json()["detail"]
    wrong = client.post("/api/v1/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    assert "wrong X-CSRF-Token" in wrong.json()["detail"]
    assert client.get("/api/v1/tokens").json() == []  # nothing was made
    right = client.post("/api/v1/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf})
    assert right.status_code == 201, right.text
    assert client.delete(f"/api/v1/tokens/{right.json()['id']}").status_code == 403


def test_the_authorization_header_wins_over_the_cookie(alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    assert client.get("/api/v1/users/me", headers=BOB).json()["username"] == "bob"
    # Basic needs no CSRF token: it is not the cookie that authenticates this request
    assert client.post("/api/v1/tokens", json={"name": "bob's"}, headers=BOB).status_code == 201


def test_a_login_ends_after_the_idle_limit(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(ctx.settings.web_login_idle_seconds - 120)
    assert client.get("/api/v1/users/me").status_code == 200  # used: the idle limit starts again from here
    clock.advance(ctx.settings.web_login_idle_seconds - 120)
    assert client.get("/api/v1/users/me").status_code == 200
    clock.advance(ctx.settings.web_login_idle_seconds + 1)
    ended = client.get("/api/v1/users/me")
    assert ended.status_code == 401
    assert "log in again" in ended.json()["detail"]
    assert "www-authenticate" not in ended.headers


def test_a_login_ends_at_the_hard_limit_however_busy(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    step = ctx.settings.web_login_idle_seconds / 2
    elapsed = 0.0
    while elapsed + step < ctx.settings.web_login_max_seconds:
        clock.advance(step)
        elapsed += step
        assert client.get("/api/v1/users/me").status_code == 200
    clock.advance(ctx.settings.web_login_max_seconds - elapsed + 1)
    assert client.get("/api/v1/users/me").status_code == 401


def test_logout_deletes_the_login(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, csrf = alice
    cookie = client.cookies[COOKIE]
    assert client.post("/ui/logout").status_code == 403  # logging out is a change: CSRF applies
    response = client.post("/ui/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert COOKIE not in client.cookies
    replay = browser(ctx)
    replay.cookies.set(COOKIE, cookie)
    assert replay.get("/api/v1/users/me").status_code == 401  # the old cookie is dead server-side too


def test_a_disabled_users_login_stops_working(ctx: Context, api: TestClient, alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    alice_id = client.get("/api/v1/users/me").json()["id"]
    assert api.patch(f"/api/v1/users/{alice_id}", json={"is_active": False}, headers=ADMIN).status_code == 200
    assert client.get("/api/v1/users/me").status_code == 401
    assert client.get("/ui/clusters").status_code == 303


def test_a_new_password_ends_the_users_other_logins(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, csrf = alice
    other = browser(ctx)
    log_in(other, "alice", "alice-password")
    alice_id = client.get("/api/v1/users/me").json()["id"]
    response = client.patch(
        f"/api/v1/users/{alice_id}", json={"password": "a-new-password"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/users/me").status_code == 200  # the browser that changed it stays in
    assert other.get("/api/v1/users/me").status_code == 401


def test_pages_send_a_browser_without_a_login_to_the_login_page(ctx: Context) -> None:
    client = browser(ctx)
    response = client.get("/ui/batches/7?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=/ui/batches/7%3Fx%3D1"
    client.cookies.set(COOKIE, "not-a-login")
    assert client.get("/ui/").status_code == 303
    assert client.get("/", headers={"Accept": "text/html"}).headers["location"] == "/ui/"
    assert client.get("/").json()["ui"] == "/ui/"


def test_pages_carry_strict_security_headers_and_the_csrf_token(alice: tuple[TestClient, str]) -> None:
    client, csrf = alice
    page = client.get("/ui/clusters")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    assert client.get("/ui/login").status_code == 303  # logged in already: straight on


def test_the_admin_page_is_for_admins(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    refused = client.get("/ui/admin")
    assert refused.status_code == 403
    assert "Admins only" in refused.text
    admin = browser(ctx)
    log_in(admin, "admin", "admin-password-1")
    assert admin.get("/ui/admin").status_code == 200
    assert 'href="/ui/admin"' in admin.get("/ui/").text
    assert 'href="/ui/admin"' not in client.get("/ui/").text


def test_static_files_are_served_and_nothing_else(ctx: Context) -> None:
    client = browser(ctx)
    css = client.get("/ui/static/sparkplane.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/ui/static/sparkplane.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ("../templates/base.html", "..%2F..%2Fapi%2Fapp.py", "nope.js", "pages"):
        assert client.get(f"/ui/static/{bad}").status_code == 404, bad


def test_cleanup_deletes_logins_that_expired_unused(ctx: Context, alice: tuple[TestClient, str]) -> None:
    from sparkplane.services.cleanup import run_cleanup

    client, _ = alice
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    assert run_cleanup(ctx).expired_web_logins == 0
    clock.advance(ctx.settings.web_login_idle_seconds + 1)
    assert run_cleanup(ctx).expired_web_logins == 1
    with ctx.db.uow() as uow:
        assert uow.web_logins.by_hash(security.token_hash(client.cookies[COOKIE])) is None


def test_logging_in_again_replaces_the_browsers_earlier_login(ctx: Context, alice: tuple[TestClient, str]) -> None:
    client, _ = alice
    cookie = next(c for c in client.cookies.jar if c.name == COOKIE)
    first = str(cookie.value)
    client.cookies.delete(COOKIE)  # the login page redirects a logged-in browser: open the form without it
    token = login_form(client)
    client.cookies.set(COOKIE, first, domain=cookie.domain)
    response = client.post(
        "/ui/login", json={"username": "alice", "password": "alice-password"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    assert response.cookies[COOKIE] != first
    with ctx.db.uow() as uow:
        assert uow.web_logins.by_hash(security.token_hash(first)) is None
