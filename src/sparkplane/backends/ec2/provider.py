"""Spark standalone clusters on EC2 instances in the customer's own account (Databricks' single-tenant shape).

Every EC2 call is signed with the customer's cross-account role (credentials.py); the control plane's own
credentials only ever call sts:AssumeRole. An instance is a node: tagged with its cluster, its node key and
its role, found again by those tags, and never stopped, only terminated. Nodes push their status to the
control plane (`pushes_status`): the control plane cannot reach into the customer's VPC.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from sparkplane.backends.base import PermanentBackendError
from sparkplane.backends.clusters import ClusterLaunch, MasterStatus, Node, NodeRole, NodeState, cluster_uid_of
from sparkplane.backends.ec2 import instances as ins
from sparkplane.backends.ec2.config import Ec2Config
from sparkplane.backends.ec2.credentials import AssumedRole
from sparkplane.backends.ec2.errors import translated
from sparkplane.backends.ec2.userdata import BootstrapValues, render
from sparkplane.domain.clusters import Capacity

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef, RunInstancesRequestTypeDef

logger = logging.getLogger(__name__)

# A launch whose token keeps returning ended instances is a loop, not a cluster: give up after this many.
_MAX_RELAUNCH_HOPS = 8


class Ec2ClusterProvider:
    name: ClassVar[str] = "ec2"
    pushes_status: ClassVar[bool] = True

    def __init__(self, config: Ec2Config) -> None:
        self.config = config
        self._role = AssumedRole(config, client_config=self._client_config())
        self._ec2_client: EC2Client | None = None
        self._lock = threading.Lock()  # worker threads share one provider; boto3 sessions are not thread-safe

    def _client_config(self) -> Config:
        from botocore.config import Config

        # Standard retries (3 attempts, with backoff) absorb a single throttle; what is left is ours to
        # translate. 5 s to connect: EC2's endpoints answer in milliseconds or are not there.
        return Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra=f"sparkplane/{self.config.sparkplane_version}",
        )

    def _ec2(self) -> EC2Client:
        with self._lock:
            if self._ec2_client is None:
                session = self._role.customer_session()
                self._ec2_client = session.client(
                    "ec2", endpoint_url=self.config.endpoint_url, config=self._client_config()
                )
            return self._ec2_client

    # --- the protocol ----------------------------------------------------------------------------------------
    def capacity(self) -> Capacity:
        return Capacity(max_nodes=self.config.max_nodes)

    def launch_node(self, cluster: ClusterLaunch, role: NodeRole, *, key: str, master_url: str | None = None) -> Node:
        if cluster_uid_of(key) != cluster.uid:
            raise PermanentBackendError(f"node key {key!r} is not a key of cluster {cluster.uid}")
        if not cluster.report_url or not cluster.report_token:
            raise PermanentBackendError(
                "the ec2 provider's nodes report to the control plane, so a launch needs a report URL and token: "
                "set SPARKPLANE_PUBLIC_URL to an address the customer's subnets can reach"
            )
        doing = f"launching node {key}"
        request = self._run_request(cluster, role, key=key, master_url=master_url)
        with translated(doing):
            ec2 = self._ec2()
            live = self._instances(ec2, cluster.uid, key=key, states=ins.LIVE_STATES)
            if live:
                logger.info(
                    "node %s was launched before (instance %s); not launching it again", key, live[0]["InstanceId"]
                )
                return self._node(live[0])
            instance = self._run(ec2, request, key)
        logger.info(
            "node %s launched as instance %s (%s) in %s",
            key,
            instance.get("InstanceId"),
            request["InstanceType"],
            request.get("SubnetId"),
        )
        return self._node(instance)

    def nodes(self, cluster_uid: str) -> Sequence[Node]:
        with translated(f"listing the nodes of cluster {cluster_uid}"):
            found = self._instances(self._ec2(), cluster_uid)
        return ins.one_per_key([n for n in map(ins.node_of, found) if n is not None])

    def stop_node(self, cluster_uid: str, key: str, *, grace: dt.timedelta) -> None:
        # `grace` cannot be honoured: termination shuts the OS down (its init sends the daemons SIGTERM) on
        # EC2's own schedule. Stopped instances are terminated too: they still cost their volumes.
        from botocore.exceptions import ClientError

        with translated(f"stopping node {key}"):
            ec2 = self._ec2()
            ids = [
                i["InstanceId"]
                for i in self._instances(
                    ec2, cluster_uid, key=key, states=("pending", "running", "stopping", "stopped")
                )
            ]
            if not ids:
                return
            try:
                ec2.terminate_instances(InstanceIds=ids)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
                    return  # gone between the describe and the terminate: stopped all the same
                raise
        logger.info("node %s: terminating instance(s) %s", key, ", ".join(ids))

    def master_status(self, cluster_uid: str) -> MasterStatus | None:
        return None  # pushes_status: the manager parses the master's reports with parse_master_json

    def fetch_node_log(self, cluster_uid: str, key: str, *, tail_lines: int = 200) -> str | None:
        """The instance's console output (the bootstrap's own lines among them), or None."""
        with translated(f"reading the console of node {key}"):
            ec2 = self._ec2()
            found = self._instances(ec2, cluster_uid, key=key)
            if not found:
                return None
            newest = max(found, key=lambda i: i.get("LaunchTime") or dt.datetime.min.replace(tzinfo=dt.UTC))
            output = ec2.get_console_output(InstanceId=newest["InstanceId"]).get("Output")
        if not output:
            return None
        return "\n".join(_console_text(output).splitlines()[-tail_lines:])

    def cluster_uids(self) -> set[str]:
        with translated("listing the clusters with instances"):
            found = self._describe(
                self._ec2(),
                [
                    {"Name": "tag-key", "Values": [ins.CLUSTER_TAG]},
                    {"Name": "instance-state-name", "Values": list(ins.NOT_TERMINATED)},
                ],
            )
        return {uid for i in found if (uid := ins.tags_of(i).get(ins.CLUSTER_TAG))}

    def purge(self, cluster_uid: str) -> None:
        """Nothing to forget: EC2 drops terminated instances from its listings by itself within about an hour."""

    def close(self) -> None:
        with self._lock:
            if self._ec2_client is not None:
                self._ec2_client.close()
                self._ec2_client = None

    # --- internals -------------------------------------------------------------------------------------------
    def _run_request(
        self, cluster: ClusterLaunch, role: NodeRole, *, key: str, master_url: str | None
    ) -> RunInstancesRequestTypeDef:
        cfg = self.config
        try:
            user_data = render(
                BootstrapValues(
                    key=key,
                    role=role,
                    spark_home=cfg.spark_home,
                    report_url=cluster.report_url or "",
                    report_token=cluster.report_token or "",
                    report_interval_seconds=cfg.report_interval_seconds,
                    worker_cores=cluster.node_type.cores,
                    worker_memory_mb=cluster.node_type.memory_mb,
                    master_url=master_url or "",
                    spark_env=tuple(sorted(cluster.spark_env_vars.items())),
                    sparkplane_version=cfg.sparkplane_version,
                )
            )
        except ValueError as exc:
            raise PermanentBackendError(f"launching node {key}: {exc}") from exc
        tags = ins.instance_tags(
            uid=cluster.uid, key=key, role=role, name=cluster.name, custom=cluster.tags, version=cfg.sparkplane_version
        )
        request: RunInstancesRequestTypeDef = {
            "ImageId": cfg.ami_id,
            "InstanceType": cluster.node_type.ec2_instance_type,  # type: ignore[typeddict-item]
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": ins.subnet_for(key, cfg.subnet_ids),
            "SecurityGroupIds": list(cfg.security_group_ids),
            "UserData": user_data,  # boto3 base64-encodes it
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
            # A node that shuts itself down is gone, not a stopped instance that keeps its volume (and cost).
            "InstanceInitiatedShutdownBehavior": "terminate",
            # IMDSv2 only: a request forged through an application on the node cannot read its credentials.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        }
        if cfg.key_name:
            request["KeyName"] = cfg.key_name
        if cfg.instance_profile:
            by = "Arn" if cfg.instance_profile.startswith("arn:") else "Name"
            request["IamInstanceProfile"] = {by: cfg.instance_profile}  # type: ignore[misc]
        return request

    def _run(self, ec2: EC2Client, request: RunInstancesRequestTypeDef, key: str) -> InstanceTypeDef:
        """RunInstances, idempotent on the key. A token EC2 answers with an ended instance belongs to an
        earlier launch of this key (a restarted cluster's master): the next token is derived from that
        instance's id, so a retry of this launch walks the same chain and lands on the same instance."""
        after: str | None = None
        for _ in range(_MAX_RELAUNCH_HOPS):
            token = ins.client_token(key, request, after=after)
            attempt: RunInstancesRequestTypeDef = {**request, "ClientToken": token}
            instance = ec2.run_instances(**attempt)["Instances"][0]
            if ins.map_state(instance.get("State", {}).get("Name", "")) not in (NodeState.STOPPING, NodeState.GONE):
                return instance
            after = instance.get("InstanceId", "")
            logger.info("client token of node %s belongs to ended instance %s; launching anew", key, after)
        raise PermanentBackendError(f"launching node {key}: {_MAX_RELAUNCH_HOPS} launches in a row ended at once")

    def _instances(
        self, ec2: EC2Client, cluster_uid: str, *, key: str | None = None, states: Sequence[str] = ()
    ) -> list[InstanceTypeDef]:
        filters: list[FilterTypeDef] = [{"Name": f"tag:{ins.CLUSTER_TAG}", "Values": [cluster_uid]}]
        if key is not None:
            filters.append({"Name": f"tag:{ins.NODE_TAG}", "Values": [key]})
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        return self._describe(ec2, filters)

    @staticmethod
    def _describe(ec2: EC2Client, filters: list[FilterTypeDef]) -> list[InstanceTypeDef]:
        found: list[InstanceTypeDef] = []
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                found.extend(reservation.get("Instances", []))
        return found

    @staticmethod
    def _node(instance: InstanceTypeDef) -> Node:
        node = ins.node_of(instance)
        if node is None:  # our own launch always tags; a stand-in that drops tags is a bug worth a loud error
            raise PermanentBackendError(f"instance {instance.get('InstanceId')} came back without its sparkplane tags")
        return node


def _console_text(output: str) -> str:
    # EC2 returns the console base64-encoded; some stand-ins (moto) return it as text.
    try:
        return base64.b64decode(output, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return output
