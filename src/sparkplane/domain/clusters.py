"""Clusters as a user asks for them, and the pure decisions about them (autoscaling, auto-termination).

A cluster is a Spark standalone cluster: one master and N workers of one node type. Field names follow
Databricks' Clusters API (cluster_name, num_workers, autoscale.min_workers/max_workers, node_type_id,
spark_conf, spark_env_vars, autotermination_minutes, custom_tags), so a Databricks-compatible face can sit on
the same service later. Everything here is data and arithmetic: no I/O, no clock of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.specs import check_conf


@dataclass(frozen=True, slots=True)
class NodeType:
    """A worker size. `ec2_instance_type` is the smallest common instance with at least these resources."""

    id: str
    cores: int
    memory_mb: int
    ec2_instance_type: str
    description: str


NODE_TYPES: Mapping[str, NodeType] = {
    n.id: n
    for n in (
        NodeType("sp.small", 1, 1024, "t3.small", "1 core, 1 GiB"),
        NodeType("sp.medium", 2, 4096, "m5.large", "2 cores, 4 GiB"),
        NodeType("sp.large", 4, 8192, "m5.xlarge", "4 cores, 8 GiB"),
        NodeType("sp.xlarge", 8, 16384, "m5.2xlarge", "8 cores, 16 GiB"),
    )
}
DEFAULT_NODE_TYPE = "sp.small"

_NAME = re.compile(r"^[^\x00-\x1f]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables a cluster's processes need set our way; a user's value would break the cluster or leak a secret.
_RESERVED_ENV_PREFIXES = ("SPARK_MASTER", "SPARK_WORKER", "SPARK_HOME", "SPARKPLANE_", "AWS_", "PYSPARK_")
MAX_TAGS = 45  # AWS allows 50 tags per resource; sparkplane sets 5 of its own
MAX_WORKERS = 100  # a guard against typos (1000 for 10); a provider's capacity may be lower


@dataclass(frozen=True, slots=True)
class Autoscale:
    min_workers: int
    max_workers: int


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A validated cluster request. Build it with `cluster_spec`, which gives every error a clear message."""

    name: str
    node_type: NodeType
    num_workers: int | None = None
    autoscale: Autoscale | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    spark_env_vars: Mapping[str, str] = field(default_factory=dict)
    autotermination_minutes: float = 0.0  # 0: never (Databricks' convention)
    custom_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def min_workers(self) -> int:
        return self.autoscale.min_workers if self.autoscale else (self.num_workers or 0)

    @property
    def max_workers(self) -> int:
        return self.autoscale.max_workers if self.autoscale else (self.num_workers or 0)

    def initial_workers(self) -> int:
        return self.min_workers


def cluster_spec(
    *,
    name: str,
    node_type_id: str | None = None,
    num_workers: int | None = None,
    autoscale: Mapping[str, int] | None = None,
    spark_conf: Mapping[str, str] | None = None,
    spark_env_vars: Mapping[str, str] | None = None,
    autotermination_minutes: float | None = None,
    custom_tags: Mapping[str, str] | None = None,
) -> ClusterSpec:
    if not _NAME.match(name or "") or not name.strip():
        raise InvalidInput("cluster_name must be 1 to 100 printable characters")
    node_type = node_type_of(node_type_id)
    scaling = _scaling(num_workers, autoscale)
    minutes = 0.0 if autotermination_minutes is None else float(autotermination_minutes)
    if minutes < 0 or minutes > 10_000 or math.isnan(minutes):
        raise InvalidInput("autotermination_minutes must be 0 (never) or a number of minutes up to 10000")
    return ClusterSpec(
        name=name.strip(),
        node_type=node_type,
        num_workers=num_workers if scaling is None else None,
        autoscale=scaling,
        spark_conf=check_conf(spark_conf or {}),
        spark_env_vars=_env_vars(spark_env_vars or {}),
        autotermination_minutes=minutes,
        custom_tags=_tags(custom_tags or {}),
    )


def node_type_of(node_type_id: str | None) -> NodeType:
    node_type = NODE_TYPES.get(node_type_id or DEFAULT_NODE_TYPE)
    if node_type is None:
        known = ", ".join(f"{n.id} ({n.description})" for n in NODE_TYPES.values())
        raise InvalidInput(f"node_type_id '{node_type_id}' is unknown; use one of {known}")
    return node_type


def workers_for_resize(spec: ClusterSpec, num_workers: int | None, autoscale: Mapping[str, int] | None) -> ClusterSpec:
    """The spec after a resize: a fixed size, or new autoscale bounds (Databricks' resize takes either)."""
    scaling = _scaling(num_workers, autoscale)
    return ClusterSpec(
        name=spec.name,
        node_type=spec.node_type,
        num_workers=num_workers if scaling is None else None,
        autoscale=scaling,
        spark_conf=spec.spark_conf,
        spark_env_vars=spec.spark_env_vars,
        autotermination_minutes=spec.autotermination_minutes,
        custom_tags=spec.custom_tags,
    )


