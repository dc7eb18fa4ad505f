"""Clusters as users manage them: create, read, start, restart, resize, terminate, delete, events.

These only decide and record; the cluster manager (cluster_runs.converge, run by the worker and the
interactive watcher) makes the machines match what the row says. Every change writes the row, a timeline
event and an outbox entry in one transaction, so a crash between "accepted" and "done" loses nothing.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkplane.db.models import Cluster
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain import clusters as domain
from sparkplane.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from sparkplane.domain.states import ClusterState
from sparkplane.services import dispatch, faults, users
from sparkplane.services.context import Context
from sparkplane.services.encryption import DecryptionFailed
from sparkplane.services.principal import Principal

C = ClusterState
# Sessions and batches may be placed on a cluster in these states (they start once it runs).
ACCEPTS_WORK = (C.PENDING, C.RUNNING, C.RESIZING)


@dataclass(frozen=True, slots=True)
class ClusterRequest:
    cluster_name: str
    node_type_id: str | None = None
    num_workers: int | None = None
    autoscale: Mapping[str, int] | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    spark_env_vars: Mapping[str, str] = field(default_factory=dict)
    autotermination_minutes: float | None = None
    custom_tags: Mapping[str, str] = field(default_factory=dict)
    spark_version: str | None = None  # accepted for Databricks clients; clusters run the installed Spark


@dataclass(frozen=True, slots=True)
class ClusterView:
    id: int
    uid: str
    name: str
    owner: str
    owner_id: int
    state: ClusterState
    state_message: str | None
    provider: str
    spec: Mapping[str, Any]
    target_workers: int
    master_url: str | None
    ui_url: str | None
    termination_reason: Mapping[str, Any] | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    terminated_at: dt.datetime | None
    last_activity_at: dt.datetime


def view(row: Cluster, owner: str) -> ClusterView:
    return ClusterView(
        id=row.id,
        uid=row.uid,
        name=row.name,
        owner=owner,
        owner_id=row.owner_id,
        state=ClusterState(row.state),
        state_message=row.state_message,
        provider=row.provider,
        spec=row.spec,
        target_workers=row.target_workers,
        master_url=row.master_url,
        ui_url=row.ui_url,
        termination_reason=row.termination_reason,
        created_at=row.created_at,
        started_at=row.started_at,
        terminated_at=row.terminated_at,
        last_activity_at=row.last_activity_at,
    )


def spec_to_json(spec: domain.ClusterSpec) -> dict[str, Any]:
    return {
        "node_type_id": spec.node_type.id,
        "num_workers": spec.num_workers,
        "autoscale": (
            {"min_workers": spec.autoscale.min_workers, "max_workers": spec.autoscale.max_workers}
            if spec.autoscale
            else None
        ),
        "spark_conf": dict(spec.spark_conf),
        "spark_env_vars": dict(spec.spark_env_vars),
        "autotermination_minutes": spec.autotermination_minutes,
        "custom_tags": dict(spec.custom_tags),
    }


def spec_of(row: Cluster) -> domain.ClusterSpec:
    s = row.spec
    return domain.ClusterSpec(
        name=row.name,
        node_type=domain.node_type_of(s.get("node_type_id")),
        num_workers=s.get("num_workers"),
        autoscale=domain.Autoscale(**s["autoscale"]) if s.get("autoscale") else None,
        spark_conf=dict(s.get("spark_conf") or {}),
        spark_env_vars=dict(s.get("spark_env_vars") or {}),
        autotermination_minutes=float(s.get("autotermination_minutes") or 0),
        custom_tags=dict(s.get("custom_tags") or {}),
    )


def _check_fits(ctx: Context, uow: UnitOfWork, provider: str, spec: domain.ClusterSpec, *, skip: int | None) -> None:
    """400 when the provider could not hold the cluster at its largest next to the live ones."""
    capacity = ctx.backends.cluster(provider).capacity()
    in_use_mb = in_use_nodes = 0
    for other in uow.clusters.live(provider):
        if other.id == skip:
            continue
        other_spec = spec_of(other)
        in_use_mb += other_spec.max_workers * other_spec.node_type.memory_mb
        in_use_nodes += other_spec.max_workers + 1
    domain.check_capacity(spec, capacity, in_use_mb=in_use_mb, in_use_nodes=in_use_nodes)


def create(ctx: Context, principal: Principal, req: ClusterRequest) -> ClusterView:
    spec = domain.cluster_spec(
        name=req.cluster_name,
        node_type_id=req.node_type_id,
        num_workers=req.num_workers,
        autoscale=req.autoscale,
        spark_conf=req.spark_conf,
        spark_env_vars=req.spark_env_vars,
        autotermination_minutes=req.autotermination_minutes,
        custom_tags=req.custom_tags,
    )
    provider = ctx.settings.cluster_provider
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        _check_fits(ctx, uow, provider, spec, skip=None)
        row = uow.clusters.add(
            Cluster(
                uid=uuid.uuid4().hex[:20],
                owner_id=principal.user_id,
                name=spec.name,
                state=C.PENDING,
                provider=provider,
                spec=spec_to_json(spec),
                target_workers=spec.initial_workers(),
                generation=0,
                next_worker=0,
                report_token=ctx.cipher.seal(secrets.token_urlsafe(32).encode()),
                last_activity_at=now,
                created_at=now,
                version=0,
            ),
            now,
        )
        details = {"user": principal.username, "target_workers": spec.initial_workers()}
        uow.clusters.add_event(row.id, "CREATING", details, now)
        entry = dispatch.enqueue(uow, ctx, dispatch.CONVERGE_CLUSTER, row.id)
        result = view(row, principal.username)
    faults.point("api.cluster_created", ctx.settings.data_dir)
    dispatch.publish(ctx, [entry])
    return result


def owned(uow: UnitOfWork, principal: Principal, cluster_id: int) -> Cluster:
    row = uow.clusters.find(cluster_id, principal.owner_filter)
    if row is None:
        raise NotFound(f"Cluster {cluster_id} not found.")
    return row


def _owner(uow: UnitOfWork, row: Cluster, principal: Principal) -> str:
    if row.owner_id == principal.user_id:
        return principal.username
    user = uow.users.get(row.owner_id)
    return user.username if user else "?"


def get(ctx: Context, principal: Principal, cluster_id: int) -> ClusterView:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, cluster_id)
        return view(row, _owner(uow, row, principal))


def page(
    ctx: Context, principal: Principal, offset: int, limit: int, state: str | None = None
) -> tuple[list[ClusterView], int]:
    if state is not None and state not in {s.value for s in ClusterState}:
        raise InvalidInput(f"state must be one of {', '.join(s.value for s in ClusterState)}")
    with ctx.db.uow() as uow:
        rows, total = uow.clusters.page(principal.owner_filter, offset, limit, state)
        names = {u.id: u.username for u in uow.users.list()} if principal.is_admin else {}
        names[principal.user_id] = principal.username
        return [view(r, names.get(r.owner_id, "?")) for r in rows], total


def _change(
    ctx: Context,
    principal: Principal | None,
    cluster_id: int,
    apply: Any,
) -> ClusterView:
    """Lock the row, let `apply(uow, row, now)` move it (it returns whether to converge), publish."""
    now = ctx.clock.now()
    entries: list[int] = []
    with ctx.db.uow() as uow:
        if principal is not None:
            owned(uow, principal, cluster_id)  # 404 for a cluster that is not the caller's
        row = uow.clusters.get(cluster_id, for_update=True)
        if row is None:
            raise NotFound(f"Cluster {cluster_id} not found.")
        if apply(uow, row, now):
            entries.append(dispatch.enqueue(uow, ctx, dispatch.CONVERGE_CLUSTER, row.id))
        row = uow.clusters.get(row.id) or row
        result = view(row, users.owner_name(uow, row.owner_id, principal))
    dispatch.publish(ctx, entries)
    return result


def start(ctx: Context, principal: Principal, cluster_id: int) -> ClusterView:
    def apply(uow: UnitOfWork, row: Cluster, now: dt.datetime) -> bool:
        if row.state in (C.PENDING, C.RUNNING, C.RESIZING, C.RESTARTING):
            return False  # already started or starting: nothing to do (Databricks answers the same)
        if row.state != C.TERMINATED:
            raise Conflict(f"Cluster {row.id} is {row.state}; it can be started once it is TERMINATED")
        spec = spec_of(row)
        _check_fits(ctx, uow, row.provider, spec, skip=row.id)
        uow.clusters.transition(
            row,
            C.PENDING,
            now,
            message="starting",
            generation=row.generation + 1,
            target_workers=spec.initial_workers(),
            master_url=None,
            ui_url=None,
            termination_reason=None,
            terminated_at=None,
            started_at=None,
            worker_idle_since=None,
            last_activity_at=now,
        )
        uow.clusters.add_event(row.id, "STARTING", {"user": _who(principal)}, now)
        return True

    return _change(ctx, principal, cluster_id, apply)


def restart(ctx: Context, principal: Principal, cluster_id: int) -> ClusterView:
    def apply(uow: UnitOfWork, row: Cluster, now: dt.datetime) -> bool:
        if row.state not in (C.RUNNING, C.RESIZING, C.ERROR):
            raise Conflict(f"Cluster {row.id} is {row.state}; only a RUNNING or ERROR cluster can be restarted")
        uow.clusters.transition(
            row,
            C.RESTARTING,
            now,
            message="restarting",
            generation=row.generation + 1,
            master_url=None,
            ui_url=None,
            worker_idle_since=None,
            target_workers=max(row.target_workers, spec_of(row).min_workers),
        )
        uow.clusters.add_event(row.id, "RESTARTING", {"user": _who(principal)}, now)
        return True

    return _change(ctx, principal, cluster_id, apply)


def resize(
    ctx: Context,
    principal: Principal,
    cluster_id: int,
    *,
    num_workers: int | None = None,
    autoscale: Mapping[str, int] | None = None,
) -> ClusterView:
    def apply(uow: UnitOfWork, row: Cluster, now: dt.datetime) -> bool:
        if row.state not in (C.RUNNING, C.RESIZING):
            raise Conflict(f"Cluster {row.id} is {row.state}; only a RUNNING cluster can be resized")
        old = spec_of(row)
        new = domain.workers_for_resize(old, num_workers, autoscale)
        _check_fits(ctx, uow, row.provider, new, skip=row.id)
        # A new autoscale range keeps the current size when it lies inside it.
        if new.num_workers is not None:
            target = new.num_workers
        else:
            target = min(max(row.target_workers, new.min_workers), new.max_workers)
        uow.clusters.set_fields(row, spec=spec_to_json(new), target_workers=target)
        if row.state == C.RUNNING:
            uow.clusters.transition(row, C.RESIZING, now, message=f"resizing to {target} workers")
        uow.clusters.add_event(
            row.id,
            "RESIZING",
            {
                "user": _who(principal),
                "previous_workers": row.target_workers,
                "target_workers": target,
                "autoscale": spec_to_json(new)["autoscale"],
            },
            now,
        )
        return True

    return _change(ctx, principal, cluster_id, apply)


def terminate(
    ctx: Context,
    principal: Principal | None,
    cluster_id: int,
    *,
    code: str = "USER_REQUEST",
    kind: str = "SUCCESS",
    parameters: Mapping[str, str] | None = None,
) -> ClusterView:
    """Stop the cluster's machines (idempotent); `principal` None is sparkplane itself (auto-termination)."""

    def apply(uow: UnitOfWork, row: Cluster, now: dt.datetime) -> bool:
        if row.state in (C.TERMINATING, C.TERMINATED):
            return False
        params = dict(parameters or {})
        if principal is not None:
            params.setdefault("username", principal.username)
        reason = {"code": code, "type": kind, "parameters": params}
        uow.clusters.transition(row, C.TERMINATING, now, reason=code, message="terminating", termination_reason=reason)
        uow.clusters.add_event(row.id, "TERMINATING", {"reason": reason}, now)
        return True

    return _change(ctx, principal, cluster_id, apply)


