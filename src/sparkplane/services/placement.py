"""Where a session or batch on a cluster runs: the cluster's master, and the cluster's Spark settings.

Precedence, weakest first: the cluster's spark_conf, then what autoscaling needs (dynamic allocation with
shuffle tracking, so executors come and go with the work and idle workers can be stopped), then the
session's or batch's own conf, which always wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import ClusterState
from sparkplane.services import clusters
from sparkplane.settings import Settings

C = ClusterState
_STARTING = (C.PENDING, C.RESTARTING, C.RESIZING)
Spec = TypeVar("Spec", BatchSpec, SessionSpec)


@dataclass(frozen=True, slots=True)
class Placement:
    master: str
    conf: dict[str, str]


class NotPlaceable(Exception):
    """The cluster is gone or failed: the session or batch cannot start there."""


def placement(uow: UnitOfWork, cluster_id: int, settings: Settings) -> Placement | None:
    """The cluster's master and confs; None while it starts (the launch waits); NotPlaceable when it never will."""
    row = uow.clusters.get(cluster_id)
    if row is None:
        raise NotPlaceable(f"cluster {cluster_id} no longer exists")
    if row.state not in (C.RUNNING, C.RESIZING) or not row.master_url:
        if row.state in _STARTING:
            return None
        raise NotPlaceable(f"cluster {cluster_id} is {row.state}")
    spec = clusters.spec_of(row)
    conf = dict(spec.spark_conf)
    if spec.autoscale is not None:
        conf.update(
            {
                "spark.dynamicAllocation.enabled": "true",
                "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                "spark.dynamicAllocation.minExecutors": "0",
                "spark.dynamicAllocation.executorIdleTimeout": f"{settings.executor_idle_timeout_seconds:g}s",
            }
        )
    return Placement(master=row.master_url, conf=conf)


def placed(spec: Spec, where: Placement) -> Spec:
    return replace(spec, master=where.master, conf={**where.conf, **spec.conf})


def on_cluster(uow: UnitOfWork, cluster_id: int, spec: Spec, settings: Settings) -> tuple[Spec | None, str | None]:
    """(the spec placed on the cluster, None); (None, None) to wait while it starts; (None, why) if it never will."""
    try:
        where = placement(uow, cluster_id, settings)
    except NotPlaceable as exc:
        return None, str(exc)
    return (placed(spec, where) if where is not None else None), None
