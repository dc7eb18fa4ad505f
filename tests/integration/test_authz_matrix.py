"""Who may call each route: one table, every route of the app, four callers.

The test is generated from the app's own routes, so a route added without an entry in AUTHZ fails here by
name: nobody adds a route without deciding who may call it. For each route, alice (the owner) first makes
what the route needs through the API (an upload, a batch, an idle session with a statement, a token), then
one caller makes one request. Callers: nobody (no credentials), bob (another plain user), alice, and the
admin. What "owner" means per route:
- a route on one of alice's things (a batch, a session, a statement, a token): alice;
- a route that creates something: the caller creating their own (POST /batches and /sessions refer to
  alice's upload, so the upload's privacy is checked there: for bob it does not exist);
- /api/v1/users/{user_id}: alice's own account; admin-only routes: nobody but the admin;
- lists and "me": any signed-in user, each seeing only their own things.
Besides the status, every answer is checked for leaks: a caller who is not alice never sees her name or
her secrets (a session's Spark Connect token, an API token), and the admin never sees her secrets either.
"""

from __future__ import annotations

import functools
import string
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response

from sparkplane.api.app import create_app
from sparkplane.services.context import Context
from tests.integration.conftest import ADMIN, ALICE, BOB
from tests.integration.resources import Owned, make_owned


class Expect(NamedTuple):
    anonymous: int
    other: int
    owner: int
    admin: int