def delete(ctx: Context, principal: Principal, cluster_id: int) -> None:
    """Remove a terminated cluster for good: its row, its timeline and what its provider kept of it."""
    with ctx.db.uow() as uow:
        row = owned(uow, principal, cluster_id)
        if row.state != C.TERMINATED:
            raise Conflict(f"Cluster {row.id} is {row.state}; terminate it first, then delete it")
        provider, uid = row.provider, row.uid
        uow.clusters.delete(row)
    ctx.backends.cluster(provider).purge(uid)


def events(
    ctx: Context, principal: Principal, cluster_id: int, offset: int, limit: int, *, descending: bool = False
) -> tuple[list[dict[str, Any]], int]:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, cluster_id)
        found, total = uow.clusters.events(row.id, offset, limit, descending=descending)
        return [
            {"cluster_id": row.id, "timestamp": e.created_at, "type": e.type, "details": e.details} for e in found
        ], total


def for_work(uow: UnitOfWork, principal: Principal, cluster_id: int) -> Cluster:
    """The cluster a new session or batch asks for: visible to the caller and able to take work."""
    row = owned(uow, principal, cluster_id)
    if row.state not in ACCEPTS_WORK:
        hint = f"start it first (POST /api/v1/clusters/{row.id}/start)" if row.state == C.TERMINATED else "wait"
        raise Conflict(f"Cluster {row.id} is {row.state} and cannot take new work: {hint}")
    return row


