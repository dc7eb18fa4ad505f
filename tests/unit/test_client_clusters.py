"""The SDK's clusters against the in-memory FakeServer (fake_clusters.py): no network, no sleeping."""

from __future__ import annotations

import httpx
import pytest

from sparkplane.api import cluster_schemas
from sparkplane.client import ApiError, ClusterFailed, ClusterInfo, WaitTimeout
from sparkplane.client.clusters import CLUSTER_POLL_SECONDS
from sparkplane.client.sdk import Client
from tests.unit.fake_clusters import CLUSTER_FAILS, CREATE_FIELDS, MASTER_DIED, MASTER_UI, MASTER_URL, NODE_TYPES
from tests.unit.fake_server import FakeServer, error


def _paths(server: FakeServer) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in server.requests]


def test_the_fake_speaks_the_servers_wire_shapes(server: FakeServer) -> None:
    # The fake is only worth its tests while its JSON is the server's: compare the field names with the schemas.
    cluster = server.add_cluster("RUNNING")
    assert set(cluster) == set(cluster_schemas.Cluster.model_fields)
    assert set(server.cluster_events[1][0]) == set(cluster_schemas.ClusterEvent.model_fields)
    assert set(server._nodes(cluster)[1]) == set(cluster_schemas.ClusterNode.model_fields)
    assert set(NODE_TYPES[0]) == set(cluster_schemas.NodeType.model_fields)
    assert set(CREATE_FIELDS) == set(cluster_schemas.ClusterCreate.model_fields)


# ---- create and wait --------------------------------------------------------------------------------------


def test_create_cluster_waits_until_running(sp: Client, server: FakeServer, sleeps: list[float]) -> None:
    seen: list[str] = []
    cluster = sp.create_cluster(
        "etl",
        autoscale=(1, 4),
        node_type="sp.medium",
        spark_conf={"spark.sql.shuffle.partitions": 8},  # type: ignore[dict-item]  # a non-str value is sent as str
        spark_env_vars={"STAGE": "prod"},
        autotermination_minutes=30,
        custom_tags={"team": "data"},
        on_update=lambda c: seen.append(c.state),
    )
    assert server.cluster_bodies == [
        {
            "cluster_name": "etl",
            "autoscale": {"min_workers": 1, "max_workers": 4},
            "node_type_id": "sp.medium",
            "spark_conf": {"spark.sql.shuffle.partitions": "8"},
            "spark_env_vars": {"STAGE": "prod"},
            "autotermination_minutes": 30,
            "custom_tags": {"team": "data"},
        }
    ]
    assert seen == ["PENDING", "PENDING", "RUNNING"]  # the POST's answer, then one per poll
    assert sleeps == [CLUSTER_POLL_SECONDS]
    assert cluster.is_running and not cluster.is_final
    assert (cluster.cluster_id, cluster.master_url, cluster.spark_ui_url) == (1, MASTER_URL, MASTER_UI)
    assert cluster.autoscale is not None and (cluster.autoscale.min_workers, cluster.autoscale.max_workers) == (1, 4)
    assert _paths(server) == ["POST /api/v1/clusters", "GET /api/v1/clusters/1", "GET /api/v1/clusters/1"]


def test_create_cluster_sends_only_what_is_set(sp: Client, server: FakeServer) -> None:
    cluster = sp.create_cluster("tiny", num_workers=0, wait=False)
    assert server.cluster_bodies == [{"cluster_name": "tiny", "num_workers": 0}]  # the server's defaults for the rest
    assert cluster.state == "PENDING" and _paths(server) == ["POST /api/v1/clusters"]


@pytest.mark.parametrize("scaling", [{}, {"num_workers": 2, "autoscale": (1, 3)}])
def test_create_cluster_needs_exactly_one_size(sp: Client, server: FakeServer, scaling: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="num_workers .* or autoscale"):
        sp.create_cluster("x", **scaling)  # type: ignore[arg-type]
    assert server.requests == []


def test_a_cluster_that_ends_in_error_raises_cluster_failed(sp: Client, server: FakeServer) -> None:
    server.cluster_script = list(CLUSTER_FAILS)
    with pytest.raises(ClusterFailed) as info:
        sp.create_cluster("etl", num_workers=2, poll=0)
    assert str(info.value) == f"cluster 1 ended ERROR: {MASTER_DIED}"
    assert info.value.cluster.state == "ERROR" and info.value.cluster.is_final
    assert not any(r.method == "POST" and r.url.path.endswith("/terminate") for r in server.requests)