# fmt: off
AUTHZ: dict[tuple[str, str], Expect] = {
    # operations: health is open to all, so probes need no credentials; /metrics wants any principal (DESIGN)
    ("GET", "/healthz"):                                         Expect(200, 200, 200, 200),
    ("GET", "/readyz"):                                          Expect(200, 200, 200, 200),
    ("GET", "/metrics"):                                         Expect(401, 200, 200, 200),
    ("GET", "/openapi.json"):                                    Expect(200, 200, 200, 200),
    ("GET", "/docs"):                                            Expect(200, 200, 200, 200),
    ("GET", "/docs/oauth2-redirect"):                            Expect(200, 200, 200, 200),
    ("GET", "/redoc"):                                           Expect(200, 200, 200, 200),
    # accounts
    ("GET", "/api/v1/users/me"):                                 Expect(401, 200, 200, 200),
    ("GET", "/api/v1/users"):                                    Expect(401, 403, 403, 200),
    ("POST", "/api/v1/users"):                                   Expect(401, 403, 403, 201),
    ("PATCH", "/api/v1/users/{user_id}"):                        Expect(401, 403, 200, 200),
    ("GET", "/api/v1/tokens"):                                   Expect(401, 200, 200, 200),
    ("POST", "/api/v1/tokens"):                                  Expect(401, 201, 201, 201),
    ("DELETE", "/api/v1/tokens/{token_id}"):                     Expect(401, 404, 200, 200),
    ("POST", "/api/v1/files"):                                   Expect(401, 201, 201, 201),
    # native batches
    ("POST", "/api/v1/batches"):                                 Expect(401, 400, 201, 201),
    ("GET", "/api/v1/batches"):                                  Expect(401, 200, 200, 200),
    ("GET", "/api/v1/batches/{batch_id}"):                       Expect(401, 404, 200, 200),
    ("GET", "/api/v1/batches/{batch_id}/log"):                   Expect(401, 404, 200, 200),
    ("GET", "/api/v1/batches/{batch_id}/events"):                Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/batches/{batch_id}"):                    Expect(401, 404, 200, 200),
    # native sessions: admins read and stop anyone's session but run no code in it (its data credentials
    # are the owner's; the Spark Connect URL is the owner's alone for the same reason)
    ("POST", "/api/v1/sessions"):                                Expect(401, 400, 201, 201),
    ("GET", "/api/v1/sessions"):                                 Expect(401, 200, 200, 200),
    ("GET", "/api/v1/sessions/{session_id}"):                    Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/sessions/{session_id}"):                 Expect(401, 404, 200, 200),
    ("GET", "/api/v1/sessions/{session_id}/log"):                Expect(401, 404, 200, 200),
    ("GET", "/api/v1/sessions/{session_id}/events"):             Expect(401, 404, 200, 200),
    ("POST", "/api/v1/sessions/{session_id}/statements"):        Expect(401, 404, 201, 403),
    ("GET", "/api/v1/sessions/{session_id}/statements"):         Expect(401, 404, 200, 200),
    ("GET", "/api/v1/sessions/{session_id}/statements/{statement_id}"): Expect(401, 404, 200, 200),
    ("POST", "/api/v1/sessions/{session_id}/statements/{statement_id}/cancel"): Expect(401, 404, 200, 200),
    ("POST", "/api/v1/sessions/{session_id}/completion"):        Expect(401, 404, 200, 403),
    # Livy batches
    ("GET", "/livy/version"):                                    Expect(401, 200, 200, 200),
    ("POST", "/livy/batches"):                                   Expect(401, 400, 201, 201),
    ("GET", "/livy/batches"):                                    Expect(401, 200, 200, 200),
    ("GET", "/livy/batches/{batch_id}"):                         Expect(401, 404, 200, 200),
    ("GET", "/livy/batches/{batch_id}/state"):                   Expect(401, 404, 200, 200),
    ("GET", "/livy/batches/{batch_id}/log"):                     Expect(401, 404, 200, 200),
    ("DELETE", "/livy/batches/{batch_id}"):                      Expect(401, 404, 200, 200),
    # Livy sessions
    ("POST", "/livy/sessions"):                                  Expect(401, 400, 201, 201),
    ("GET", "/livy/sessions"):                                   Expect(401, 200, 200, 200),
    ("GET", "/livy/sessions/{session_id}"):                      Expect(401, 404, 200, 200),
    ("GET", "/livy/sessions/{session_id}/state"):                Expect(401, 404, 200, 200),
    ("GET", "/livy/sessions/{session_id}/log"):                  Expect(401, 404, 200, 200),
    ("DELETE", "/livy/sessions/{session_id}"):                   Expect(401, 404, 200, 200),
    ("POST", "/livy/sessions/{session_id}/statements"):          Expect(401, 404, 201, 403),
    ("GET", "/livy/sessions/{session_id}/statements"):           Expect(401, 404, 200, 200),
    ("GET", "/livy/sessions/{session_id}/statements/{statement_id}"): Expect(401, 404, 200, 200),
    ("POST", "/livy/sessions/{session_id}/statements/{statement_id}/cancel"): Expect(401, 404, 200, 200),
    ("POST", "/livy/sessions/{session_id}/completion"):          Expect(401, 404, 200, 403),
    # clusters: anyone makes their own; another user's is 404; admins manage all. DELETE of a RUNNING cluster
    # is refused to its owner and an admin alike (409: terminate it first), which still shows who may ask.
    ("POST", "/api/v1/clusters"):                                Expect(401, 201, 201, 201),
    ("GET", "/api/v1/clusters"):                                 Expect(401, 200, 200, 200),
    ("GET", "/api/v1/clusters/node-types"):                      Expect(401, 200, 200, 200),
    ("GET", "/api/v1/clusters/{cluster_id}"):                    Expect(401, 404, 200, 200),
    ("POST", "/api/v1/clusters/{cluster_id}/start"):             Expect(401, 404, 200, 200),
    ("POST", "/api/v1/clusters/{cluster_id}/restart"):           Expect(401, 404, 200, 200),
    ("POST", "/api/v1/clusters/{cluster_id}/resize"):            Expect(401, 404, 200, 200),
    ("POST", "/api/v1/clusters/{cluster_id}/terminate"):         Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/clusters/{cluster_id}"):                 Expect(401, 404, 409, 409),
    ("GET", "/api/v1/clusters/{cluster_id}/events"):             Expect(401, 404, 200, 200),
    ("GET", "/api/v1/clusters/{cluster_id}/nodes"):              Expect(401, 404, 200, 200),
    # a cluster node's report: its cluster's report token only, never a user's credentials
    ("POST", "/api/v1/clusters/by-uid/{cluster_uid}/report"):    Expect(401, 401, 401, 401),
    # users' data credentials are their owner's alone: not even an admin reads or deletes them
    ("POST", "/api/v1/credentials"):                             Expect(401, 201, 201, 201),
    ("GET", "/api/v1/credentials"):                              Expect(401, 200, 200, 200),
    ("GET", "/api/v1/credentials/{name}"):                       Expect(401, 404, 200, 404),
    ("DELETE", "/api/v1/credentials/{name}"):                    Expect(401, 404, 200, 404),
    # workspace: another user's folder or notebook is 404; admins read and manage all, but attach and run
    # no code in a notebook that is not theirs (its session has the owner's credentials), as with sessions
    ("GET", "/api/v1/workspace"):                                Expect(401, 200, 200, 200),
    ("POST", "/api/v1/workspace/folders"):                       Expect(401, 201, 201, 201),
    ("PATCH", "/api/v1/workspace/folders/{folder_id}"):          Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/workspace/folders/{folder_id}"):         Expect(401, 404, 204, 204),
    ("POST", "/api/v1/workspace/notebooks"):                     Expect(401, 201, 201, 201),
    ("POST", "/api/v1/workspace/import"):                        Expect(401, 201, 201, 201),
    ("GET", "/api/v1/workspace/notebooks/{notebook_id}"):        Expect(401, 404, 200, 200),
    ("PATCH", "/api/v1/workspace/notebooks/{notebook_id}"):      Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/workspace/notebooks/{notebook_id}"):     Expect(401, 404, 204, 204),
    ("GET", "/api/v1/workspace/notebooks/{notebook_id}/export"): Expect(401, 404, 200, 200),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/cells"): Expect(401, 404, 201, 201),
    ("PATCH", "/api/v1/workspace/notebooks/{notebook_id}/cells/{cell_id}"): Expect(401, 404, 200, 200),
    ("DELETE", "/api/v1/workspace/notebooks/{notebook_id}/cells/{cell_id}"): Expect(401, 404, 204, 204),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/cells/{cell_id}/run"): Expect(401, 404, 202, 403),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/run-all"): Expect(401, 404, 202, 403),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/cancel"): Expect(401, 404, 200, 200),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/clear-outputs"): Expect(401, 404, 200, 200),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/attach"): Expect(401, 404, 200, 403),
    ("POST", "/api/v1/workspace/notebooks/{notebook_id}/detach"): Expect(401, 404, 200, 200),
    # the web UI. Pages open with the browser's cookie login only (their script needs its CSRF token), so a
    # caller with Basic credentials is sent to the login page like nobody is (303). The login page, its
    # static files and `/` are open; logging in needs the login form's CSRF cookie, which no caller here has
    # (403). Cookie logins themselves are tested in test_web_logins.py.
    ("GET", "/"):                                                Expect(200, 200, 200, 200),
    ("GET", "/ui/login"):                                        Expect(200, 200, 200, 200),
    ("POST", "/ui/login"):                                       Expect(403, 403, 403, 403),
    ("POST", "/ui/logout"):                                      Expect(401, 204, 204, 204),
    ("GET", "/ui/static/{path}"):                                Expect(200, 200, 200, 200),
    ("GET", "/ui/"):                                             Expect(303, 303, 303, 303),
    ("GET", "/ui/clusters"):                                     Expect(303, 303, 303, 303),
    ("GET", "/ui/clusters/{cluster_id}"):                        Expect(303, 303, 303, 303),
    ("GET", "/ui/sql"):                                          Expect(303, 303, 303, 303),
    ("GET", "/ui/workspace"):                                    Expect(303, 303, 303, 303),
    ("GET", "/ui/notebooks/{notebook_id}"):                      Expect(303, 303, 303, 303),
    ("GET", "/ui/batches"):                                      Expect(303, 303, 303, 303),
    ("GET", "/ui/batches/{batch_id}"):                           Expect(303, 303, 303, 303),
    ("GET", "/ui/account"):                                      Expect(303, 303, 303, 303),
    ("GET", "/ui/admin"):                                        Expect(303, 303, 303, 303),
}
# fmt: on

