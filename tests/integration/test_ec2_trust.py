"""The customer's role as docs/ec2-provider.md writes it, enforced by moto: the external id, and the permissions.

moto checks signatures, identity policies and a role's trust policy (its StringEquals conditions, which is
what `sts:ExternalId` uses) once its auth is switched on, with three limits that shape these tests:
- it evaluates a trust policy only when the role is in the caller's own account, so here the control plane's
  user and the customer's role share one account (the other tests keep them apart);
- it accepts an AssumeRole that sends no ExternalId at all even when the trust policy requires one (the
  condition has no value to compare, and moto counts that as a pass); AWS refuses it. So only "a wrong
  external id is refused" is tested, and the provider always sends one (its config requires it);
- it matches a permission's Resource against "*" only (it does not know EC2's resource ARNs) and ignores
  the Null and ec2:CreateAction conditions, so the doc's permissions policy is loaded with `Resource: "*"`:
  what is proved is that its actions cover every call the provider makes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sparkplane.backends.base import PermanentBackendError
from sparkplane.backends.clusters import ClusterLaunch, NodeRole, NodeState
from sparkplane.backends.ec2 import Ec2ClusterProvider, Ec2Config
from sparkplane.domain.clusters import NODE_TYPES
from tests.integration.aws import (
    REGION,
    Customer,
    MotoServer,
    admin,
    control_plane_credentials,
    doc_policies,
    loopback_only,
    make_customer,
    provider_config,
)

pytestmark = pytest.mark.moto

ACCOUNT = "444455556666"


@dataclass
class Guarded:
    server: MotoServer
    customer: Customer
    key: dict[str, str]  # the control plane user's access key

    def config(self, **overrides: Any) -> Ec2Config:
        return provider_config(self.server, self.customer, **overrides)


@pytest.fixture(scope="module")
def guarded(moto: MotoServer) -> Iterator[Guarded]:
    iam = admin(moto, "iam", ACCOUNT)
    user = iam.create_user(UserName="sparkplane-control-plane")["User"]["Arn"]
    key = iam.create_access_key(UserName="sparkplane-control-plane")["AccessKey"]
    may_assume = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="sparkplane-control-plane", PolicyName="assume", PolicyDocument=json.dumps(may_assume))
    customer = make_customer(moto, principal=user, account=ACCOUNT)
    permissions = doc_policies()["permissions"]
    for statement in permissions["Statement"]:
        statement["Resource"] = "*"  # moto matches resources against "*" only (see the module's docstring)
    iam.put_role_policy(
        RoleName="sparkplane-cross-account", PolicyName="sparkplane", PolicyDocument=json.dumps(permissions)
    )
    # A second role the control plane may assume that cannot terminate, for the error a missing grant gives.
    no_terminate = json.loads(json.dumps(permissions))
    for statement in no_terminate["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        statement["Action"] = [a for a in actions if a != "ec2:TerminateInstances"] or ["ec2:DescribeInstances"]
    trust = iam.get_role(RoleName="sparkplane-cross-account")["Role"]["AssumeRolePolicyDocument"]
    iam.create_role(RoleName="sparkplane-no-terminate", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="sparkplane-no-terminate", PolicyName="p", PolicyDocument=json.dumps(no_terminate))
    with moto.enforcing_auth():
        yield Guarded(moto, customer, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]})


@pytest.fixture(autouse=True)
def _as_the_control_plane(guarded: Guarded, tmp_path: Path) -> Iterator[None]:
    with loopback_only(), control_plane_credentials(tmp_path, guarded.key["id"], guarded.key["secret"]):
        yield


def cluster() -> ClusterLaunch:
    uid = uuid.uuid4().hex[:12]
    return ClusterLaunch(
        uid=uid,
        name="guarded",
        node_type=NODE_TYPES["sp.small"],
        report_url="https://sparkplane.example.test/reports",
        report_token="report-token",
    )


def test_a_wrong_external_id_is_refused_with_a_message_that_says_so(guarded: Guarded) -> None:
    c = cluster()
    provider = Ec2ClusterProvider(guarded.config(external_id="not-the-external-id"))
    with pytest.raises(PermanentBackendError) as caught:
        provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    message = str(caught.value)
    assert "SPARKPLANE_EC2_EXTERNAL_ID" in message and "trust policy" in message and "AccessDenied" in message
    assert "not-the-external-id" not in message


def test_the_documented_policies_are_enough_for_everything_the_provider_does(guarded: Guarded) -> None:
    c = cluster()
    provider = Ec2ClusterProvider(guarded.config())
    provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    provider.launch_node(c, NodeRole.WORKER, key=f"{c.uid}-g0-w1", master_url="spark://10.20.0.9:7077")
    assert [n.state for n in provider.nodes(c.uid)] == [NodeState.RUNNING, NodeState.RUNNING]
    assert c.uid in provider.cluster_uids()
    assert provider.fetch_node_log(c.uid, f"{c.uid}-g0-master")
    provider.stop_node(c.uid, f"{c.uid}-g0-w1", grace=dt.timedelta(0))
    assert [n.state for n in provider.nodes(c.uid)] == [NodeState.RUNNING, NodeState.GONE]
    provider.close()


def test_a_missing_permission_names_the_call_and_the_policy(guarded: Guarded) -> None:
    c = cluster()
    role = guarded.customer.role_arn.replace("sparkplane-cross-account", "sparkplane-no-terminate")
    provider = Ec2ClusterProvider(guarded.config(role_arn=role))
    provider.launch_node(c, NodeRole.MASTER, key=f"{c.uid}-g0-master")
    with pytest.raises(PermanentBackendError, match=r"may not call TerminateInstances.*docs/ec2-provider\.md"):
        provider.stop_node(c.uid, f"{c.uid}-g0-master", grace=dt.timedelta(0))
    Ec2ClusterProvider(guarded.config()).stop_node(c.uid, f"{c.uid}-g0-master", grace=dt.timedelta(0))


def test_the_control_planes_own_credentials_cannot_touch_ec2(guarded: Guarded) -> None:
    import boto3
    from botocore.exceptions import ClientError

    own = boto3.Session().client("ec2", endpoint_url=guarded.server.url, region_name=REGION)  # env keys
    with pytest.raises(ClientError, match="AccessDenied"):
        own.describe_instances()
