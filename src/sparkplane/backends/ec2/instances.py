"""EC2 instances as nodes: the state table, the tags, and the choices a launch must make the same way twice.

A retried launch must send EC2 the very same request (same subnet, same user data), or EC2 answers the reused
client token with IdempotentParameterMismatch. So the subnet is chosen by a hash of the node key, not
round-robin, and nothing in a request depends on the time or on a counter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sparkplane.backends.clusters import Node, NodeRole, NodeState

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import InstanceTypeDef, TagTypeDef

logger = logging.getLogger(__name__)

CLUSTER_TAG = "sparkplane:cluster"
NODE_TAG = "sparkplane:node"
ROLE_TAG = "sparkplane:role"
VERSION_TAG = "sparkplane:version"

# Every instance state EC2 documents (InstanceState.Name). sparkplane terminates and never stops, so an
# instance someone stopped runs no Spark any more: GONE (stop_node still terminates it, cleanup finds it).
_STATE_MAP: Mapping[str, NodeState] = {
    "pending": NodeState.PENDING,
    "running": NodeState.RUNNING,
    "stopping": NodeState.STOPPING,
    "stopped": NodeState.GONE,
    "shutting-down": NodeState.STOPPING,
    "terminated": NodeState.GONE,
}
LIVE_STATES = ("pending", "running")  # a launch finds these and does not launch again
NOT_TERMINATED = ("pending", "running", "stopping", "stopped", "shutting-down")  # what still costs money


def map_state(native: str) -> NodeState:
    """Our word for an EC2 instance state. A state EC2 adds later reads as PENDING, logged: a node the
    manager cannot use yet, and will not replace yet. GONE would start a second node beside one that may be
    alive; RUNNING would count capacity that may not be there. A PENDING that lasts meets the start timeout."""
    state = _STATE_MAP.get(native)
    if state is None:
        logger.warning("unknown EC2 instance state %r; reporting it as PENDING", native)
        return NodeState.PENDING
    return state


def tags_of(instance: InstanceTypeDef) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", []) if "Key" in t and "Value" in t}


def node_of(instance: InstanceTypeDef) -> Node | None:
    """The node an instance is, or None (logged) for an instance with the cluster tag but no node tag."""
    tags = tags_of(instance)
    key = tags.get(NODE_TAG)
    if not key:
        logger.warning(
            "instance %s has a %s tag but no %s tag; ignoring it", instance.get("InstanceId"), CLUSTER_TAG, NODE_TAG
        )
        return None
    role = (
        NodeRole.MASTER
        if tags.get(ROLE_TAG, "") == NodeRole.MASTER.value or key.endswith("-master")
        else NodeRole.WORKER
    )
    native = instance.get("State", {}).get("Name", "")
    reason = instance.get("StateReason", {}).get("Message") or instance.get("StateTransitionReason") or None
    return Node(
        key=key,
        role=role,
        state=map_state(native),
        native_state=native,
        node_id=instance.get("InstanceId", ""),
        host=instance.get("PrivateIpAddress"),
        message=reason,
        started_at=instance.get("LaunchTime"),
    )


def one_per_key(nodes: Sequence[Node]) -> list[Node]:
    """Each key once: its live instance if it has one (a master relaunched beside its ended one), else the
    most recently launched. Masters first, then workers by key."""
    best: dict[str, Node] = {}
    for node in nodes:
        current = best.get(node.key)
        if current is None or _rank(node) > _rank(current):
            best[node.key] = node
    return sorted(best.values(), key=lambda n: (n.role is not NodeRole.MASTER, len(n.key), n.key))


def _rank(node: Node) -> tuple[bool, float]:
    return (node.state is not NodeState.GONE, node.started_at.timestamp() if node.started_at else 0.0)


def subnet_for(key: str, subnets: Sequence[str]) -> str:
    """Spreads nodes over the subnets (and so their availability zones) the same way on every retry."""
    digest = hashlib.sha256(key.encode()).digest()
    return subnets[int.from_bytes(digest[:8], "big") % len(subnets)]


def instance_tags(
    *, uid: str, key: str, role: NodeRole, name: str, custom: Mapping[str, str], version: str
) -> list[TagTypeDef]:
    """The cluster's tags, then sparkplane's own, which a custom tag cannot override (the domain forbids the
    sparkplane: prefix already). A custom Name wins over ours: it is the customer's console."""
    ours = {CLUSTER_TAG: uid, NODE_TAG: key, ROLE_TAG: role.value, VERSION_TAG: version}
    merged = {"Name": f"{name} {key}"[:255], **custom, **ours}
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def client_token(key: str, request: Mapping[str, Any], *, after: str | None = None) -> str:
    """RunInstances' idempotency token: the node key, and a digest of the request (and of the ended instance
    it replaces, `after`).

    EC2 keeps a token for at least 24 hours after its instance ended and answers a reuse with that ended
    instance, or with IdempotentParameterMismatch when the request differs. A master key is reused when a
    cluster restarts, so the token must differ between launches that differ, and between one launch and the
    relaunch of the same key after its instance ended, while staying the same for a retry of one launch.
    """
    body = json.dumps(request, sort_keys=True, default=str) + (after or "")
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return f"{key[: 64 - 17]}.{digest}"  # EC2 takes at most 64 characters