def test_a_cluster_terminated_while_starting_raises_cluster_failed(sp: Client, server: FakeServer) -> None:
    reason = {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": "bob"}}
    server.cluster_script = ["PENDING", ("TERMINATED", {"termination_reason": reason})]
    with pytest.raises(ClusterFailed) as info:
        sp.create_cluster("etl", num_workers=2, poll=0)
    assert str(info.value) == "cluster 1 ended TERMINATED: USER_REQUEST"  # not "terminated, USER_REQUEST"


def test_a_create_timeout_leaves_the_cluster_starting(sp: Client, server: FakeServer) -> None:
    with pytest.raises(WaitTimeout, match="cluster 1 is still PENDING after 0s"):
        sp.create_cluster("slow", num_workers=1, timeout=0, poll=0)
    assert _paths(server) == ["POST /api/v1/clusters", "GET /api/v1/clusters/1"]  # nothing terminated


def test_waiting_rides_out_a_short_outage(sp: Client, server: FakeServer) -> None:
    server.add_cluster()
    server.failures += [error(503, "the database is unavailable"), httpx.ConnectError("refused")]
    assert sp.wait_cluster(1, poll=0).is_running
    sp.outage_grace = 0
    server.add_cluster()
    server.failures.append(error(503, "the database is unavailable"))
    with pytest.raises(ApiError, match="database"):
        sp.wait_cluster(2, poll=0)


def test_wait_cluster_refuses_a_state_that_does_not_exist(sp: Client) -> None:
    with pytest.raises(ValueError, match="PENDING, RUNNING"):
        sp.wait_cluster(1, ("running",))


# ---- start, restart, resize, terminate, delete ----------------------------------------------------------------


def test_resize_terminate_and_delete(sp: Client, server: FakeServer) -> None:
    server.cluster_script = []
    server.add_cluster("RUNNING", num_workers=2)
    resizing = sp.resize_cluster(1, num_workers=4)
    assert resizing.state == "RESIZING" and resizing.target_workers == 4  # no wait: the server's answer
    assert sp.resize_cluster(1, autoscale=(1, 3), wait=True, poll=0).state == "RUNNING"
    assert server.cluster_bodies == [{"num_workers": 4}, {"autoscale": {"min_workers": 1, "max_workers": 3}}]
    assert sp.get_cluster(1).target_workers == 3  # 4 is above the new range

    with pytest.raises(ApiError) as refused:
        sp.delete_cluster(1)
    assert (refused.value.status, refused.value.message) == (
        409,
        "Cluster 1 is RUNNING; terminate it first, then delete it",
    )
    terminated = sp.terminate_cluster(1, wait=True, poll=0)
    assert terminated.state == "TERMINATED" and terminated.is_final and terminated.master_url is None
    assert terminated.termination_reason is not None and terminated.termination_reason.code == "USER_REQUEST"
    assert sp.terminate_cluster(1).state == "TERMINATED"  # idempotent
    assert sp.delete_cluster(1) is None
    with pytest.raises(ApiError, match="Cluster 1 not found"):
        sp.get_cluster(1)


def test_start_and_restart(sp: Client, server: FakeServer) -> None:
    server.cluster_script = []
    server.add_cluster("TERMINATED")
    seen: list[str] = []
    started = sp.start_cluster(1, wait=True, poll=0, on_update=lambda c: seen.append(c.state))
    assert started.is_running and seen == ["PENDING", "RUNNING"]
    assert sp.restart_cluster(1).state == "RESTARTING"
    assert sp.wait_cluster(1, poll=0).is_running
    posted = [r.url.path for r in server.requests if r.method == "POST"]
    assert posted == ["/api/v1/clusters/1/start", "/api/v1/clusters/1/restart"]
    assert all(r.content == b"" for r in server.requests if r.method == "POST")  # the actions take no body


def test_waiting_for_terminated_fails_when_it_ends_in_error(sp: Client, server: FakeServer) -> None:
    server.add_cluster("RUNNING")
    sp.terminate_cluster(1)
    server.cluster_steps[1] = [("ERROR", {"state_message": "could not stop node c1-g1-worker-0"})]
    with pytest.raises(ClusterFailed, match="cluster 1 ended ERROR: could not stop node c1-g1-worker-0"):
        sp.wait_cluster(1, ("TERMINATED",), poll=0)


# ---- reading ----------------------------------------------------------------------------------------------


def test_list_events_nodes_and_node_types(sp: Client, server: FakeServer) -> None:
    server.cluster_script = []
    server.add_cluster("RUNNING", cluster_name="etl")
    server.add_cluster("TERMINATED")
    page = sp.list_clusters(state="RUNNING")
    assert (page.total, [c.cluster_name for c in page.items]) == (1, ["etl"])
    assert server.requests[-1].url.params["state"] == "RUNNING"

    events = sp.cluster_events(1)
    assert [e.type for e in events.events] == ["CREATING", "RUNNING"] and events.total == 2
    assert events.events[1].details == {"workers": 2}
    newest = sp.cluster_events(1, limit=1, newest_first=True)
    assert [e.type for e in newest.events] == ["RUNNING"]
    assert dict(server.requests[-1].url.params) == {"offset": "0", "limit": "1", "order": "desc"}

    nodes = sp.cluster_nodes(1)
    assert [(n.role, n.registered) for n in nodes] == [("master", True), ("worker", True), ("worker", True)]
    assert sp.cluster_nodes(2) == []
    assert [t.node_type_id for t in sp.node_types()] == ["sp.small", "sp.medium"]


def test_cluster_info_ignores_fields_it_does_not_know() -> None:
    data = {"cluster_id": 1, "cluster_name": "x", "state": "TERMINATING", "created_at": "2024-05-01T12:00:00Z"}
    cluster = ClusterInfo.model_validate(data | {"spark_version": "4.0", "new_field": [1]})
    assert not cluster.is_final and not cluster.is_running
    assert cluster.model_copy(update={"state": "ERROR"}).is_final


# ---- work on a cluster ------------------------------------------------------------------------------------


def test_batches_and_sessions_name_their_cluster(sp: Client, server: FakeServer) -> None:
    sp.submit_batch("s3://b/app.py", cluster_id=3)
    sp.submit_batch("s3://b/app.py")
    sp.create_session("pyspark", cluster_id=3, wait=False)
    sp.create_session("pyspark", wait=False)
    assert [b.get("cluster_id") for b in server.submitted] == [3, None]
    assert "cluster_id" not in server.submitted[1]  # unset: the server's default placement
    assert [s.get("cluster_id") for s in server.created] == [3, None]
    assert "cluster_id" not in server.created[1]
