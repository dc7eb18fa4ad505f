"""A cluster on the ec2 provider through the whole control plane: API, cluster manager, node reports.

moto's server stands in for STS and EC2 over real HTTP; the test plays the instances' bootstrap: it reads
each instance's user data from EC2 (as the instance would receive it), takes the report URL and token from
it, and posts the reports the bootstrap's loop would post. Nothing runs Spark here: what is proven is the
control plane's side of the contract, from the API call to the instances in the customer's account.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparkplane.api.app import create_app
from sparkplane.backends.ec2 import Ec2ClusterProvider
from sparkplane.db import migrate
from sparkplane.services import cluster_runs, users
from sparkplane.services.context import Backends, Context, build_context
from sparkplane.settings import load_settings
from tests.integration.aws import (
    CONTROL_PLANE_ACCOUNT,
    MotoServer,
    admin,
    control_plane_credentials,
    loopback_only,
    make_customer,
    provider_config,
)
from tests.integration.conftest import basic

pytestmark = pytest.mark.moto
ALICE = basic("alice", "alice-password")
URL = "/api/v1/clusters"
PUBLIC_URL = "https://sparkplane.example.test"
ACCOUNT = "555566667777"  # the customer of this module (the provider and trust tests use others)


@pytest.fixture(scope="module")
def customer(moto: MotoServer):  # type: ignore[no-untyped-def]
    # An account of its own: the provider tests make the same role names in the default customer account.
    return make_customer(
        moto, principal=f"arn:aws:iam::{CONTROL_PLANE_ACCOUNT}:role/sparkplane-control-plane", account=ACCOUNT
    )


@pytest.fixture
def plane(tmp_path: Path, moto: MotoServer, customer: Any) -> Iterator[tuple[Context, TestClient]]:
    with loopback_only(), control_plane_credentials(tmp_path):
        settings = load_settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{tmp_path / 'sparkplane.sqlite'}",
            backend="fake",
            cluster_provider="ec2",
            public_url=PUBLIC_URL,
        )
        provider = Ec2ClusterProvider(provider_config(moto, customer))
        ctx = build_context(settings, backends=Backends({}, clusters={"ec2": lambda: provider}))
        migrate.upgrade(ctx.db.engine)
        users.create_user(ctx, None, "alice", "alice-password", "user")
        with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
            yield ctx, client
        ctx.close()


def instances(moto: MotoServer, uid: str, *, live: bool = True) -> dict[str, dict[str, Any]]:
    """The cluster's instances by node key, as the customer's own account shows them."""
    filters = [{"Name": "tag:sparkplane:cluster", "Values": [uid]}]
    if live:
        filters.append({"Name": "instance-state-name", "Values": ["pending", "running"]})
    found = admin(moto, "ec2", ACCOUNT).describe_instances(Filters=filters)["Reservations"]
    return {
        next(t["Value"] for t in i["Tags"] if t["Key"] == "sparkplane:node"): i for r in found for i in r["Instances"]
    }


def bootstrap_values(moto: MotoServer, instance_id: str) -> dict[str, str]:
    """The rendered values at the top of the instance's bootstrap script (shell-quoted assignments)."""
    raw = admin(moto, "ec2", ACCOUNT).describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    script = base64.b64decode(raw["UserData"]["Value"]).decode()
    return {name: value.strip("'") for name, value in re.findall(r"^(SP_[A-Z_]+)=('[^']*'|\S+)$", script, re.M)}


def report(client: TestClient, values: dict[str, str], instance: dict[str, Any], master_json: Any = None) -> int:
    """What the bootstrap's loop posts: this node's key, role, address, and the master's /json/."""
    host = instance["PrivateIpAddress"]
    body = {
        "key": values["SP_KEY"],
        "role": values["SP_ROLE"],
        "host": host,
        "spark_url": f"spark://{host}:7077",
        "master_json": master_json,
    }
    path = values["SP_REPORT_URL"].removeprefix(PUBLIC_URL)
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {values['SP_REPORT_TOKEN']}"})
    return response.status_code


