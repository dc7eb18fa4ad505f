"""`sparkplane clusters …` with typer's CliRunner against the FakeServer (no network, no sleeping), through
the shared harness (cli_harness.py): the real `sparkplane` app, so its registration in cli/main.py is tested too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparkplane.client import Client
from tests.unit.cli_harness import Harness, ok
from tests.unit.fake_clusters import CLUSTER_FAILS, MASTER_DIED, MASTER_UI, MASTER_URL


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Harness:
    return Harness.install(monkeypatch, tmp_path)


@pytest.fixture
def running(cli: Harness) -> Harness:
    cli.server.cluster_script = []
    cli.server.add_cluster("RUNNING", cluster_name="etl", spark_env_vars={"DB_PASSWORD": "hunter2"})
    return cli


# ---- create -----------------------------------------------------------------------------------------------


def test_create_waits_and_prints_the_master_and_spark_ui(cli: Harness) -> None:
    result = ok(
        cli.run(
            "clusters", "create", "etl", "--autoscale", "1:4", "--node-type", "sp.medium", "--conf", "spark.a=1",
            "--env", "STAGE=prod", "--tag", "team=data", "--tag", "cost=42", "--autoterminate", "30",
        )
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "Cluster 1 (etl) is RUNNING with 1 worker",
        f"  master:    {MASTER_URL}",
        f"  spark ui:  {MASTER_UI}",
        "  session:   sparkplane sessions create --cluster 1",
        "  batch:     sparkplane batches submit --cluster 1 FILE",
        "  terminate: sparkplane clusters terminate 1",
    ]
    assert cli.server.cluster_bodies == [
        {
            "cluster_name": "etl",
            "autoscale": {"min_workers": 1, "max_workers": 4},
            "node_type_id": "sp.medium",
            "spark_conf": {"spark.a": "1"},
            "spark_env_vars": {"STAGE": "prod"},
            "autotermination_minutes": 30.0,
            "custom_tags": {"team": "data", "cost": "42"},
        }
    ]


def test_create_no_wait_and_json(cli: Harness) -> None:
    out = ok(cli.run("clusters", "create", "etl", "--workers", "2", "--no-wait")).stdout
    assert out == "Created cluster 1 (PENDING); `sparkplane clusters show 1` shows it\n"
    assert cli.paths() == ["POST /api/v1/clusters"]
    assert cli.server.cluster_bodies[0] == {"cluster_name": "etl", "num_workers": 2}
    data = json.loads(ok(cli.run("clusters", "create", "other", "--workers", "0", "--json")).stdout)
    assert (data["cluster_id"], data["state"], data["master_url"], data["num_workers"]) == (2, "RUNNING", MASTER_URL, 0)


def test_create_that_ends_in_error_exits_1_with_the_state_message(cli: Harness) -> None:
    cli.server.cluster_script = list(CLUSTER_FAILS)
    result = ok(cli.run("clusters", "create", "etl", "--workers", "2"), code=1)
    assert result.stderr == f"error: cluster 1 ended ERROR: {MASTER_DIED}\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "etl"], "give --workers N or --autoscale MIN:MAX"),
        (["create", "etl", "--workers", "2", "--autoscale", "1:3"], "give --workers N or --autoscale MIN:MAX"),
        (["create", "etl", "--autoscale", "1-3"], "'1-3' is not MIN:MAX"),
        (["create", "etl", "--autoscale", "a:b"], "'a:b' is not MIN:MAX"),
        (["create", "etl", "--autoscale", "4:2"], "MIN (4) is larger than MAX (2)"),
        (["create", "etl", "--workers", "-1"], "--workers"),
        (["create", "etl", "--workers", "1", "--env", "NOVALUE"], "'NOVALUE' is not key=value"),
        (["create", "etl", "--workers", "1", "--autoterminate", "-5"], "--autoterminate"),
        (["resize", "1"], "give --workers N or --autoscale MIN:MAX"),
        (["resize", "1", "--autoscale", "3"], "'3' is not MIN:MAX"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(cli: Harness, args: list[str], message: str) -> None:
    result = ok(cli.run("clusters", *args), code=2)
    assert message in " ".join(result.stderr.split())  # Rich boxes and wraps the usage error
    assert cli.server.requests == []


def test_ctrl_c_while_creating_leaves_the_cluster_starting(cli: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Client, cluster_id: int) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "get_cluster", interrupted)
    result = ok(cli.run("clusters", "create", "etl", "--workers", "1"), code=130)
    assert "cluster 1 goes on starting" in result.stderr and "sparkplane clusters terminate 1" in result.stderr
    assert cli.paths() == ["POST /api/v1/clusters"]


# ---- list, show, events, node types -----------------------------------------------------------------------


def test_list_is_a_table_newest_first(running: Harness) -> None:
    running.server.add_cluster("TERMINATED", cluster_name="scaler", autoscale={"min_workers": 1, "max_workers": 4})
    lines = ok(running.run("clusters", "list")).stdout.splitlines()
    assert lines[0].split() == ["id", "name", "state", "workers", "node", "type", "owner", "created"]
    assert lines[1].split()[:6] == ["2", "scaler", "TERMINATED", "1-4", "sp.small", "alice"]
    assert lines[2].split()[:6] == ["1", "etl", "RUNNING", "2", "sp.small", "alice"]
    data = json.loads(ok(running.run("clusters", "list", "--state", "running", "--json")).stdout)
    assert [c["cluster_id"] for c in data] == [1]
    assert running.server.requests[-1].url.params["state"] == "RUNNING"  # Databricks' states are upper case


def test_show_prints_the_details_and_the_nodes(running: Harness) -> None:
    out = ok(running.run("clusters", "show", "1")).stdout
    assert "RUNNING: running with 2 worker(s)" in out and MASTER_URL in out and MASTER_UI in out
    assert "DB_PASSWORD" in out and "hunter2" not in out  # env var names only: values are often secrets
    lines = [line.rstrip() for line in out.splitlines()]
    rows = [line.split() for line in lines[lines.index("nodes") + 1 :]]
    assert rows[0][:5] == ["key", "role", "state", "host", "registered"]
    assert rows[1][:5] == ["c1-g1-master", "master", "RUNNING", "10.0.0.5", "yes"]
    assert rows[2] == ["c1-g1-worker-0", "worker", "RUNNING", "10.0.0.6", "yes", "0/1", "1024", "MiB"]
    data = json.loads(ok(running.run("clusters", "show", "1", "--json")).stdout)
    assert data["cluster"]["cluster_name"] == "etl" and len(data["nodes"]) == 3
    assert data["cluster"]["spark_env_vars"] == {"DB_PASSWORD": "hunter2"}  # asked for in full: a script's choice
    ok(running.run("clusters", "terminate", "1", "--wait"))
    out = ok(running.run("clusters", "show", "1")).stdout
    assert "USER_REQUEST (SUCCESS) username=alice" in out and "nodes" not in out  # no machines, no table


def test_events_is_a_timeline_of_the_newest(running: Harness) -> None:
    running.run("clusters", "resize", "1", "--workers", "3")
    lines = ok(running.run("clusters", "events", "1")).stdout.splitlines()
    assert [line.split()[2] for line in lines[1:]] == ["CREATING", "RUNNING", "RESIZING"]  # oldest first
    assert "workers=2" in lines[2] and "user=alice" in lines[1]
    last = ok(running.run("clusters", "events", "1", "--limit", "1", "--json")).stdout
    assert [e["type"] for e in json.loads(last)] == ["RESIZING"]
    assert dict(running.server.requests[-1].url.params) == {"offset": "0", "limit": "1", "order": "desc"}


def test_node_types(cli: Harness) -> None:
    lines = ok(cli.run("clusters", "node-types")).stdout.splitlines()
    assert lines[1].split() == ["sp.small", "1", "1024", "MiB", "1", "core,", "1", "GiB"]
    assert [t["node_type_id"] for t in json.loads(ok(cli.run("clusters", "node-types", "--json")).stdout)] == [
        "sp.small",
        "sp.medium",
    ]


def test_an_api_error_is_one_red_line_and_exit_1(cli: Harness) -> None:
    result = ok(cli.run("clusters", "show", "9"), code=1)
    assert result.stderr == "error: Cluster 9 not found. (HTTP 404)\n"


# ---- resize, terminate, start, restart, delete -----------------------------------------------------------


def test_resize_answers_at_once_or_waits(running: Harness) -> None:
    out = ok(running.run("clusters", "resize", "1", "--workers", "4")).stdout
    assert out == "Cluster 1 is RESIZING; `sparkplane clusters show 1` shows when it is RUNNING\n"
    assert running.paths() == ["POST /api/v1/clusters/1/resize"]
    out = ok(running.run("clusters", "resize", "1", "--autoscale", "2:6", "--wait")).stdout
    assert out.splitlines()[0] == "Cluster 1 (etl) is RUNNING with 4 workers"
    assert running.server.cluster_bodies == [{"num_workers": 4}, {"autoscale": {"min_workers": 2, "max_workers": 6}}]


def test_terminate_wait_then_delete(running: Harness) -> None:
    refused = ok(running.run("clusters", "delete", "1"), code=1)
    assert refused.stderr == "error: Cluster 1 is RUNNING; terminate it first, then delete it (HTTP 409)\n"
    assert ok(running.run("clusters", "terminate", "1", "--wait")).stdout == "Cluster 1 (etl) is TERMINATED\n"
    assert running.paths()[-2:] == ["POST /api/v1/clusters/1/terminate", "GET /api/v1/clusters/1"]
    assert ok(running.run("clusters", "delete", "1")).stdout == "Deleted cluster 1\n"
    assert 1 not in running.server.clusters


def test_start_and_restart(cli: Harness) -> None:
    cli.server.cluster_script = []
    cli.server.add_cluster("TERMINATED", cluster_name="etl")
    out = ok(cli.run("clusters", "start", "1", "--wait")).stdout
    assert out.splitlines()[:2] == ["Cluster 1 (etl) is RUNNING with 2 workers", f"  master:    {MASTER_URL}"]
    out = ok(cli.run("clusters", "restart", "1")).stdout
    assert out == "Cluster 1 is RESTARTING; `sparkplane clusters show 1` shows when it is RUNNING\n"
    conflict = ok(cli.run("clusters", "resize", "1", "--workers", "1"), code=1)
    assert conflict.stderr == "error: Cluster 1 is RESTARTING; only a RUNNING cluster can be resized (HTTP 409)\n"
