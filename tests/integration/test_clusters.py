"""Clusters through the native API and the cluster manager, on a scripted provider and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparkplane.backends.clusters import MasterApp, NodeRole
from sparkplane.backends.fake import FakeSessionBackend
from sparkplane.backends.fake_cluster import FakeClusterProvider
from sparkplane.domain.clusters import Capacity
from sparkplane.services import batch_runs, cleanup, cluster_runs, dispatch, session_runs
from sparkplane.services.context import Context
from tests.conftest import FakeClock, RecordingDispatcher
from tests.integration.conftest import ADMIN, ALICE, BOB

URL = "/api/v1/clusters"


def create(api: TestClient, **body: Any) -> dict[str, Any]:
    response = api.post(URL, headers=ALICE, json={"cluster_name": "etl", "num_workers": 2, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def converge(ctx: Context, cluster_id: int, times: int = 1) -> dict[str, Any]:
    for _ in range(times):
        cluster_runs.converge(ctx, cluster_id)
    with ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None
        return {"state": row.state, "target": row.target_workers, "uid": row.uid, "generation": row.generation}


def running(api: TestClient, ctx: Context, **body: Any) -> tuple[int, str]:
    cluster = create(api, **body)
    seen = converge(ctx, cluster["cluster_id"], times=3)  # master; workers; all registered
    assert seen["state"] == "RUNNING", seen
    return int(cluster["cluster_id"]), str(seen["uid"])


def event_types(api: TestClient, cluster_id: int) -> list[str]:
    response = api.get(f"{URL}/{cluster_id}/events", headers=ALICE, params={"limit": 500})
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["events"]]


def test_create_answers_201_with_databricks_fields_and_enqueues_the_manager(
    api: TestClient, dispatcher: RecordingDispatcher
) -> None:
    response = api.post(
        URL,
        headers=ALICE,
        json={
            "cluster_name": "etl",
            "num_workers": 2,
            "spark_conf": {"spark.sql.shuffle.partitions": "4"},
            "custom_tags": {"team": "data"},
            "spark_version": "4.1.x",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"{URL}/{body['cluster_id']}"
    assert body["state"] == "PENDING" and body["num_workers"] == 2 and body["node_type_id"] == "sp.small"
    assert body["creator_user_name"] == "alice" and body["custom_tags"] == {"team": "data"}
    assert body["autotermination_minutes"] == 0 and body["autoscale"] is None
    assert (dispatch.CONVERGE_CLUSTER, body["cluster_id"]) in dispatcher.published
    assert event_types(api, body["cluster_id"]) == ["CREATING"]


def test_the_manager_starts_the_master_then_the_workers_then_runs_once(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id = create(api)["cluster_id"]
    first = converge(ctx, cluster_id)
    assert first["state"] == "PENDING" and fake_clusters.live(first["uid"]) == [f"{first['uid']}-g0-master"]
    converge(ctx, cluster_id)
    assert len(fake_clusters.live(first["uid"], NodeRole.WORKER)) == 2
    assert converge(ctx, cluster_id)["state"] == "RUNNING"
    converge(ctx, cluster_id, times=3)  # more passes change nothing
    assert set(fake_clusters.launches.values()) == {1} and len(fake_clusters.launches) == 3
    body = api.get(f"{URL}/{cluster_id}", headers=ALICE).json()
    assert body["master_url"].startswith("spark://") and body["start_time"] is not None
    assert event_types(api, cluster_id) == ["CREATING", "ADDING_NODES", "RUNNING"]
    nodes = api.get(f"{URL}/{cluster_id}/nodes", headers=ALICE).json()
    assert sorted(n["role"] for n in nodes) == ["master", "worker", "worker"]
    assert all(n["registered"] for n in nodes)


def test_a_second_manager_stands_back_while_one_converges(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    """PostgreSQL: the holder's own connection's advisory lock (it dies with the holder). SQLite: a time lease
    on the row, which lapses when its holder died."""
    import datetime as dt

    cluster = create(api)
    cluster_id = cluster["cluster_id"]
    if ctx.db.engine.dialect.name == "postgresql":
        with ctx.db.process_lock(cluster_runs._LOCK_SPACE, cluster_id) as held:  # another process's, in effect
            assert held is True
            assert converge(ctx, cluster_id)["state"] == "PENDING"
            assert fake_clusters.live(converge(ctx, cluster_id)["uid"]) == []  # it stood back: nothing launched
    else:
        now = ctx.clock.now()
        with ctx.db.uow() as uow:
            assert uow.clusters.take_lease(cluster_id, now, now + dt.timedelta(seconds=120))
        state = converge(ctx, cluster_id)
        assert state["state"] == "PENDING" and fake_clusters.live(state["uid"]) == []
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(121)  # the holder died: its lease lapses
    converge(ctx, cluster_id)  # no holder now: this one converges (and leaves no lease behind)
    with ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None and row.lease_until is None
    assert fake_clusters.live(row.uid) != []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"num_workers": 2, "autoscale": {"min_workers": 1, "max_workers": 2}}, "not both"),
        ({"num_workers": None, "autoscale": {"min_workers": 3, "max_workers": 2}}, "larger than"),
        ({"node_type_id": "x9.huge"}, "node_type_id 'x9.huge' is unknown"),
        ({"num_workers": -1}, "num_workers must be"),
        ({"num_workers": None}, "give num_workers"),
        ({"cluster_name": ""}, "cluster_name"),
        ({"spark_env_vars": {"SPARK_MASTER_HOST": "x"}}, "may not set"),
        ({"custom_tags": {"sparkplane:cluster": "x"}}, "custom_tags key"),
        ({"autotermination_minutes": -5}, "autotermination_minutes"),
        ({"workers": 2}, "workers"),
    ],
)
def test_bad_create_requests_are_400_with_a_message(api: TestClient, body: dict[str, Any], expected: str) -> None:
    response = api.post(URL, headers=ALICE, json={"cluster_name": "etl", "num_workers": 2, **body})
    assert response.status_code == 400, response.text
    assert expected in response.text


def test_more_workers_than_the_machine_holds_is_400(api: TestClient, fake_clusters: FakeClusterProvider) -> None:
    fake_clusters._capacity = Capacity(memory_mb=4096)  # four sp.small workers
    response = api.post(URL, headers=ALICE, json={"cluster_name": "big", "num_workers": 5})
    assert response.status_code == 400 and "at most 4 fit" in response.json()["detail"]
    create(api, num_workers=3)
    second = api.post(URL, headers=ALICE, json={"cluster_name": "more", "num_workers": 2})
    assert second.status_code == 400 and "at most 1 fit" in second.json()["detail"]  # live clusters count


def test_resize_grows_the_cluster_and_records_it(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx)
    response = api.post(f"{URL}/{cluster_id}/resize", headers=ALICE, json={"num_workers": 3})
    assert response.status_code == 200 and response.json()["state"] == "RESIZING"
    assert converge(ctx, cluster_id, times=2)["state"] == "RUNNING"
    assert len(fake_clusters.live(uid, NodeRole.WORKER)) == 3
    assert event_types(api, cluster_id)[-3:] == ["RESIZING", "ADDING_NODES", "RESIZED"]
    api.post(f"{URL}/{cluster_id}/resize", headers=ALICE, json={"num_workers": 1})
    assert converge(ctx, cluster_id, times=2)["state"] == "RUNNING"
    assert len(fake_clusters.live(uid, NodeRole.WORKER)) == 1


def test_resize_of_a_terminated_cluster_is_409(api: TestClient, ctx: Context) -> None:
    cluster_id, _ = running(api, ctx)
    api.post(f"{URL}/{cluster_id}/terminate", headers=ALICE)
    assert converge(ctx, cluster_id)["state"] == "TERMINATED"
    response = api.post(f"{URL}/{cluster_id}/resize", headers=ALICE, json={"num_workers": 3})
    assert response.status_code == 409 and "TERMINATED" in response.json()["detail"]


def test_a_lost_worker_is_recorded_and_replaced(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx)
    fake_clusters.kill(f"{uid}-g0-w0")
    converge(ctx, cluster_id, times=2)
    workers = fake_clusters.live(uid, NodeRole.WORKER)
    assert workers == [f"{uid}-g0-w1", f"{uid}-g0-w2"]  # w0 replaced by a fresh key, never reused
    events = api.get(f"{URL}/{cluster_id}/events", headers=ALICE).json()["events"]
    lost = [e for e in events if e["type"] == "NODES_LOST"]
    assert len(lost) == 1 and lost[0]["details"]["node"] == f"{uid}-g0-w0"
    converge(ctx, cluster_id, times=2)
    assert len([e for e in event_types(api, cluster_id) if e == "NODES_LOST"]) == 1  # recorded once


def test_a_dead_master_puts_the_cluster_in_error_and_ends_its_sessions(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider, fake_sessions: FakeSessionBackend
) -> None:
    cluster_id, uid = running(api, ctx)
    session = api.post("/api/v1/sessions", headers=ALICE, json={"kind": "pyspark", "cluster_id": cluster_id}).json()
    session_runs.launch(ctx, session["id"])
    fake_clusters.kill(f"{uid}-g0-master")
    assert converge(ctx, cluster_id)["state"] == "ERROR"
    body = api.get(f"{URL}/{cluster_id}", headers=ALICE).json()
    assert "master stopped" in body["state_message"]
    assert fake_clusters.live(uid) == []  # workers without a master are stopped
    state = api.get(f"/api/v1/sessions/{session['id']}", headers=ALICE).json()["state"]
    assert state == "shutting_down"
    restarted = api.post(f"{URL}/{cluster_id}/restart", headers=ALICE)
    assert restarted.status_code == 200 and restarted.json()["state"] == "RESTARTING"
    assert converge(ctx, cluster_id, times=3)["state"] == "RUNNING"
    assert fake_clusters.live(uid, NodeRole.MASTER) == [f"{uid}-g1-master"]


def test_terminate_ends_sessions_and_batches_and_start_brings_it_back(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider, dispatcher: RecordingDispatcher, uploaded: str
) -> None:
    cluster_id, uid = running(api, ctx)
    session = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark", "cluster_id": cluster_id}).json()
    session_runs.launch(ctx, session["id"])
    batch = api.post("/livy/batches", headers=ALICE, json={"file": uploaded, "cluster_id": cluster_id}).json()
    batch_runs.launch(ctx, batch["id"])
    response = api.post(f"{URL}/{cluster_id}/terminate", headers=ALICE)
    assert response.status_code == 200 and response.json()["state"] == "TERMINATING"
    assert converge(ctx, cluster_id)["state"] == "TERMINATED"
    body = api.get(f"{URL}/{cluster_id}", headers=ALICE).json()
    reason = body["termination_reason"]
    assert reason == {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": "alice"}}
    assert fake_clusters.live(uid) == []
    assert (dispatch.STOP_SESSION, session["id"]) in dispatcher.published
    session_runs.stop(ctx, session["id"])  # what the worker does with that task
    assert api.get(f"/livy/sessions/{session['id']}", headers=ALICE).json()["state"] == "dead"
    with ctx.db.uow() as uow:
        row = uow.batches.get(batch["id"])
        assert row is not None and row.cancel_requested_at is not None
    refused = api.post("/livy/sessions", headers=ALICE, json={"kind": "pyspark", "cluster_id": cluster_id})
    assert refused.status_code == 409 and "TERMINATED" in refused.json()["msg"] and "start it" in refused.json()["msg"]
    assert api.post(f"{URL}/{cluster_id}/terminate", headers=ALICE).status_code == 200  # idempotent
    assert api.delete(f"{URL}/{uid}", headers=ALICE).status_code == 400  # ids are numbers, not uids
    started = api.post(f"{URL}/{cluster_id}/start", headers=ALICE)
    assert started.status_code == 200 and started.json()["state"] == "PENDING"
    assert converge(ctx, cluster_id, times=3)["state"] == "RUNNING"
    assert fake_clusters.live(uid, NodeRole.MASTER) == [f"{uid}-g1-master"]


def test_delete_needs_a_terminated_cluster_then_removes_it(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx)
    response = api.delete(f"{URL}/{cluster_id}", headers=ALICE)
    assert response.status_code == 409 and "terminate it first" in response.json()["detail"]
    api.post(f"{URL}/{cluster_id}/terminate", headers=ALICE)
    converge(ctx, cluster_id)
    assert api.delete(f"{URL}/{cluster_id}", headers=ALICE).status_code == 204
    assert api.get(f"{URL}/{cluster_id}", headers=ALICE).status_code == 404
    assert [k for k in fake_clusters.nodes_by_key if k.startswith(uid)] == []  # the provider forgot it too


def test_sessions_placed_on_a_starting_cluster_launch_once_it_runs(
    api: TestClient, ctx: Context, fake_sessions: FakeSessionBackend, dispatcher: RecordingDispatcher
) -> None:
    cluster_id = create(
        api,
        autoscale={"min_workers": 1, "max_workers": 2},
        num_workers=None,
        spark_conf={"spark.sql.shuffle.partitions": "8", "spark.executor.memory": "512m"},
    )["cluster_id"]
    response = api.post(
        "/api/v1/sessions",
        headers=ALICE,
        json={"kind": "pyspark", "cluster_id": cluster_id, "conf": {"spark.executor.memory": "768m"}},
    )
    assert response.status_code == 201 and response.json()["cluster_id"] == cluster_id
    session_id = response.json()["id"]
    session_runs.launch(ctx, session_id)
    assert fake_sessions.starts == {}  # the cluster is still PENDING: the launch waits
    dispatcher.published.clear()
    converge(ctx, cluster_id, times=3)
    assert (dispatch.LAUNCH_SESSION, session_id) in dispatcher.published
    session_runs.launch(ctx, session_id)
    (agent,) = fake_sessions.agents.values()
    assert agent.spec.master is not None and agent.spec.master.startswith("spark://")
    assert agent.spec.conf["spark.sql.shuffle.partitions"] == "8"  # the cluster's conf
    assert agent.spec.conf["spark.executor.memory"] == "768m"  # the session's own conf wins
    assert agent.spec.conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"  # autoscaling
    assert not agent.spec.poolable()


def test_autoscaling_adds_a_worker_for_a_waiting_app_and_removes_idle_ones(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx, num_workers=None, autoscale={"min_workers": 1, "max_workers": 3})
    fake_clusters.use_cores(f"{uid}-g0-w0", 1)
    fake_clusters.apps[uid] = [MasterApp("app-1", "etl", "WAITING", 0)]
    assert converge(ctx, cluster_id)["target"] == 2
    events = api.get(f"{URL}/{cluster_id}/events", headers=ALICE).json()["events"]
    autoscaled = [e for e in events if e["type"] == "AUTOSCALED"]
    assert autoscaled[-1]["details"]["previous_workers"] == 1 and autoscaled[-1]["details"]["target_workers"] == 2
    assert "waiting" in autoscaled[-1]["details"]["reason"]
    assert len(fake_clusters.live(uid, NodeRole.WORKER)) == 2
    assert converge(ctx, cluster_id)["target"] == 2  # the new worker counts as supply: no second add
    fake_clusters.apps[uid] = []
    fake_clusters.use_cores(f"{uid}-g0-w0", 0)
    converge(ctx, cluster_id)
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.advance(ctx.settings.autoscale_down_after_seconds + 1)
    assert converge(ctx, cluster_id)["target"] == 1  # never below min_workers
    assert len(fake_clusters.live(uid, NodeRole.WORKER)) == 1
    assert converge(ctx, cluster_id)["state"] == "RUNNING"


def test_an_idle_cluster_terminates_itself_and_a_busy_one_does_not(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx, autotermination_minutes=10)
    session = api.post("/api/v1/sessions", headers=ALICE, json={"kind": "pyspark", "cluster_id": cluster_id}).json()
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.advance(11 * 60)
    assert converge(ctx, cluster_id)["state"] == "RUNNING"  # a session keeps it alive
    api.delete(f"/api/v1/sessions/{session['id']}", headers=ALICE)
    ctx.clock.advance(9 * 60)
    assert converge(ctx, cluster_id)["state"] == "RUNNING"
    ctx.clock.advance(2 * 60)
    converge(ctx, cluster_id)
    assert converge(ctx, cluster_id)["state"] == "TERMINATED"
    reason = api.get(f"{URL}/{cluster_id}", headers=ALICE).json()["termination_reason"]
    assert reason["code"] == "INACTIVITY" and reason["parameters"] == {"inactivity_duration_min": "10"}
    assert fake_clusters.live(uid) == []


def test_another_users_cluster_is_404_and_admins_see_all(api: TestClient, ctx: Context) -> None:
    cluster_id, _ = running(api, ctx)
    assert api.get(f"{URL}/{cluster_id}", headers=BOB).status_code == 404
    assert api.post(f"{URL}/{cluster_id}/terminate", headers=BOB).status_code == 404
    refused = api.post("/api/v1/sessions", headers=BOB, json={"kind": "pyspark", "cluster_id": cluster_id})
    assert refused.status_code == 404
    assert api.get(URL, headers=BOB).json()["total"] == 0
    assert api.get(f"{URL}/{cluster_id}", headers=ADMIN).status_code == 200
    assert api.get(URL, headers=ADMIN).json()["items"][0]["creator_user_name"] == "alice"


def test_cleanup_stops_nodes_of_clusters_that_no_longer_live(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    cluster_id, uid = running(api, ctx)
    with ctx.db.uow() as uow:  # a crash between the row and the machines: the row says terminated
        row = uow.clusters.get(cluster_id)
        assert row is not None
        uow.clusters.set_fields(row, state="TERMINATED")
    report = cleanup.run_cleanup(ctx)
    assert report.orphan_clusters_stopped == 1 and fake_clusters.live(uid) == []
    assert cleanup.run_cleanup(ctx).orphan_clusters_stopped == 0  # idempotent


def test_watcher_pass_converges_every_live_cluster(api: TestClient, ctx: Context) -> None:
    first, second = create(api)["cluster_id"], create(api, cluster_name="two")["cluster_id"]
    for _ in range(3):
        cluster_runs.watcher_pass(ctx)
    states = {c["cluster_id"]: c["state"] for c in api.get(URL, headers=ALICE).json()["items"]}
    assert states == {first: "RUNNING", second: "RUNNING"}


def test_cleanup_skips_cluster_providers_that_are_known_but_not_configured(
    api: TestClient, ctx: Context, fake_clusters: FakeClusterProvider
) -> None:
    from sparkplane.domain.errors import InvalidInput
    from sparkplane.services.context import Backends

    def unconfigured() -> FakeClusterProvider:
        raise InvalidInput("the ec2 cluster provider needs SPARK_CUSTOMER_IAM_ROLE")

    ctx.backends = Backends({}, clusters={"fake": lambda: fake_clusters, "ec2": unconfigured})
    cluster_id, uid = running(api, ctx)
    with ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None
        uow.clusters.set_fields(row, state="TERMINATED")
    assert cleanup.run_cleanup(ctx).orphan_clusters_stopped == 1  # the ec2 provider was never built
    assert fake_clusters.live(uid) == []


def test_an_id_beyond_64_bits_is_404_not_a_server_error(api: TestClient) -> None:
    """Found by the fuzzer: SQLite's driver raised OverflowError on such an id."""
    huge = 2**70
    assert api.get(f"{URL}/{huge}", headers=ALICE).status_code == 404
    assert api.post(f"{URL}/{huge}/resize", headers=ALICE, json={"num_workers": 1}).status_code == 404
    assert api.get(f"{URL}/{huge}/events", headers=ALICE, params={"offset": 2**70}).status_code == 404
    assert api.get(URL, headers=ALICE, params={"offset": 2**70}).json()["items"] == []