def master_json(master: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
    host = master["PrivateIpAddress"]
    return {
        "url": f"spark://{host}:7077",
        "status": "ALIVE",
        "workers": [
            {
                "id": f"worker-{w['PrivateIpAddress']}",
                "host": w["PrivateIpAddress"],
                "port": 7078,
                "cores": 2,
                "coresused": 0,
                "memory": 4096,
                "memoryused": 0,
                "state": "ALIVE",
            }
            for w in workers
        ],
        "activeapps": [],
    }


def test_an_ec2_cluster_from_create_to_terminated(plane: tuple[Context, TestClient], moto: MotoServer) -> None:
    ctx, client = plane
    created = client.post(
        URL,
        headers=ALICE,
        json={
            "cluster_name": "nightly",
            "num_workers": 2,
            "node_type_id": "sp.medium",
            "custom_tags": {"team": "data"},
        },
    )
    assert created.status_code == 201, created.text
    cluster_id = created.json()["cluster_id"]
    with ctx.db.uow() as uow:
        row = uow.clusters.get(cluster_id)
        assert row is not None
        uid = row.uid
        assert row.report_token is not None and "report" not in row.report_token  # sealed, never in clear

    cluster_runs.converge(ctx, cluster_id)
    launched = instances(moto, uid)
    assert list(launched) == [f"{uid}-g0-master"]
    master = launched[f"{uid}-g0-master"]
    assert master["InstanceType"] == "m5.large"
    assert {"Key": "team", "Value": "data"} in master["Tags"]
    values = bootstrap_values(moto, master["InstanceId"])
    assert values["SP_REPORT_URL"] == f"{PUBLIC_URL}/api/v1/clusters/by-uid/{uid}/report"
    assert values["SP_ROLE"] == "master" and values["SP_KEY"] == f"{uid}-g0-master"

    wrong = dict(values, SP_REPORT_TOKEN="not-the-token")
    assert report(client, wrong, master, master_json(master, [])) == 401
    assert report(client, values, master, master_json(master, [])) == 204
    cluster_runs.converge(ctx, cluster_id)  # the master is up: two workers
    launched = instances(moto, uid)
    workers = [launched[f"{uid}-g0-w0"], launched[f"{uid}-g0-w1"]]
    master_url = f"spark://{master['PrivateIpAddress']}:7077"
    for worker in workers:
        worker_values = bootstrap_values(moto, worker["InstanceId"])
        assert worker_values["SP_MASTER_URL"] == master_url and worker_values["SP_ROLE"] == "worker"
        assert worker_values["SP_REPORT_TOKEN"] == values["SP_REPORT_TOKEN"]  # one token per cluster
        assert report(client, worker_values, worker) == 204
    assert client.get(f"{URL}/{cluster_id}", headers=ALICE).json()["state"] == "PENDING"

    assert report(client, values, master, master_json(master, workers)) == 204  # the master lists them
    cluster_runs.converge(ctx, cluster_id)
    body = client.get(f"{URL}/{cluster_id}", headers=ALICE).json()
    assert body["state"] == "RUNNING" and body["master_url"] == master_url

    other = uuid.uuid4().hex[:20]
    assert (
        report(client, dict(values, SP_REPORT_URL=f"{PUBLIC_URL}/api/v1/clusters/by-uid/{other}/report"), master) == 401
    )  # a token is good for its own cluster only

    assert client.post(f"{URL}/{cluster_id}/terminate", headers=ALICE).status_code == 200
    cluster_runs.converge(ctx, cluster_id)
    cluster_runs.converge(ctx, cluster_id)
    assert client.get(f"{URL}/{cluster_id}", headers=ALICE).json()["state"] == "TERMINATED"
    assert instances(moto, uid) == {}
    states = {k: i["State"]["Name"] for k, i in instances(moto, uid, live=False).items()}
    assert set(states) == {f"{uid}-g0-master", f"{uid}-g0-w0", f"{uid}-g0-w1"}
    assert set(states.values()) <= {"shutting-down", "terminated"}
