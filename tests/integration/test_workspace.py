"""The workspace API on the in-process app, the fake session backend, SQLite and PostgreSQL: folders and
notebooks as a tree, cells, running them in a session, outputs kept in the cells, files in and out."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from sparkplane.backends.fake import FakeSessionBackend
from sparkplane.domain.states import StatementState
from sparkplane.services import cluster_runs, notebook_runs, session_runs
from sparkplane.services.context import Context
from tests.integration.conftest import ADMIN, ALICE, BOB

WS = "/api/v1/workspace"
TABLE = {
    "schema": {
        "type": "struct",
        "fields": [
            {"name": "id", "type": "long", "nullable": False, "metadata": {}},
            {"name": "twice", "type": "long", "nullable": False, "metadata": {}},
        ],
    },
    "data": [[0, 0], [1, 2]],
}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def notebook(api: TestClient, name: str = "nb", cells: list[dict[str, str]] | None = None, **extra: Any) -> Any:
    return ok(api.post(f"{WS}/notebooks", headers=ALICE, json={"name": name, "cells": cells or [], **extra}), 201)


def attached(api: TestClient, ctx: Context, notebook_id: int, **body: Any) -> Any:
    """Attach, then launch the session and observe it (what the worker and the watcher do): idle."""
    nb = ok(api.post(f"{WS}/notebooks/{notebook_id}/attach", headers=ALICE, json=body))
    session_runs.launch(ctx, nb["session_id"])
    session_runs.reconcile(ctx, nb["session_id"])
    return nb


def agent_key(ctx: Context, session_id: int) -> str:
    with ctx.db.uow() as uow:
        row = uow.sessions.get(session_id)
        assert row is not None
        return row.uid


def test_folders_tree_rename_move_and_delete(api: TestClient) -> None:
    top = ok(api.post(f"{WS}/folders", headers=ALICE, json={"name": "reports"}), 201)
    sub = ok(api.post(f"{WS}/folders", headers=ALICE, json={"name": "2026", "parent_id": top["id"]}), 201)
    nb = notebook(api, "sales", folder_id=sub["id"])
    assert top["owner"] == "alice" and sub["parent_id"] == top["id"] and nb["folder_id"] == sub["id"]

    tree = ok(api.get(WS, headers=ALICE))
    assert {(f["name"], f["parent_id"]) for f in tree["folders"]} == {("reports", None), ("2026", top["id"])}
    assert [(n["name"], n["folder_id"]) for n in tree["notebooks"]] == [("sales", sub["id"])]
    assert [f["name"] for f in ok(api.get(WS, headers=ALICE, params={"parent_id": 0}))["folders"]] == ["reports"]
    assert ok(api.get(WS, headers=ALICE, params={"parent_id": sub["id"]}))["notebooks"][0]["name"] == "sales"

    # unique names among a folder's folders and notebooks, case as given
    taken = api.post(f"{WS}/folders", headers=ALICE, json={"name": "sales", "parent_id": sub["id"]})
    assert taken.status_code == 409 and "already taken" in taken.json()["detail"]
    assert api.post(f"{WS}/folders", headers=ALICE, json={"name": "reports"}).status_code == 409
    assert api.post(f"{WS}/folders", headers=ALICE, json={"name": "a/b"}).status_code == 400

    # rename, move to the top and back; a folder never moves into itself or below itself
    renamed = ok(api.patch(f"{WS}/folders/{sub['id']}", headers=ALICE, json={"name": "y2026"}))
    assert renamed["name"] == "y2026" and renamed["parent_id"] == top["id"]
    assert ok(api.patch(f"{WS}/folders/{sub['id']}", headers=ALICE, json={"parent_id": None}))["parent_id"] is None
    ok(api.patch(f"{WS}/folders/{sub['id']}", headers=ALICE, json={"parent_id": top["id"]}))
    cycle = api.patch(f"{WS}/folders/{top['id']}", headers=ALICE, json={"parent_id": sub["id"]})
    assert cycle.status_code == 409 and "into itself" in cycle.json()["detail"]
    assert api.patch(f"{WS}/folders/{top['id']}", headers=ALICE, json={"parent_id": top["id"]}).status_code == 409
    assert api.patch(f"{WS}/folders/{top['id']}", headers=ALICE, json={"parent_id": 999}).status_code == 404

    # notebooks move and rename too
    moved = ok(api.patch(f"{WS}/notebooks/{nb['id']}", headers=ALICE, json={"folder_id": top["id"], "name": "s2"}))
    assert (moved["folder_id"], moved["name"]) == (top["id"], "s2")

    # deleting: non-empty is 409 unless recursive, which takes everything below
    full = api.delete(f"{WS}/folders/{top['id']}", headers=ALICE)
    assert full.status_code == 409 and "recursive=true" in full.json()["detail"]
    assert api.delete(f"{WS}/folders/{top['id']}", headers=ALICE, params={"recursive": "true"}).status_code == 204
    assert ok(api.get(WS, headers=ALICE)) == {"folders": [], "notebooks": []}
    assert api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE).status_code == 404


def test_one_user_never_sees_anothers_workspace_and_admins_see_all(api: TestClient) -> None:
    folder = ok(api.post(f"{WS}/folders", headers=ALICE, json={"name": "private"}), 201)
    nb = notebook(api, "secret", cells=[{"kind": "pyspark", "source": "print('mine')"}])
    assert ok(api.get(WS, headers=BOB)) == {"folders": [], "notebooks": []}
    for method, path in [
        ("GET", f"{WS}/notebooks/{nb['id']}"),
        ("DELETE", f"{WS}/notebooks/{nb['id']}"),
        ("PATCH", f"{WS}/folders/{folder['id']}"),
        ("DELETE", f"{WS}/folders/{folder['id']}"),
        ("GET", f"{WS}/notebooks/{nb['id']}/export"),
        ("POST", f"{WS}/notebooks/{nb['id']}/attach"),
    ]:
        response = api.request(method, path, headers=BOB, json={} if method in ("PATCH", "POST") else None)
        assert response.status_code == 404, (method, path, response.text)
        assert "alice" not in response.text and "secret" not in response.text
    # bob cannot put things into alice's folder, nor move his own there
    assert api.post(f"{WS}/folders", headers=BOB, json={"name": "x", "parent_id": folder["id"]}).status_code == 404
    # bob's own things live beside alice's without clashing
    ok(api.post(f"{WS}/folders", headers=BOB, json={"name": "private"}), 201)

    everything = ok(api.get(WS, headers=ADMIN))
    assert {(f["name"], f["owner"]) for f in everything["folders"]} == {("private", "alice"), ("private", "bob")}
    assert ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ADMIN))["owner"] == "alice"
    # what an admin makes inside alice's folder is alice's
    made = ok(api.post(f"{WS}/folders", headers=ADMIN, json={"name": "by-admin", "parent_id": folder["id"]}), 201)
    assert made["owner"] == "alice"
    # but an admin runs no code in alice's notebook: her credentials are in its session
    refused = api.post(f"{WS}/notebooks/{nb['id']}/attach", headers=ADMIN, json={})
    assert refused.status_code == 403 and "owner" in refused.json()["detail"]


def test_cells_add_edit_move_delete_and_bad_kinds(api: TestClient) -> None:
    nb = notebook(api, cells=[{"kind": "markdown", "source": "# Title"}, {"kind": "pyspark", "source": "x = 1"}])
    assert [(c["kind"], c["position"], c["state"]) for c in nb["cells"]] == [
        ("markdown", 0, "idle"),
        ("pyspark", 1, "idle"),
    ]
    base = f"{WS}/notebooks/{nb['id']}/cells"
    sql = ok(api.post(base, headers=ALICE, json={"kind": "sql", "source": "SELECT 1", "index": 1}), 201)
    names = [(c["kind"], c["source"]) for c in ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE))["cells"]]
    assert names == [("markdown", "# Title"), ("sql", "SELECT 1"), ("pyspark", "x = 1")]

    ok(api.patch(f"{base}/{sql['id']}", headers=ALICE, json={"source": "SELECT 2", "index": 2}))
    cells = ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE))["cells"]
    assert [(c["source"], c["position"]) for c in cells] == [("# Title", 0), ("x = 1", 1), ("SELECT 2", 2)]

    bad = api.post(base, headers=ALICE, json={"kind": "scala", "source": "val x = 1"})
    assert bad.status_code == 400 and "unknown cell kind 'scala'" in bad.json()["detail"]
    assert api.patch(f"{base}/{sql['id']}", headers=ALICE, json={"kind": "r"}).status_code == 400
    assert api.post(base, headers=ALICE, json={"kind": "sql", "index": 9}).status_code == 400
    created = api.post(f"{WS}/notebooks", headers=ALICE, json={"name": "n2", "cells": [{"kind": "bash"}]})
    assert created.status_code == 400
    assert [n["name"] for n in ok(api.get(WS, headers=ALICE))["notebooks"]] == ["nb"]  # nothing half-written

    assert api.delete(f"{base}/{cells[0]['id']}", headers=ALICE).status_code == 204
    cells = ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE))["cells"]
    assert [(c["source"], c["position"]) for c in cells] == [("x = 1", 0), ("SELECT 2", 1)]
    assert api.delete(f"{base}/{cells[0]['id']}", headers=BOB).status_code == 404


def test_run_cells_in_an_attached_session_outputs_stay_after_detach(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    nb = notebook(
        api,
        cells=[
            {"kind": "markdown", "source": "# Counts"},
            {"kind": "pyspark", "source": "print(spark.range(3).count())"},
            {"kind": "sql", "source": "SELECT id, id*2 AS twice FROM range(2)"},
        ],
    )
    base = f"{WS}/notebooks/{nb['id']}"
    markdown, code, sql = (c["id"] for c in nb["cells"])
    not_attached = api.post(f"{base}/cells/{code}/run", headers=ALICE)
    assert not_attached.status_code == 409 and "attach" in not_attached.json()["detail"]

    nb = attached(api, ctx, nb["id"])
    assert nb["owns_session"] and nb["session_state"] in ("not_started", "starting")
    session = ok(api.get(f"/api/v1/sessions/{nb['session_id']}", headers=ALICE))
    assert session["kind"] == "shared" and session["state"] == "idle"
    assert api.post(f"{base}/cells/{markdown}/run", headers=ALICE).status_code == 400

    ran = ok(api.post(f"{base}/cells/{code}/run", headers=ALICE), 202)
    cell = ran["cells"][1]
    assert cell["state"] == "done" and cell["statement_id"] == 0 and cell["execution_count"] == 1
    assert cell["output"] == {
        "status": "ok",
        "execution_count": 1,
        "data": {"text/plain": "fake: print(spark.range(3).count())"},
    }

    fake_sessions.auto_advance = False  # the agent's answer to the SQL cell is scripted below
    running = ok(api.post(f"{base}/cells/{sql}/run", headers=ALICE), 202)["cells"][2]
    assert running["state"] == "queued" and running["statement_id"] == 1
    statement = ok(api.get(f"/api/v1/sessions/{nb['session_id']}/statements/1", headers=ALICE))
    assert statement["kind"] == "sql" and statement["code"] == "SELECT id, id*2 AS twice FROM range(2)"
    assert api.post(f"{base}/cells/{sql}/run", headers=ALICE).status_code == 409  # already running
    key = agent_key(ctx, nb["session_id"])
    fake_sessions.finish_statement(
        key, 1, StatementState.AVAILABLE, {"status": "ok", "execution_count": 1, "data": {"application/json": TABLE}}
    )
    cell = ok(api.get(base, headers=ALICE))["cells"][2]
    assert cell["state"] == "done" and cell["output"]["data"]["application/json"] == TABLE
    assert cell["execution_count"] == 2

    detached = ok(api.post(f"{base}/detach", headers=ALICE))
    assert detached["session_id"] is None
    assert ok(api.get(f"/api/v1/sessions/{nb['session_id']}", headers=ALICE))["state"] in ("shutting_down", "dead")
    again = ok(api.get(base, headers=ALICE))  # a reload: outputs are the cells' own
    assert [c["state"] for c in again["cells"]] == ["idle", "done", "done"]
    assert again["cells"][2]["output"]["data"]["application/json"] == TABLE
    assert api.post(f"{base}/cells/{code}/run", headers=ALICE).status_code == 409

    cleared = ok(api.post(f"{base}/clear-outputs", headers=ALICE))
    assert [(c["state"], c["output"], c["execution_count"]) for c in cleared["cells"]] == [("idle", None, None)] * 3


def test_run_all_stops_at_the_first_error(api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend) -> None:
    nb = notebook(
        api,
        cells=[
            {"kind": "pyspark", "source": "a = 1"},
            {"kind": "markdown", "source": "text"},
            {"kind": "pyspark", "source": "1/0"},
            {"kind": "sql", "source": "SELECT 3"},
        ],
    )
    nb = attached(api, ctx, nb["id"])
    fake_sessions.auto_advance = False
    base = f"{WS}/notebooks/{nb['id']}"
    started = ok(api.post(f"{base}/run-all", headers=ALICE), 202)
    assert started["running_all"] and [c["state"] for c in started["cells"]] == ["queued", "idle", "queued", "queued"]
    key = agent_key(ctx, nb["session_id"])
    assert sorted(fake_sessions.agents[key].statements) == [0]  # one cell at a time
    fake_sessions.finish_statement(key, 0, StatementState.AVAILABLE, {"status": "ok", "data": {"text/plain": ""}})
    notebook_runs.watcher_pass(ctx)  # the watcher moves on without anyone reading the notebook
    assert sorted(fake_sessions.agents[key].statements) == [0, 1]
    error = {"status": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["tb\n"]}
    fake_sessions.finish_statement(key, 1, StatementState.AVAILABLE, error)
    done = ok(api.get(base, headers=ALICE))
    assert [c["state"] for c in done["cells"]] == ["done", "idle", "error", "idle"]
    assert done["cells"][2]["output"]["ename"] == "ZeroDivisionError" and not done["running_all"]
    assert sorted(fake_sessions.agents[key].statements) == [0, 1]  # the SQL cell never ran


def test_cancel_stops_the_running_cell_and_drops_the_queue(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    nb = notebook(api, cells=[{"kind": "pyspark", "source": "sleep()"}, {"kind": "pyspark", "source": "after()"}])
    nb = attached(api, ctx, nb["id"])
    fake_sessions.auto_advance = False
    base = f"{WS}/notebooks/{nb['id']}"
    ok(api.post(f"{base}/run-all", headers=ALICE), 202)
    key = agent_key(ctx, nb["session_id"])
    fake_sessions.agents[key].statements[0].state = StatementState.RUNNING
    assert ok(api.get(base, headers=ALICE))["cells"][0]["state"] == "running"
    cancelled = ok(api.post(f"{base}/cancel", headers=ALICE))
    assert [c["state"] for c in cancelled["cells"]] == ["cancelled", "idle"] and not cancelled["running_all"]
    assert sorted(fake_sessions.agents[key].statements) == [0]


def test_a_session_that_dies_ends_its_cells_readably(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend
) -> None:
    nb = notebook(api, cells=[{"kind": "pyspark", "source": "long()"}])
    nb = attached(api, ctx, nb["id"])
    fake_sessions.auto_advance = False
    ok(api.post(f"{WS}/notebooks/{nb['id']}/cells/{nb['cells'][0]['id']}/run", headers=ALICE), 202)
    ok(api.delete(f"/api/v1/sessions/{nb['session_id']}", headers=ALICE))  # stopped elsewhere
    session_runs.stop(ctx, nb["session_id"])
    cell = ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE))["cells"][0]
    assert cell["state"] == "cancelled"
    refused = api.post(f"{WS}/notebooks/{nb['id']}/cells/{cell['id']}/run", headers=ALICE)
    assert refused.status_code == 409 and "attach" in refused.json()["detail"]
    again = attached(api, ctx, nb["id"])  # attaching again replaces the dead session
    assert again["session_id"] != nb["session_id"]
    twice = api.post(f"{WS}/notebooks/{nb['id']}/attach", headers=ALICE, json={})
    assert twice.status_code == 409 and "detach it first" in twice.json()["detail"]


def test_attach_to_a_cluster_places_the_session_there(api: TestClient, ctx: Context) -> None:
    cluster = ok(api.post("/api/v1/clusters", headers=ALICE, json={"cluster_name": "etl", "num_workers": 1}), 201)
    for _ in range(3):
        cluster_runs.converge(ctx, cluster["cluster_id"])
    nb = notebook(api)
    assert api.post(f"{WS}/notebooks/{nb['id']}/attach", headers=BOB, json={}).status_code == 404
    bobs = notebook_for(api, BOB)
    refused = api.post(f"{WS}/notebooks/{bobs}/attach", headers=BOB, json={"cluster_id": cluster["cluster_id"]})
    assert refused.status_code == 404  # alice's cluster is not bob's to use
    nb = ok(api.post(f"{WS}/notebooks/{nb['id']}/attach", headers=ALICE, json={"cluster_id": cluster["cluster_id"]}))
    assert nb["cluster_id"] == cluster["cluster_id"]
    assert ok(api.get(f"/api/v1/sessions/{nb['session_id']}", headers=ALICE))["cluster_id"] == cluster["cluster_id"]
    assert ok(api.get(WS, headers=BOB))["notebooks"][0]["session_id"] is None  # bob's refused attach left nothing


def notebook_for(api: TestClient, headers: dict[str, str]) -> int:
    return int(ok(api.post(f"{WS}/notebooks", headers=headers, json={"name": "mine"}), 201)["id"])


def test_export_ipynb_and_import_it_back_is_the_same_notebook(api: TestClient, ctx: Context) -> None:
    nb = notebook(
        api,
        "Round trip ✓",
        cells=[
            {"kind": "markdown", "source": "# Title\n\ntext"},
            {"kind": "pyspark", "source": "print(1)"},
            {"kind": "sql", "source": "SELECT 1"},
        ],
    )
    nb = attached(api, ctx, nb["id"])
    ok(api.post(f"{WS}/notebooks/{nb['id']}/cells/{nb['cells'][1]['id']}/run", headers=ALICE), 202)
    exported = api.get(f"{WS}/notebooks/{nb['id']}/export", headers=ALICE, params={"format": "ipynb"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ipynb+json")
    assert (
        "attachment" in exported.headers["content-disposition"] and ".ipynb" in exported.headers["content-disposition"]
    )
    data = exported.json()
    assert data["nbformat"] == 4 and data["cells"][2]["source"] == ["%%sql\n", "SELECT 1"]

    files = {"file": ("Round trip ✓.ipynb", exported.content, "application/x-ipynb+json")}
    back = ok(api.post(f"{WS}/import", headers=ALICE, files=files), 201)
    assert back["name"] == "Round trip ✓ (2)"  # the name was taken: imports never fail on it

    def essence(cells: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(c["kind"], c["source"], c["output"], c["execution_count"], c["state"]) for c in cells]

    original = ok(api.get(f"{WS}/notebooks/{nb['id']}", headers=ALICE))
    assert essence(back["cells"]) == essence(original["cells"])

    py = api.get(f"{WS}/notebooks/{nb['id']}/export", headers=ALICE, params={"format": "py"})
    assert py.headers["content-type"].startswith("text/x-python") and "# COMMAND ----------" in py.text
    from_py = ok(api.post(f"{WS}/import", headers=ALICE, json={"filename": "again.py", "content": py.text}), 201)
    assert [(c["kind"], c["source"]) for c in from_py["cells"]] == [(c["kind"], c["source"]) for c in original["cells"]]
    assert from_py["name"] == "again"
    assert api.get(f"{WS}/notebooks/{nb['id']}/export", headers=ALICE, params={"format": "pdf"}).status_code == 400


def test_import_a_jupyter_notebook_and_bad_files(api: TestClient) -> None:
    jupyter = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# From Jupyter"]},
            {
                "cell_type": "code",
                "execution_count": 2,
                "metadata": {},
                "outputs": [],
                "source": ["%%sql\n", "SELECT 1"],
            },
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "df.show()"},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    folder = ok(api.post(f"{WS}/folders", headers=ALICE, json={"name": "imports"}), 201)
    files = {"file": ("analysis.ipynb", json.dumps(jupyter).encode())}
    made = ok(api.post(f"{WS}/import", headers=ALICE, files=files, data={"folder_id": str(folder["id"])}), 201)
    assert made["name"] == "analysis" and made["folder_id"] == folder["id"]
    assert [(c["kind"], c["source"]) for c in made["cells"]] == [
        ("markdown", "# From Jupyter"),
        ("sql", "SELECT 1"),
        ("pyspark", "df.show()"),
    ]
    as_json = ok(
        api.post(f"{WS}/import", headers=ALICE, json={"filename": "x.ipynb", "content": jupyter, "name": "j"}), 201
    )
    assert as_json["name"] == "j" and len(as_json["cells"]) == 3

    for body, message in [
        ({"filename": "bad.ipynb", "content": "{not json"}, "not valid JSON"),
        ({"filename": "old.ipynb", "content": {"nbformat": 3, "worksheets": []}}, "nbformat 3 is not supported"),
        ({"filename": "notes.txt", "content": "hello"}, "name it .ipynb or .py"),
        ({"filename": "c.ipynb", "content": {"nbformat": 4, "cells": [{"cell_type": "code", "source": 1}]}}, "cell 0"),
        ({"content": "x"}, 'Missing required field "filename"'),
    ]:
        response = api.post(f"{WS}/import", headers=ALICE, json=body)
        assert response.status_code == 400 and message in response.json()["detail"], response.text
    assert api.post(f"{WS}/import", headers=ALICE, files={"other": ("a.py", b"1")}).status_code == 400
    assert api.post(f"{WS}/import", headers=ALICE, files={"file": ("a.py", b"\xff\xfe")}).status_code == 400
    names = sorted(n["name"] for n in ok(api.get(WS, headers=ALICE))["notebooks"])
    assert names == ["analysis", "j"]  # the refused imports wrote nothing


def test_outputs_are_capped_and_kept_verbatim(api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend) -> None:
    nb = notebook(api, cells=[{"kind": "pyspark", "source": "print('<script>alert(1)</script>')"}, {"kind": "pyspark"}])
    nb = attached(api, ctx, nb["id"])
    base = f"{WS}/notebooks/{nb['id']}"
    cells = ok(api.post(f"{base}/cells/{nb['cells'][0]['id']}/run", headers=ALICE), 202)["cells"]
    assert (
        cells[0]["output"]["data"]["text/plain"] == "fake: print('<script>alert(1)</script>')"
    )  # escaping is the page's
    fake_sessions.auto_advance = False
    ok(api.post(f"{base}/cells/{nb['cells'][1]['id']}/run", headers=ALICE), 202)
    huge = {"status": "ok", "data": {"image/png": "A" * 5_000_000}}
    fake_sessions.finish_statement(agent_key(ctx, nb["session_id"]), 1, StatementState.AVAILABLE, huge)
    cell = ok(api.get(base, headers=ALICE))["cells"][1]
    assert cell["state"] == "done" and "more than the" in cell["output"]["data"]["text/plain"]
