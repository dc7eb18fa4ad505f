"""The cluster manager: make a cluster's machines match its row, and record what happened.

`converge(ctx, id)` is the one entry point, run by the worker after every change a user asks for and by the
interactive watcher on every pass. It is idempotent and safe to run anywhere at once:
- one process converges a cluster at a time, through a lease on the row (not a transaction held while
  nodes start, which on SQLite would block every writer);
- every node is launched under a key (`<uid>-g<generation>-w<n>`) the provider is idempotent on, and
  worker indices are reserved in the database before the launch, so a crash anywhere leaves at worst a node
  the next pass adopts, never a duplicate.

What a pass does, in order: wind down a TERMINATING cluster; stop nodes of earlier generations; start the
master; read the master's status; record lost workers (and so replace them); autoscale; add or stop workers
until the cluster has its target; move PENDING/RESTARTING/RESIZING to RUNNING once the master lists every
worker; auto-terminate an idle cluster.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparkplane.backends.base import BackendError
from sparkplane.backends.clusters import (
    ClusterLaunch,
    ClusterProvider,
    MasterStatus,
    Node,
    NodeRole,
    NodeState,
    generation_of,
    node_key,
    parse_master_json,
    parse_node_key,
)
from sparkplane.db.models import Cluster
from sparkplane.domain import clusters as domain
from sparkplane.domain.states import ClusterState
from sparkplane.services import batches, dispatch, faults, sessions
from sparkplane.services import clusters as cluster_service
from sparkplane.services.cluster_demand import waiting_cores
from sparkplane.services.context import Context

log = logging.getLogger(__name__)
C = ClusterState
# Longer than any one pass (a master and a few workers start in seconds); a crashed holder's lease lapses.
LEASE_SECONDS = 120.0
_LOCK_SPACE = 0x5350  # "SP": the advisory-lock namespace of cluster convergence (the key is the cluster id)
_SETTLING = (C.PENDING, C.RESTARTING, C.RESIZING)


@dataclass(frozen=True, slots=True)
class _Row:
    """What a pass needs of the row, read once: the pass then works without holding a transaction."""

    id: int
    uid: str
    state: ClusterState
    provider: str
    generation: int
    target: int
    spec: domain.ClusterSpec
    master_url: str | None
    ui_url: str | None
    created_at: dt.datetime
    last_activity_at: dt.datetime
    report: dict[str, Any] | None
    idle_since: dict[str, str]
    report_token: str | None

    @classmethod
    def of(cls, row: Cluster, ctx: Context) -> _Row:
        return cls(
            id=row.id,
            uid=row.uid,
            state=ClusterState(row.state),
            provider=row.provider,
            generation=row.generation,
            target=row.target_workers,
            spec=cluster_service.spec_of(row),
            master_url=row.master_url,
            ui_url=row.ui_url,
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            report=row.report,
            idle_since=dict(row.worker_idle_since or {}),
            report_token=cluster_service.report_token(ctx, row),
        )


def converge(ctx: Context, cluster_id: int) -> None:
    # On PostgreSQL the lock is the holder's own connection: a worker killed mid-pass frees the cluster at
    # once. A time lease alone kept a crashed holder's cluster unconverged for LEASE_SECONDS.
    with ctx.db.process_lock(_LOCK_SPACE, cluster_id) as held:
        if held is False:
            return  # another process is converging it right now
        if held:
            _converge(ctx, cluster_id)
        else:
            _converge_under_lease(ctx, cluster_id)


def _converge_under_lease(ctx: Context, cluster_id: int) -> None:
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        if not uow.clusters.take_lease(cluster_id, now, now + dt.timedelta(seconds=LEASE_SECONDS)):
            return  # another process is converging it right now
    try:
        _converge(ctx, cluster_id)
    finally:
        with ctx.db.uow() as uow:
            uow.clusters.release_lease(cluster_id)


def _converge(ctx: Context, cluster_id: int) -> None:
    with ctx.db.uow() as uow:
        found = uow.clusters.get(cluster_id)
        if found is None or found.state == C.TERMINATED:
            return
        row = _Row.of(found, ctx)
        lost_before = {
            str(e.details.get("node")) for e in uow.clusters.events(row.id, 0, 100_000, types=["NODES_LOST"])[0]
        }
    provider = ctx.backends.cluster(row.provider)
    launch = ClusterLaunch(
        uid=row.uid,
        name=row.spec.name,
        node_type=row.spec.node_type,
        spark_env_vars=row.spec.spark_env_vars,
        tags={**row.spec.custom_tags, "sparkplane:cluster": row.uid, "sparkplane:cluster-name": row.spec.name},
        report_url=cluster_service.report_url(ctx, row.uid) if provider.pushes_status else None,
        report_token=row.report_token if provider.pushes_status else None,
    )
    nodes = provider.nodes(row.uid)
    current = [n for n in nodes if generation_of(n.key) == row.generation]
    alive = [n for n in current if n.state != NodeState.GONE]
    if row.state == C.TERMINATING:
        _wind_down(ctx, provider, row, [n for n in nodes if n.state != NodeState.GONE])
        return
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    for stale in (n for n in nodes if generation_of(n.key) != row.generation and n.state != NodeState.GONE):
        provider.stop_node(row.uid, stale.key, grace=grace)  # from before a restart or start
    if row.state == C.ERROR:
        return  # a user restarts or terminates it; nothing grows back on its own
    master = next((n for n in current if n.role is NodeRole.MASTER), None)
    if master is None:
        faults.point("converge.before_launch_master", ctx.settings.data_dir)
        provider.launch_node(launch, NodeRole.MASTER, key=node_key(row.uid, row.generation, NodeRole.MASTER))
        faults.point("converge.after_launch_master", ctx.settings.data_dir)
        return
    if master.state == NodeState.GONE:
        _master_lost(ctx, provider, row, master, alive)
        return
    status = _master_status(provider, row, current)
    if status is None or not status.master_url:
        _check_start_timeout(ctx, row)
        return
    workers = [n for n in alive if n.role is NodeRole.WORKER]
    _record_observation(
        ctx,
        row,
        status,
        workers,
        lost=[
            n for n in current if n.role is NodeRole.WORKER and n.state == NodeState.GONE and n.key not in lost_before
        ],
    )
    target, removed = _autoscale(ctx, provider, row, status, workers)
    _match_count(ctx, provider, launch, row, status, [w for w in workers if w.key not in removed], target)
    _settle(ctx, row, status, target)
    _auto_terminate(ctx, row)


def _master_status(provider: ClusterProvider, row: _Row, nodes: Sequence[Node]) -> MasterStatus | None:
    if not provider.pushes_status:
        return provider.master_status(row.uid)
    master_key = node_key(row.uid, row.generation, NodeRole.MASTER)
    report = (row.report or {}).get(master_key)
    if not report or not isinstance(report.get("master_json"), dict):
        return None
    # One worker per machine: the master lists each by its host, the provider knows each node's host.
    hosts = {n.host: n.key for n in nodes if n.role is NodeRole.WORKER and n.host and n.state != NodeState.GONE}
    status = parse_master_json(report["master_json"], hosts_to_keys=hosts)
    return MasterStatus(status.master_url, report.get("ui_url"), status.status, status.workers, status.apps)


def _record_observation(
    ctx: Context, row: _Row, status: MasterStatus, workers: Sequence[Node], *, lost: Sequence[Node]
) -> None:
    now = ctx.clock.now()
    used = {w.node_key: w.cores_used for w in status.alive_workers() if w.node_key}
    idle_since = {}
    for worker in workers:
        if used.get(worker.key, 0) == 0:
            idle_since[worker.key] = row.idle_since.get(worker.key, now.isoformat())
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id)
        if cluster is None:
            return
        fields: dict[str, Any] = {"last_observed_at": now, "worker_idle_since": idle_since}
        if status.master_url != row.master_url:
            fields["master_url"] = status.master_url
        if status.ui_url and status.ui_url != row.ui_url:
            fields["ui_url"] = status.ui_url
        uow.clusters.set_fields(cluster, **fields)
        for node in lost:
            log.warning("cluster %s: worker %s is gone (%s); replacing it", row.id, node.key, node.native_state)
            uow.clusters.add_event(
                row.id, "NODES_LOST", {"node": node.key, "reason": node.message or node.native_state}, now
            )


def _autoscale(
    ctx: Context, provider: ClusterProvider, row: _Row, status: MasterStatus, workers: Sequence[Node]
) -> tuple[int, tuple[str, ...]]:
    """The target after autoscaling, and the idle workers it stopped."""
    if row.spec.autoscale is None or row.state != C.RUNNING:
        return row.target, ()
    now = ctx.clock.now()
    registered = {w.node_key: w for w in status.alive_workers() if w.node_key}
    loads = [
        domain.WorkerLoad(
            key=w.key,
            cores_used=registered[w.key].cores_used,
            idle_seconds=_seconds_since(row.idle_since.get(w.key), now),
        )
        for w in workers
        if w.key in registered
    ]
    with ctx.db.uow() as uow:
        uis = uow.clusters.driver_uis(row.id)
    decision = domain.autoscale_decision(
        row.spec,
        workers=loads,
        pending_workers=len(workers) - len(loads),
        waiting_cores=waiting_cores(status, uis, node_cores=row.spec.node_type.cores),
        scale_down_after_seconds=ctx.settings.autoscale_down_after_seconds,
    )
    if decision is None or (decision.target == row.target and not decision.remove):
        return row.target, ()
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id, for_update=True)
        if cluster is None:
            return row.target, ()
        uow.clusters.set_fields(cluster, target_workers=decision.target)
        uow.clusters.add_event(
            row.id,
            "AUTOSCALED",
            {
                "previous_workers": row.target,
                "target_workers": decision.target,
                "reason": decision.reason,
                "removed": list(decision.remove),
            },
            now,
        )
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    for key in decision.remove:
        provider.stop_node(row.uid, key, grace=grace)
    log.info("cluster %s autoscaled %d -> %d: %s", row.id, row.target, decision.target, decision.reason)
    return decision.target, decision.remove


def _match_count(
    ctx: Context,
    provider: ClusterProvider,
    launch: ClusterLaunch,
    row: _Row,
    status: MasterStatus,
    workers: Sequence[Node],
    target: int,
) -> None:
    live = list(workers)
    missing = target - len(live)
    if missing > 0:
        with ctx.db.uow() as uow:
            cluster = uow.clusters.get(row.id, for_update=True)
            if cluster is None:
                return
            indices = uow.clusters.reserve_workers(cluster, missing)
            keys = [node_key(row.uid, row.generation, NodeRole.WORKER, i) for i in indices]
            uow.clusters.add_event(row.id, "ADDING_NODES", {"nodes": keys}, ctx.clock.now())
        for key in keys:
            provider.launch_node(launch, NodeRole.WORKER, key=key, master_url=status.master_url)
    elif missing < 0:
        busy = {w.node_key for w in status.alive_workers() if w.node_key and w.cores_used > 0}
        # Stop idle workers first, newest first: they hold the least.
        extra = sorted(live, key=lambda n: (n.key in busy, -_index(n)))[:-missing]
        grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
        with ctx.db.uow() as uow:
            uow.clusters.add_event(row.id, "REMOVING_NODES", {"nodes": [n.key for n in extra]}, ctx.clock.now())
        for node in extra:
            provider.stop_node(row.uid, node.key, grace=grace)


def _index(node: Node) -> int:
    parsed = parse_node_key(node.key)
    return parsed.index if parsed else 0


def _settle(ctx: Context, row: _Row, status: MasterStatus, target: int) -> None:
    """PENDING, RESTARTING and RESIZING end in RUNNING when the master lists exactly the target workers."""
    if row.state not in _SETTLING:
        return
    registered = [w for w in status.alive_workers() if w.node_key and generation_of(w.node_key) == row.generation]
    if len(registered) != target:
        _check_start_timeout(ctx, row)
        return
    now = ctx.clock.now()
    entries: list[int] = []
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id, for_update=True)
        faults.point("converge.before_running", ctx.settings.data_dir)
        if cluster is None or not uow.clusters.transition(
            cluster, C.RUNNING, now, message=f"running with {target} worker(s)", last_activity_at=now
        ):
            return
        kind = "RESIZED" if row.state == C.RESIZING else "RUNNING"
        uow.clusters.add_event(row.id, kind, {"workers": target, "master_url": status.master_url}, now)
        # Work placed on the cluster while it started can start now.
        for session_id in uow.clusters.waiting_session_ids(row.id):
            entries.append(dispatch.enqueue(uow, ctx, dispatch.LAUNCH_SESSION, session_id))
        for batch_id in uow.clusters.waiting_batch_ids(row.id):
            entries.append(dispatch.enqueue(uow, ctx, dispatch.LAUNCH_BATCH, batch_id))
    dispatch.publish(ctx, entries)


def _check_start_timeout(ctx: Context, row: _Row) -> None:
    if row.state not in (C.PENDING, C.RESTARTING):
        return
    started = row.created_at if row.state == C.PENDING else row.last_activity_at
    if (ctx.clock.now() - started).total_seconds() > ctx.settings.cluster_start_timeout_seconds:
        _fail(ctx, row, f"the cluster did not start within {ctx.settings.cluster_start_timeout_seconds:.0f}s")


def _master_lost(ctx: Context, provider: ClusterProvider, row: _Row, master: Node, alive: Sequence[Node]) -> None:
    tail = provider.fetch_node_log(row.uid, master.key, tail_lines=20) or ""
    last = next((line for line in reversed(tail.splitlines()) if "ERROR" in line or "Exception" in line), "")
    message = f"the Spark master stopped ({master.native_state})" + (f": {last.strip()[:300]}" if last else "")
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    for node in alive:
        provider.stop_node(row.uid, node.key, grace=grace)  # workers without a master run nothing
    _fail(ctx, row, message)


def _fail(ctx: Context, row: _Row, message: str) -> None:
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id, for_update=True)
        if cluster is not None and uow.clusters.transition(cluster, C.ERROR, now, reason="ERROR", message=message):
            uow.clusters.add_event(row.id, "ERROR", {"message": message}, now)
            log.warning("cluster %s: %s", row.id, message)
    _end_work(ctx, row.id, f"cluster {row.id} failed: {message}")


def _auto_terminate(ctx: Context, row: _Row) -> None:
    minutes = row.spec.autotermination_minutes
    if minutes <= 0:
        return
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id)
        if cluster is None or cluster.state != C.RUNNING:
            return
        active = uow.clusters.active_work(row.id)
        if active:
            uow.clusters.set_fields(cluster, last_activity_at=now)
            return
        idle = (now - cluster.last_activity_at).total_seconds()
    if domain.autotermination_due(minutes, idle_seconds=idle, active_work=0):
        log.info("cluster %s: idle for %.0fs, auto-terminating", row.id, idle)
        cluster_service.terminate(
            ctx, None, row.id, code="INACTIVITY", parameters={"inactivity_duration_min": f"{minutes:g}"}
        )


def _wind_down(ctx: Context, provider: ClusterProvider, row: _Row, alive: Sequence[Node]) -> None:
    _end_work(ctx, row.id, f"cluster {row.id} was terminated")
    grace = dt.timedelta(seconds=ctx.settings.cancel_grace_seconds)
    # Workers first: a master stopped first would leave them retrying to reach it.
    for node in sorted(alive, key=lambda n: n.role is NodeRole.MASTER):
        provider.stop_node(row.uid, node.key, grace=grace)
    if any(n.state != NodeState.GONE for n in provider.nodes(row.uid)):
        return  # the next pass looks again
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        cluster = uow.clusters.get(row.id, for_update=True)
        if cluster is not None and uow.clusters.transition(
            cluster, C.TERMINATED, now, message="terminated", master_url=None, worker_idle_since=None
        ):
            uow.clusters.add_event(row.id, "TERMINATED", {"reason": cluster.termination_reason or {}}, now)


def _end_work(ctx: Context, cluster_id: int, message: str) -> None:
    """Sessions and batches on a cluster that goes away end cleanly with the reason, never hang."""
    with ctx.db.uow() as uow:
        session_ids = list(uow.clusters.active_session_ids(cluster_id))
        batch_ids = list(uow.clusters.active_batch_ids(cluster_id))
    for session_id in session_ids:
        sessions.kill(ctx, None, session_id, message=message)
    for batch_id in batch_ids:
        batches.kill(ctx, None, batch_id, message=message)


def _seconds_since(iso: str | None, now: dt.datetime) -> float:
    if not iso:
        return 0.0
    try:
        return max(0.0, (now - dt.datetime.fromisoformat(iso)).total_seconds())
    except ValueError:
        return 0.0


def watcher_pass(ctx: Context) -> int:
    """The interactive watcher's cluster half: converge every live cluster, one bad one never stops the rest."""
    with ctx.db.uow() as uow:
        due = uow.clusters.live_ids(ctx.settings.reconcile_batch_size)
    for cluster_id in due:
        try:
            converge(ctx, cluster_id)
        except BackendError as exc:
            log.warning("cluster %s: provider error, will retry: %s", cluster_id, exc)
        except Exception:
            log.exception("cluster %s: converge failed; will retry", cluster_id)
    return len(due)


def stop_all(ctx: Context, *, reason: str) -> int:
    """Terminate every live cluster now and wait for its nodes to stop (`sparkplane up` stopping)."""
    with ctx.db.uow() as uow:
        due = list(uow.clusters.live_ids(100_000))
    for cluster_id in due:
        cluster_service.terminate(
            ctx, None, cluster_id, code="SERVICE_STOPPED", kind="SUCCESS", parameters={"message": reason}
        )
        for _ in range(3):
            converge(ctx, cluster_id)
    return len(due)
