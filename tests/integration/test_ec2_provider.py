"""The ec2 provider end to end over real HTTP, against moto's server standing in for STS and EC2.

What runs here is the provider's production code path: boto3 with an endpoint URL, the STS AssumeRole with
the external id, and every EC2 call. moto does not honour RunInstances' ClientToken (each call launches a
new instance), so "the same key twice is one instance" is the provider's own find-by-tag at work here; the
ClientToken chain is unit-tested in tests/unit/test_ec2_units.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from sparkplane.backends.base import PermanentBackendError, TransientBackendError
from sparkplane.backends.clusters import ClusterLaunch, NodeRole, NodeState, node_key
from sparkplane.backends.ec2 import Ec2ClusterProvider, Ec2Config
from sparkplane.backends.ec2.instances import subnet_for
from sparkplane.domain.clusters import NODE_TYPES
from tests.integration.aws import (
    CONTROL_PLANE_ACCOUNT,
    CONTROL_PLANE_KEY,
    CONTROL_PLANE_SECRET,
    CUSTOMER_ACCOUNT,
    EXTERNAL_ID,
    REGION,
    Customer,
    MotoServer,
    admin,
    control_plane_credentials,
    loopback_only,
    make_customer,
    provider_config,
)

pytestmark = pytest.mark.moto

MASTER_URL = "spark://10.20.0.5:7077"
CONTROL_PLANE_ROLE = f"arn:aws:iam::{CONTROL_PLANE_ACCOUNT}:role/sparkplane-control-plane"


@dataclass
class World:
    server: MotoServer
    customer: Customer

    def config(self, **overrides: Any) -> Ec2Config:
        return provider_config(self.server, self.customer, **overrides)

    def instances(self, uid: str) -> list[dict[str, Any]]:
        """The cluster's instances as the customer's own console shows them."""
        pages = admin(self.server, "ec2").describe_instances(
            Filters=[{"Name": "tag:sparkplane:cluster", "Values": [uid]}]
        )
        return [i for r in pages["Reservations"] for i in r["Instances"]]


@pytest.fixture(scope="module")
def world(moto: MotoServer) -> World:
    return World(moto, make_customer(moto, principal=CONTROL_PLANE_ROLE))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path) -> Iterator[None]:
    with loopback_only(), control_plane_credentials(tmp_path):
        yield


@pytest.fixture(scope="module")
def provider(world: World) -> Iterator[Ec2ClusterProvider]:
    """One provider for the module, as a worker process has one (each test uses clusters of its own)."""
    p = Ec2ClusterProvider(world.config())
    yield p
    p.close()


def cluster(uid: str | None = None, **overrides: Any) -> ClusterLaunch:
    uid = uid or uuid.uuid4().hex[:12]
    base = ClusterLaunch(
        uid=uid,
        name="nightly etl",
        node_type=NODE_TYPES["sp.medium"],
        spark_env_vars={"TZ": "UTC", "GREETING": "it's $HOME `whoami`"},
        tags={"team": "data", "cost-center": "42"},
        report_url=f"https://sparkplane.example.test/api/v1/clusters/{uid}/reports",
        report_token=f"report-token-of-{uid}",
    )
    return replace(base, **overrides)


def start(provider: Ec2ClusterProvider, c: ClusterLaunch, workers: int = 2) -> None:
    provider.launch_node(c, NodeRole.MASTER, key=node_key(c.uid, 0, NodeRole.MASTER))
    for n in range(1, workers + 1):
        provider.launch_node(c, NodeRole.WORKER, key=node_key(c.uid, 0, NodeRole.WORKER, n), master_url=MASTER_URL)


def user_data(world: World, instance_id: str) -> str:
    attribute = admin(world.server, "ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(attribute["UserData"]["Value"]).decode()


def test_a_master_and_two_workers_are_three_tagged_instances(world: World, provider: Ec2ClusterProvider) -> None:
    c = cluster()
    master = provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    assert master.state is NodeState.PENDING and master.node_id.startswith("i-") and master.host
    for n in (1, 2):
        provider.launch_node(c, NodeRole.WORKER, key=f"{c.uid}-g0-w{n}", master_url=MASTER_URL)

    instances = {
        next(t["Value"] for t in i["Tags"] if t["Key"] == "sparkplane:node"): i for i in world.instances(c.uid)
    }
    assert sorted(instances) == [f"{c.uid}-g0-master", f"{c.uid}-g0-w1", f"{c.uid}-g0-w2"]
    for key, instance in instances.items():
        role = "master" if key.endswith("master") else "worker"
        assert {t["Key"]: t["Value"] for t in instance["Tags"]} == {
            "sparkplane:cluster": c.uid,
            "sparkplane:node": key,
            "sparkplane:role": role,
            "sparkplane:version": "0.1.0",
            "Name": f"nightly etl {key}",
            "team": "data",
            "cost-center": "42",
        }
        assert instance["InstanceType"] == "m5.large"  # sp.medium's
        assert instance["SubnetId"] == subnet_for(key, world.customer.subnets)
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [world.customer.security_group]
        assert instance["ImageId"] == world.customer.ami and instance["KeyName"] == "sparkplane-ops"
        assert instance["IamInstanceProfile"]["Arn"].endswith(":instance-profile/sparkplane-node")
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        script = user_data(world, instance["InstanceId"])
        assert script.startswith("#!/bin/bash\n")
        assert f"SP_ROLE={role}\n" in script and f"SP_KEY={key}\n" in script
        assert f"SP_REPORT_TOKEN=report-token-of-{c.uid}\n" in script
        assert "SP_WORKER_CORES=2\n" in script and "SP_WORKER_MEMORY_MB=4096\n" in script
        assert (f"SP_MASTER_URL={MASTER_URL}\n" if role == "worker" else "SP_MASTER_URL=''\n") in script
        assert EXTERNAL_ID not in script and CONTROL_PLANE_SECRET not in script

    volumes = admin(world.server, "ec2").describe_volumes(
        Filters=[{"Name": "tag:sparkplane:cluster", "Values": [c.uid]}]
    )
    volume_keys = sorted(
        next(t["Value"] for t in v["Tags"] if t["Key"] == "sparkplane:node") for v in volumes["Volumes"]
    )
    assert volume_keys == sorted(instances)


def test_the_same_key_twice_is_one_instance(world: World, provider: Ec2ClusterProvider) -> None:
    c = cluster()
    first = provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    again = Ec2ClusterProvider(world.config()).launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    assert again.node_id == first.node_id
    assert len(world.instances(c.uid)) == 1


def test_nodes_maps_the_instances_states(world: World, provider: Ec2ClusterProvider) -> None:
    c = cluster()
    start(provider, c)
    by_key = {n.key: n for n in provider.nodes(c.uid)}
    ec2 = admin(world.server, "ec2")
    ec2.stop_instances(InstanceIds=[by_key[f"{c.uid}-g0-w1"].node_id])
    ec2.terminate_instances(InstanceIds=[by_key[f"{c.uid}-g0-w2"].node_id])

    nodes = provider.nodes(c.uid)
    assert [n.key for n in nodes] == [f"{c.uid}-g0-master", f"{c.uid}-g0-w1", f"{c.uid}-g0-w2"]
    master, w1, w2 = nodes
    assert (master.state, master.native_state, master.role) == (NodeState.RUNNING, "running", NodeRole.MASTER)
    assert master.host and master.host.startswith("10.20.") and master.started_at is not None
    assert (w1.state, w1.native_state, w1.role) == (NodeState.GONE, "stopped", NodeRole.WORKER)
    assert (w2.state, w2.native_state) == (NodeState.GONE, "terminated")
    assert provider.nodes("nosuchcluster") == []


def test_stop_node_terminates_one_node_and_is_idempotent(world: World, provider: Ec2ClusterProvider) -> None:
    c = cluster()
    start(provider, c)
    provider.stop_node(c.uid, f"{c.uid}-g0-w1", grace=dt.timedelta(seconds=10))
    states = {n.key: n.state for n in provider.nodes(c.uid)}
    assert states == {
        f"{c.uid}-g0-master": NodeState.RUNNING,
        f"{c.uid}-g0-w1": NodeState.GONE,
        f"{c.uid}-g0-w2": NodeState.RUNNING,
    }
    provider.stop_node(c.uid, f"{c.uid}-g0-w1", grace=dt.timedelta(seconds=10))  # already gone
    provider.stop_node(c.uid, f"{c.uid}-g0-w9", grace=dt.timedelta(seconds=10))  # never existed
    other = cluster()
    provider.stop_node(other.uid, f"{c.uid}-g0-w2", grace=dt.timedelta(0))  # not that cluster's key
    assert {n.key: n.state for n in provider.nodes(c.uid)} == states


def test_terminating_every_node_leaves_nothing_running(world: World, provider: Ec2ClusterProvider) -> None:
    c, kept = cluster(), cluster()
    start(provider, c)
    start(provider, kept, workers=0)
    assert {c.uid, kept.uid} <= provider.cluster_uids()
    for node in provider.nodes(c.uid):
        provider.stop_node(c.uid, node.key, grace=dt.timedelta(seconds=10))
    assert all(n.state is NodeState.GONE for n in provider.nodes(c.uid))
    assert {i["State"]["Name"] for i in world.instances(c.uid)} == {"terminated"}
    uids = provider.cluster_uids()
    assert c.uid not in uids and kept.uid in uids


def test_a_master_relaunched_after_its_instance_ended_is_a_new_instance(
    world: World, provider: Ec2ClusterProvider
) -> None:
    c = cluster()
    first = provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    provider.stop_node(c.uid, f"{c.uid}-g0-master", grace=dt.timedelta(0))
    second = provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    assert second.node_id != first.node_id
    (node,) = provider.nodes(c.uid)  # one node per key: the live one
    assert node.node_id == second.node_id and node.state is NodeState.RUNNING


def test_every_ec2_request_is_signed_with_the_assumed_role_never_the_control_planes(world: World) -> None:
    c = cluster()
    provider = Ec2ClusterProvider(world.config())  # a new one: its AssumeRole is recorded too
    world.server.start_recording()
    start(provider, c, workers=1)
    provider.nodes(c.uid)
    provider.stop_node(c.uid, f"{c.uid}-g0-w1", grace=dt.timedelta(0))
    provider.cluster_uids()
    provider.fetch_node_log(c.uid, f"{c.uid}-g0-master")
    recorded = world.server.recorded()
    provider.close()

    sts = [r for r in recorded if r.service == "sts"]
    ec2 = [r for r in recorded if r.service == "ec2"]
    assert [r.action for r in sts] == ["AssumeRole"]  # once: the credentials are cached, not fetched per call
    (assume,) = sts
    assert assume.access_key == CONTROL_PLANE_KEY and not assume.has_session_token
    assert assume.params["RoleArn"] == [world.customer.role_arn] and assume.params["ExternalId"] == [EXTERNAL_ID]
    assert assume.params["RoleSessionName"][0].startswith("sparkplane-")

    assert {"RunInstances", "DescribeInstances", "TerminateInstances", "GetConsoleOutput"} <= {r.action for r in ec2}
    assert {r.service for r in recorded} == {"sts", "ec2"}
    signers = {r.access_key for r in ec2}
    assert len(signers) == 1 and CONTROL_PLANE_KEY not in signers
    (signer,) = signers
    assert signer.startswith("ASIA"), "EC2 calls must use STS's temporary credentials"
    assert all(r.has_session_token for r in ec2)

    # moto files an instance under the account of the key that launched it: that key was the role's, in the
    # customer's account, and the control plane's own account has none of them.
    tagged = [{"Name": "tag:sparkplane:cluster", "Values": [c.uid]}]
    reservations = admin(world.server, "ec2").describe_instances(Filters=tagged)["Reservations"]
    assert len(reservations) == 2 and {r["OwnerId"] for r in reservations} == {CUSTOMER_ACCOUNT}
    own = boto3.Session().client("ec2", endpoint_url=world.server.url, region_name=REGION)  # env keys
    assert own.describe_instances(Filters=tagged)["Reservations"] == []


def test_credentials_are_refreshed_before_they_expire(world: World) -> None:
    # botocore refreshes credentials that have less than 15 minutes left (advisory) and must refresh at 10;
    # credentials for 15 minutes (STS's shortest) are due at once, so every call assumes the role again,
    # while the default hour is assumed once.
    for seconds, expect_many in ((900, True), (3600, False)):
        provider = Ec2ClusterProvider(world.config(assume_role_seconds=seconds))
        for _ in range(3):
            provider.nodes("nosuchcluster")
        assert (provider._role.assumed > 1) is expect_many, (seconds, provider._role.assumed)
        provider.close()


def test_fetch_node_log_is_the_console_output(world: World, provider: Ec2ClusterProvider) -> None:
    c = cluster()
    provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    log = provider.fetch_node_log(c.uid, f"{c.uid}-g0-master", tail_lines=3)
    assert log is not None and len(log.splitlines()) == 3  # moto's console is a canned kernel log
    assert provider.fetch_node_log(c.uid, f"{c.uid}-g0-w7") is None
    assert provider.master_status(c.uid) is None  # nodes push their status instead


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"ami_id": "ami-00000000000000000"}, "SPARKPLANE_EC2_AMI_ID"),
        ({"subnet_ids": ("subnet-0000000000000000",)}, "SPARK_NETWORK_AWS_SUBNET_IDS"),
        ({"instance_profile": "no-such-profile"}, "SPARKPLANE_EC2_INSTANCE_PROFILE"),
        ({"key_name": "no-such-key"}, "SPARKPLANE_EC2_KEY_NAME"),
    ],
)
def test_a_wrong_setting_is_a_permanent_error_naming_it(world: World, overrides: dict[str, Any], names: str) -> None:
    c = cluster()
    provider = Ec2ClusterProvider(world.config(**overrides))
    with pytest.raises(PermanentBackendError, match=names):
        provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    assert world.instances(c.uid) == []


def test_an_unreachable_endpoint_is_transient(world: World) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    provider = Ec2ClusterProvider(world.config(endpoint_url=closed))
    with pytest.raises(TransientBackendError, match="could not be reached") as caught:
        provider.nodes("anycluster")
    assert caught.value.retry_after


def test_launches_that_cannot_report_or_join_are_refused_before_any_call(world: World) -> None:
    provider = Ec2ClusterProvider(world.config(endpoint_url="http://127.0.0.1:9"))  # never called
    c = cluster()
    with pytest.raises(PermanentBackendError, match="SPARKPLANE_PUBLIC_URL"):
        provider.launch_node(replace(c, report_url=None), NodeRole.MASTER, key=f"{c.uid}-g0-master")
    with pytest.raises(PermanentBackendError, match="master's spark:// URL"):
        provider.launch_node(c, NodeRole.WORKER, key=f"{c.uid}-g0-w1")
    with pytest.raises(PermanentBackendError, match="is not a key of cluster"):
        provider.launch_node(c, NodeRole.WORKER, key="othercluster-g0-w1", master_url=MASTER_URL)


def test_the_loopback_guard_stops_any_other_address() -> None:
    # 127.0.0.2 is loopback too, so if the guard ever failed this would still stay on the machine.
    client = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y").client(
        "sts", endpoint_url="http://127.0.0.2:9", region_name=REGION
    )
    # botocore wraps the refusal in an error of its own (suppressed here); the guard still fails the block.
    with pytest.raises(AssertionError, match="'127.0.0.2'"), loopback_only(), contextlib.suppress(Exception):
        client.get_caller_identity()