# --- node reports (providers whose nodes push the master's status) ----------------------------------------


def report_token(ctx: Context, row: Cluster) -> str | None:
    """The cluster's report token in clear, for its nodes' bootstrap; None when it has none or it cannot be
    opened (the encryption key changed without the old one in SPARKPLANE_ENCRYPTION_OLD_KEYS)."""
    if row.report_token is None:
        return None
    try:
        return ctx.cipher.open(row.report_token).decode()
    except DecryptionFailed:
        return None


def report_url(ctx: Context, uid: str) -> str | None:
    base = ctx.settings.public_url
    return f"{base.rstrip('/')}/api/v1/clusters/by-uid/{uid}/report" if base else None


def store_report(ctx: Context, cluster_uid: str, token: str, report: Mapping[str, Any]) -> None:
    """A node of a pushes_status provider reports; its bearer token authenticates this cluster only."""
    with ctx.db.uow() as uow:
        row = uow.clusters.by_uid(cluster_uid)
        expected = report_token(ctx, row) if row is not None else None
        if row is None or expected is None or not hmac.compare_digest(expected.encode(), token.encode()):
            raise Unauthenticated("this report token is not valid for that cluster")
        if row.state == C.TERMINATED:
            return
        reports = dict(row.report or {})
        reports[str(report.get("key", "?"))] = dict(report)
        uow.clusters.set_fields(row, report=reports, reported_at=ctx.clock.now())


def _who(principal: Principal | None) -> str:
    return principal.username if principal is not None else "sparkplane"
