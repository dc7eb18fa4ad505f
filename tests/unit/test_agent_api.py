"""The agent's HTTP API: routing and bodies through `dispatch`, the token and the wire through a real server.

No Spark: the queue is never run here (statements stay waiting), the namespace is a plain dict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from sparkplane.agent.completion import complete
from sparkplane.agent.main import _orphan_watch
from sparkplane.agent.runner import Runner
from sparkplane.agent.server import AgentAPI, AgentInfo, AgentServer, serve
from sparkplane.agent.statements import StatementQueue

TOKEN = "agent-token-for-tests"


class Confs:
    def __init__(self, refuse: str | None = None) -> None:
        self.applied: list[dict[str, str]] = []
        self.refuse = refuse

    def __call__(self, confs: Mapping[str, str]) -> None:
        if self.refuse in confs:
            raise ValueError(f"Spark refused the conf '{self.refuse}'")
        self.applied.append(dict(confs))


@pytest.fixture
def confs() -> Confs:
    return Confs(refuse="spark.sql.warehouse.dir")


@pytest.fixture
def api(confs: Confs) -> AgentAPI:
    namespace: dict[str, Any] = {"my_frame": object(), "my_value": 1}
    queue = StatementQueue(Runner(namespace))
    info = AgentInfo(spark_app_id="local-1", ui_url="http://h:4040")
    return AgentAPI(queue, info, namespace=namespace, set_confs=confs, table_names=lambda: ["people", "places"])


@pytest.fixture
def server(api: AgentAPI) -> Iterator[AgentServer]:
    agent_server, thread = serve(api, TOKEN)
    yield agent_server
    agent_server.shutdown()
    agent_server.server_close()
    thread.join(5)


def test_health_of_an_unclaimed_idle_agent(api: AgentAPI) -> None:
    assert api.dispatch("GET", "/health", {}) == (
        200,
        {
            "state": "idle",
            "spark_app_id": "local-1",
            "ui_url": "http://h:4040",
            "statements": 0,
            "claimed": False,
            "session": None,
        },
    )


def test_submit_is_idempotent_and_makes_the_agent_busy(api: AgentAPI) -> None:
    status, view = api.dispatch("POST", "/statements", {"id": 0, "code": "1+1", "kind": "pyspark"})
    assert status == 201
    assert view == {
        "id": 0,
        "code": "1+1",
        "kind": "pyspark",
        "state": "waiting",
        "output": None,
        "progress": 0.0,
        "started": 0,
        "completed": 0,
    }
    assert api.dispatch("POST", "/statements", {"id": 0, "code": "other"}) == (200, view)
    assert api.dispatch("GET", "/statements/0", {}) == (200, view)
    assert api.dispatch("GET", "/statements", {}) == (200, {"statements": [view]})
    health = api.dispatch("GET", "/health", {})[1]
    assert (health["state"], health["statements"]) == ("busy", 1)


def test_kind_aliases_and_default(api: AgentAPI) -> None:
    assert api.dispatch("POST", "/statements", {"id": 1, "code": "1"})[1]["kind"] == "pyspark"
    assert api.dispatch("POST", "/statements", {"id": 2, "code": "1", "kind": "python"})[1]["kind"] == "pyspark"
    assert api.dispatch("POST", "/statements", {"id": 3, "code": "1", "kind": "scala"})[1]["kind"] == "spark"


@pytest.mark.parametrize(
    "body",
    [
        {"code": "1"},
        {"id": "1", "code": "1"},
        {"id": True, "code": "1"},
        {"id": -1, "code": "1"},
        {"id": 1},
        {"id": 1, "code": "1", "kind": "shared"},
        {"id": 1, "code": "1", "wait": -1},
        {"id": 1, "code": "1", "wait": 60},
        {"id": 1, "code": "1", "wait": "soon"},
        ["not", "an", "object"],
    ],
)
def test_bad_statement_bodies_are_400(api: AgentAPI, body: Any) -> None:
    status, reply = api.dispatch("POST", "/statements", body)
    assert status == 400 and reply["msg"]


def test_unknown_statements_and_routes_are_404(api: AgentAPI) -> None:
    assert api.dispatch("GET", "/statements/7", {}) == (404, {"msg": "Statement not found"})
    assert api.dispatch("POST", "/statements/7/cancel", {})[0] == 404
    assert api.dispatch("GET", "/nowhere", {})[0] == 404
    assert api.dispatch("DELETE", "/statements/1", {})[0] == 404


def test_a_read_of_an_unfinished_statement_may_wait_for_its_end(api: AgentAPI) -> None:
    api.dispatch("POST", "/statements", {"id": 1, "code": "1"})  # never runs here: it stays waiting
    started = time.monotonic()
    status, reply = api.dispatch("GET", "/statements/1?wait=0.2", {})
    assert (status, reply["state"]) == (200, "waiting")
    assert time.monotonic() - started >= 0.2  # held for its whole wait, since nothing ended it
    for bad in ("soon", "-1", "60"):
        status, reply = api.dispatch("GET", f"/statements/1?wait={bad}", {})
        assert status == 400 and "'wait'" in reply["msg"]


def test_cancel_of_a_waiting_statement(api: AgentAPI) -> None:
    api.dispatch("POST", "/statements", {"id": 0, "code": "1"})
    assert api.dispatch("POST", "/statements/0/cancel", {}) == (200, {"msg": "canceled"})
    assert api.dispatch("GET", "/statements/0", {})[1]["state"] == "cancelled"


def test_claim_sets_confs_once_and_refuses_a_second_session(api: AgentAPI, confs: Confs) -> None:
    conf = {"spark.sql.shuffle.partitions": "4"}
    assert api.dispatch("POST", "/claim", {"session": "s-1", "conf": conf}) == (
        200,
        {"msg": "claimed", "session": "s-1"},
    )
    assert confs.applied == [conf]
    status, reply = api.dispatch("POST", "/claim", {"session": "s-2", "conf": {}})
    assert status == 409 and "s-1" in reply["msg"]
    health = api.dispatch("GET", "/health", {})[1]
    assert (health["claimed"], health["session"]) == (True, "s-1")


def test_a_refused_conf_leaves_the_agent_unclaimed(api: AgentAPI) -> None:
    status, reply = api.dispatch("POST", "/claim", {"session": "s-1", "conf": {"spark.sql.warehouse.dir": "/x"}})
    assert status == 400 and "spark.sql.warehouse.dir" in reply["msg"]
    assert api.dispatch("GET", "/health", {})[1]["claimed"] is False
    assert api.dispatch("POST", "/claim", {"session": "", "conf": {}})[0] == 400
    assert api.dispatch("POST", "/claim", {"session": "s", "conf": {"k": 1}})[0] == 400


def test_shutdown_stops_the_queue(api: AgentAPI) -> None:
    assert api.dispatch("POST", "/shutdown", {}) == (200, {"msg": "shutting down"})
    api.queue.request_stop()  # the agent wires on_shutdown to this; here it is called by hand
    assert api.dispatch("GET", "/health", {})[1]["state"] == "stopping"
    assert api.dispatch("POST", "/statements", {"id": 0, "code": "1"})[0] == 409


def test_python_completion(api: AgentAPI) -> None:
    assert api.dispatch("POST", "/completion", {"code": "x = my_", "kind": "pyspark", "cursor": 7}) == (
        200,
        {"candidates": ["my_frame", "my_value"]},
    )
    candidates = api.dispatch("POST", "/completion", {"code": "my_value.bit_l", "cursor": 14})[1]["candidates"]
    assert candidates == ["my_value.bit_length()"]  # rlcompleter closes the call of a method without arguments
    assert api.dispatch("POST", "/completion", {"code": "  ", "cursor": 2})[1] == {"candidates": []}


def test_sql_completion_offers_keywords_then_tables() -> None:
    assert complete({}, "sel", "sql", 3) == ["select"]
    tables = ["places", "people", "x"]
    assert complete({}, "SELECT * FROM p", "sql", 15, tables=lambda: tables) == ["partition", "people", "places"]
    assert complete({}, "SELECT * FROM P", "sql", 15, tables=lambda: tables) == ["PARTITION", "people", "places"]


def test_completion_survives_a_broken_catalog() -> None:
    def broken() -> list[str]:
        raise RuntimeError("catalog down")

    assert complete({}, "wher", "sql", 4, tables=broken) == ["where"]


# -- over the wire ---------------------------------------------------------------------------------------


def test_every_request_needs_the_bearer_token(server: AgentServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").status_code == 401
        assert client.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/health", headers={"Authorization": TOKEN}).status_code == 401
        refused = client.post("/statements", json={"id": 0, "code": "1"}, headers={"Authorization": "Bearer x"})
        assert refused.status_code == 401 and refused.json() == {"msg": "missing or wrong bearer token"}
        ok = client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"


def test_json_over_the_wire_and_bad_json(server: AgentServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        created = client.post("/statements", json={"id": 5, "code": "1"})
        assert (created.status_code, created.json()["state"]) == (201, "waiting")
        assert client.post("/statements", json={"id": 5, "code": "1"}).status_code == 200
        bad = client.post("/statements", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400


def test_authorised_requests_count_as_contact(server: AgentServer, api: AgentAPI) -> None:
    api.info.last_contact = 0.0
    httpx.get(server.url + "/health")  # unauthorised: not contact
    assert api.info.last_contact == 0.0
    httpx.get(server.url + "/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert api.info.last_contact > 0.0


def test_no_contact_stops_the_agent(api: AgentAPI) -> None:
    api.info.last_contact = time.monotonic()
    watcher = threading.Thread(target=_orphan_watch, args=(api.info, api.queue, 0.2))
    watcher.start()
    watcher.join(5)
    assert not watcher.is_alive()
    assert api.queue.stopping