def _scaling(num_workers: int | None, autoscale: Mapping[str, int] | None) -> Autoscale | None:
    if num_workers is not None and autoscale is not None:
        raise InvalidInput("give either num_workers (a fixed size) or autoscale (min_workers, max_workers), not both")
    if num_workers is None and autoscale is None:
        raise InvalidInput("give num_workers (a fixed size) or autoscale {min_workers, max_workers}")
    if num_workers is not None:
        _check_count("num_workers", num_workers)
        return None
    assert autoscale is not None
    unknown = set(autoscale) - {"min_workers", "max_workers"}
    if unknown:
        raise InvalidInput(f"autoscale has unknown field(s) {', '.join(sorted(unknown))}; use min_workers, max_workers")
    if "min_workers" not in autoscale or "max_workers" not in autoscale:
        raise InvalidInput("autoscale needs both min_workers and max_workers")
    low, high = autoscale["min_workers"], autoscale["max_workers"]
    _check_count("autoscale.min_workers", low)
    _check_count("autoscale.max_workers", high)
    if low > high:
        raise InvalidInput(f"autoscale.min_workers ({low}) is larger than autoscale.max_workers ({high})")
    if high < 1:
        raise InvalidInput("autoscale.max_workers must be at least 1")
    return Autoscale(low, high)


def _check_count(field_name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_WORKERS:
        raise InvalidInput(f"{field_name} must be a whole number from 0 to {MAX_WORKERS}, not {value!r}")


def _env_vars(values: Mapping[str, str]) -> dict[str, str]:
    for key in values:
        if not _ENV_NAME.match(key):
            raise InvalidInput(f"spark_env_vars name '{key}' is not an environment variable name")
        if key.startswith(_RESERVED_ENV_PREFIXES):
            raise InvalidInput(f"spark_env_vars may not set '{key}': sparkplane sets it for the cluster's processes")
    return {k: str(v) for k, v in values.items()}


def _tags(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_TAGS:
        raise InvalidInput(f"custom_tags has {len(values)} tags; at most {MAX_TAGS} are allowed")
    for key, value in values.items():
        if not key or len(key) > 127 or key.lower().startswith(("aws:", "sparkplane:")):
            raise InvalidInput(
                f"custom_tags key '{key}' must be 1 to 127 characters and not start with aws: or sparkplane:"
            )
        if len(str(value)) > 255:
            raise InvalidInput(f"custom_tags value of '{key}' is longer than 255 characters")
    return {k: str(v) for k, v in values.items()}


# --- capacity -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a provider can hold at once, across all clusters (None: no limit known, e.g. a cloud account)."""

    memory_mb: int | None = None
    max_nodes: int | None = None


def check_capacity(spec: ClusterSpec, capacity: Capacity, *, in_use_mb: int = 0, in_use_nodes: int = 0) -> None:
    """400 when the cluster at its largest would not fit next to what already runs."""
    workers = spec.max_workers
    needed_mb = workers * spec.node_type.memory_mb
    if capacity.memory_mb is not None and in_use_mb + needed_mb > capacity.memory_mb:
        free = max(0, capacity.memory_mb - in_use_mb)
        fits = free // spec.node_type.memory_mb
        raise InvalidInput(
            f"{workers} workers of {spec.node_type.id} need {needed_mb} MiB, but this machine has {free} MiB "
            f"left for workers: at most {fits} fit"
        )
    if capacity.max_nodes is not None and in_use_nodes + workers + 1 > capacity.max_nodes:
        raise InvalidInput(
            f"a master and {workers} workers would exceed this provider's limit of {capacity.max_nodes} nodes"
        )


# --- autoscaling and auto-termination ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One live worker as the master reports it; `idle_seconds` is how long it has run no executor."""

    key: str
    cores_used: int
    idle_seconds: float


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    target: int
    remove: tuple[str, ...] = ()  # worker keys to stop (idle ones), when scaling down
    reason: str = ""


def autoscale_decision(
    spec: ClusterSpec,
    *,
    workers: Sequence[WorkerLoad],
    pending_workers: int,
    waiting_cores: int,
    scale_down_after_seconds: float,
) -> ScaleDecision | None:
    """Where an autoscaling cluster should go now; None to stay.

    Up: applications wait for cores (an app the master could not place, or tasks queued while every core
    is busy) and there is room below max_workers. Enough workers are added for the waiting cores, never more
    than max. Workers still starting count as supply, so one shortage never adds workers twice.
    Down: workers that ran no executor for `scale_down_after_seconds` are stopped, never below min_workers,
    and only when nothing waits.
    """
    if spec.autoscale is None:
        return None
    current = len(workers) + pending_workers
    low, high = spec.autoscale.min_workers, spec.autoscale.max_workers
    if waiting_cores > 0 and current < high:
        if pending_workers:
            return None  # supply is on its way; decide again when it has arrived
        wanted = math.ceil(waiting_cores / spec.node_type.cores)
        target = min(high, current + max(1, wanted))
        return ScaleDecision(target, reason=f"{waiting_cores} core(s) wanted by waiting applications")
    if waiting_cores == 0 and current > low:
        idle = [w for w in workers if w.cores_used == 0 and w.idle_seconds >= scale_down_after_seconds]
        idle.sort(key=lambda w: -w.idle_seconds)
        removable = idle[: max(0, current - low)]
        if removable:
            return ScaleDecision(
                current - len(removable),
                remove=tuple(w.key for w in removable),
                reason=f"{len(removable)} worker(s) idle for {scale_down_after_seconds:.0f}s or more",
            )
    if current < low:
        return ScaleDecision(low, reason="below min_workers")
    return None


def autotermination_due(minutes: float, *, idle_seconds: float, active_work: int) -> bool:
    """A cluster with no running session or batch for its autotermination_minutes stops itself."""
    return minutes > 0 and active_work == 0 and idle_seconds >= minutes * 60.0