CALLERS: dict[str, dict[str, str]] = {"anonymous": {}, "other": BOB, "owner": ALICE, "admin": ADMIN}


@functools.cache
def app_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers and mounts too.

    Routes are fixed when the app is built and creating it touches nothing but these two settings, so a stub
    context is enough at collection time. HEAD, which Starlette adds beside GET, is covered by the GET entry.
    """
    stub = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1, max_upload_bytes=1, max_notebook_bytes=1))
    found = []
    for route in iter_route_contexts(create_app(stub).routes):  # type: ignore[arg-type]
        methods = set(route.methods or {"*"})  # a mount or websocket has no methods: it needs an entry too
        if "GET" in methods:
            methods.discard("HEAD")
        found += [(method, str(route.path_format)) for method in sorted(methods)]  # {id:int} shown as {id}
    return found


def request_args(method: str, path: str, owned: Owned, caller: str) -> dict[str, Any]:
    """The body a route needs (valid for alice, so only the caller changes the answer)."""
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/users"): {"json": {"username": f"new-{caller}", "password": "long-enough-1"}},
        # alice's own password again: valid, and every later call can still sign in as her
        ("PATCH", "/api/v1/users/{user_id}"): {"json": {"password": "alice-password"}},
        ("POST", "/api/v1/tokens"): {"json": {"name": "ci"}},
        ("POST", "/api/v1/files"): {"files": {"file": ("job.py", b"print(2)\n")}},
        ("POST", "/api/v1/batches"): {"json": {"file": owned.upload}},
        ("POST", "/livy/batches"): {"json": {"file": owned.upload}},
        ("POST", "/api/v1/sessions"): {"json": {"kind": "pyspark", "pyFiles": [owned.upload]}},
        ("POST", "/livy/sessions"): {"json": {"kind": "pyspark", "pyFiles": [owned.upload]}},
        ("POST", "/api/v1/sessions/{session_id}/statements"): {"json": {"code": "2"}},
        ("POST", "/livy/sessions/{session_id}/statements"): {"json": {"code": "2"}},
        ("POST", "/api/v1/sessions/{session_id}/completion"): {"json": {"code": "spark.ra", "cursor": 8}},
        ("POST", "/livy/sessions/{session_id}/completion"): {"json": {"code": "spark.ra", "cursor": 8}},
        ("POST", "/api/v1/clusters"): {"json": {"cluster_name": f"c-{caller}", "num_workers": 1}},
        ("POST", "/api/v1/clusters/{cluster_id}/resize"): {"json": {"num_workers": 2}},
        ("POST", "/api/v1/clusters/by-uid/{cluster_uid}/report"): {"json": {"key": "x", "role": "master"}},
        ("POST", "/api/v1/workspace/folders"): {"json": {"name": f"folder-{caller}"}},
        ("PATCH", "/api/v1/workspace/folders/{folder_id}"): {"json": {"name": f"renamed-{caller}"}},
        ("POST", "/api/v1/workspace/notebooks"): {"json": {"name": f"nb-{caller}", "cells": [{"source": "1"}]}},
        ("POST", "/api/v1/workspace/import"): {"json": {"filename": f"{caller}.py", "content": "print(3)"}},
        ("PATCH", "/api/v1/workspace/notebooks/{notebook_id}"): {"json": {"name": f"renamed-{caller}"}},
        ("POST", "/api/v1/workspace/notebooks/{notebook_id}/cells"): {"json": {"kind": "sql", "source": "SELECT 1"}},
        ("PATCH", "/api/v1/workspace/notebooks/{notebook_id}/cells/{cell_id}"): {"json": {"source": "print(2)"}},
        ("POST", "/api/v1/workspace/notebooks/{notebook_id}/attach"): {"json": {}},
        ("POST", "/ui/login"): {"json": {"username": "alice", "password": "alice-password"}},
        ("POST", "/api/v1/credentials"): {
            "json": {
                "name": f"mine-{caller}",
                "kind": "s3",
                "fields": {"access_key_id": "AKIA00000000", "secret_access_key": "s3cr3t-value"},
            }
        },
    }
    return bodies.get((method, path), {})


def fill(path: str, owned: Owned) -> str:
    values = {
        "batch_id": owned.batch_id,
        "session_id": owned.session_id,
        "statement_id": owned.statement_id,
        "token_id": owned.token_id,
        "user_id": owned.user_id,
        "cluster_id": owned.cluster_id,
        "cluster_uid": owned.cluster_uid,
        "name": owned.credential,
        "folder_id": owned.folder_id,
        # attach needs a notebook that is not attached yet; every other notebook route, the attached one
        "notebook_id": owned.loose_notebook_id if path.endswith("/attach") else owned.notebook_id,
        "cell_id": owned.cell_id,
        "path": "sparkplane.css",
    }
    names = {name for _, name, _, _ in string.Formatter().parse(path) if name}
    unknown = names - values.keys()
    assert not unknown, f"{path}: say in fill() which of alice's things {sorted(unknown)} names"
    return path.format(**values)


def check_answer(path: str, caller: str, response: Response, owned: Owned) -> None:
    text = response.text
    if caller in ("anonymous", "other"):
        assert "alice" not in text, f"{caller} sees alice's things: {text[:300]}"
    if caller != "owner":
        for secret in owned.secrets():
            assert secret not in text, f"{caller} sees one of alice's secrets: {text[:300]}"
    if response.status_code >= 400:
        key = "msg" if path.startswith("/livy") else "detail"
        message = response.json().get(key)
        assert isinstance(message, str) and message.strip(), f"error without a message: {text[:300]}"
    if response.status_code == 401 and path.startswith("/ui/"):
        # the web UI's own calls never challenge: a Basic challenge pops the browser's password dialog
        assert "www-authenticate" not in response.headers
    elif response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


@pytest.fixture(params=["sqlite"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """SQLite only: who may call what is decided above the database; the rest of the suite runs on both."""
    return str(request.param)


ROUTES = sorted(set(app_routes()) | set(AUTHZ))


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_who_may_call_each_route(api: TestClient, ctx: Context, method: str, path: str) -> None:
    assert (method, path) in AUTHZ, (
        f"{method} {path} has no entry in AUTHZ ({__name__}): decide who may call it and add it to the table"
    )
    assert (method, path) in app_routes(), f"{method} {path} is in AUTHZ but the app has no such route"
    expected = AUTHZ[(method, path)]
    # Routes that change what they act on get a fresh set per caller, so the admin is not told "already
    # stopped" (or "restarting") after the owner.
    destroys = method == "DELETE" or path.endswith(("/cancel", "/restart", "/resize", "/terminate"))
    owned = make_owned(api, ctx)
    got = {}
    for caller, headers in CALLERS.items():
        if destroys and caller in ("owner", "admin"):
            owned = make_owned(api, ctx)  # so the admin is not told "already stopped" after the owner
        args = request_args(method, path, owned, caller)
        # follow_redirects=False: a page's answer to a caller without a login is the redirect itself
        response = api.request(method, fill(path, owned), headers=headers, follow_redirects=False, **args)
        check_answer(path, caller, response, owned)
        got[caller] = response.status_code
    assert Expect(**got) == expected, f"{method} {path}: expected {expected}, got {Expect(**got)}"
