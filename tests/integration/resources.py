"""Things alice owns, made through the API with the fake backends, for tests that call routes on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from sparkplane.services import batch_runs, cluster_runs, session_runs
from sparkplane.services.context import Context
from tests.integration.conftest import ALICE


@dataclass(frozen=True, slots=True)
class Owned:
    """What alice made through the API before a call (a fresh set before each call that destroys)."""

    upload: str
    batch_id: int
    session_id: int
    statement_id: int
    token_id: int
    token: str
    connect_token: str
    user_id: int
    cluster_id: int
    cluster_uid: str
    credential: str
    credential_secret: str
    folder_id: int
    notebook_id: int  # attached to a session of alice's, with a pyspark cell that has run
    cell_id: int
    loose_notebook_id: int  # not attached: for the route that attaches

    def secrets(self) -> tuple[str, ...]:
        return self.token, self.connect_token, self.credential_secret


def _ok(response: Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def make_owned(api: TestClient, ctx: Context) -> Owned:
    upload = _ok(api.post("/api/v1/files", headers=ALICE, files={"file": ("app.py", b"print(1)\n")}))["uri"]
    batch_id = _ok(api.post("/api/v1/batches", headers=ALICE, json={"file": upload}))["id"]
    batch_runs.launch(ctx, batch_id)  # running on the fake backend, with a handle and a log
    batch_runs.reconcile(ctx, batch_id)
    session_id = _ok(api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark"}))["id"]
    session_runs.launch(ctx, session_id)
    session_runs.reconcile(ctx, session_id)  # idle: the fake agent answers statements and completion
    statement_id = _ok(api.post(f"/livy/sessions/{session_id}/statements", headers=ALICE, json={"code": "1"}))["id"]
    connect_url = _ok(api.get(f"/api/v1/sessions/{session_id}", headers=ALICE), 200)["connect_url"]
    assert connect_url and ";token=" in connect_url
    token = _ok(api.post("/api/v1/tokens", headers=ALICE, json={"name": "laptop"}))
    me = _ok(api.get("/api/v1/users/me", headers=ALICE), 200)
    cluster_id = _ok(api.post("/api/v1/clusters", headers=ALICE, json={"cluster_name": "etl", "num_workers": 1}))[
        "cluster_id"
    ]
    for _ in range(3):  # master, worker, registered: RUNNING on the fake provider
        cluster_runs.converge(ctx, cluster_id)
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(cluster_id)
        assert cluster is not None and cluster.state == "RUNNING"
        cluster_uid = cluster.uid
    secret = f"alice-s3-secret-{cluster_uid}"
    credential = _ok(
        api.post(
            "/api/v1/credentials",
            headers=ALICE,
            json={
                "name": f"lake-{cluster_uid[:8]}",
                "kind": "s3",
                "fields": {"access_key_id": "AKIAALICE0000000", "secret_access_key": secret},
            },
        )
    )["name"]
    folder_id = _ok(api.post("/api/v1/workspace/folders", headers=ALICE, json={"name": f"f-{cluster_uid[:8]}"}))["id"]
    notebook = _ok(
        api.post(
            "/api/v1/workspace/notebooks",
            headers=ALICE,
            json={"name": f"nb-{cluster_uid[:8]}", "cells": [{"kind": "pyspark", "source": "print(1)"}]},
        )
    )
    attached = _ok(api.post(f"/api/v1/workspace/notebooks/{notebook['id']}/attach", headers=ALICE, json={}), 200)
    session_runs.launch(ctx, attached["session_id"])
    session_runs.reconcile(ctx, attached["session_id"])
    cell_id = notebook["cells"][0]["id"]
    _ok(api.post(f"/api/v1/workspace/notebooks/{notebook['id']}/cells/{cell_id}/run", headers=ALICE), 202)
    loose = _ok(api.post("/api/v1/workspace/notebooks", headers=ALICE, json={"name": f"loose-{cluster_uid[:8]}"}))
    return Owned(
        upload=upload,
        batch_id=batch_id,
        session_id=session_id,
        statement_id=statement_id,
        token_id=token["id"],
        token=token["token"],
        connect_token=connect_url.split(";token=", 1)[1],
        user_id=me["id"],
        cluster_id=cluster_id,
        cluster_uid=cluster_uid,
        credential=credential,
        credential_secret=secret,
        folder_id=folder_id,
        notebook_id=notebook["id"],
        cell_id=cell_id,
        loose_notebook_id=loose["id"],
    )
