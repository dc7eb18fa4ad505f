from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session as DbSession

from sparkplane.db.models import Batch, Cluster, ClusterEvent, Session
from sparkplane.db.repositories import _ids, _rows
from sparkplane.db.repositories.batches import ACTIVE_BATCH
from sparkplane.db.repositories.sessions import ACTIVE_SESSION
from sparkplane.db.repositories.transitions import record_creation, transition
from sparkplane.domain.states import CLUSTER_TRANSITIONS, ClusterState

# Every state but TERMINATED has (or may have) nodes: the watcher observes them all.
LIVE_CLUSTER = [str(s) for s in ClusterState if s != ClusterState.TERMINATED]


class ClusterRepository:
    def __init__(self, db: DbSession) -> None:
        self.db = db

    def add(self, cluster: Cluster, now: dt.datetime) -> Cluster:
        self.db.add(cluster)
        self.db.flush()
        record_creation(self.db, entity="cluster", entity_id=cluster.id, state=ClusterState(cluster.state), now=now)
        return cluster

    def get(self, cluster_id: int, *, for_update: bool = False) -> Cluster | None:
        if not _ids.storable(cluster_id):
            return None
        query = select(Cluster).where(Cluster.id == cluster_id)
        if for_update:
            query = query.with_for_update()
        return self.db.scalars(query).one_or_none()

    def by_uid(self, uid: str) -> Cluster | None:
        return self.db.scalar(select(Cluster).where(Cluster.uid == uid))

    def visible(self, owner_id: int | None) -> Select[Cluster]:
        query = select(Cluster)
        return query if owner_id is None else query.where(Cluster.owner_id == owner_id)

    def find(self, cluster_id: int, owner_id: int | None) -> Cluster | None:
        if not _ids.storable(cluster_id):
            return None
        return self.db.scalar(self.visible(owner_id).where(Cluster.id == cluster_id))

    def page(
        self, owner_id: int | None, offset: int, limit: int, state: str | None = None
    ) -> tuple[Sequence[Cluster], int]:
        query = self.visible(owner_id)
        if state is not None:
            query = query.where(Cluster.state == state)
        total = int(self.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        return self.db.scalars(query.order_by(Cluster.id).offset(_ids.offset(offset)).limit(limit)).all(), total

    def transition(
        self,
        row: Cluster,
        to: ClusterState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        message: str | None = None,
        **values: Any,
    ) -> bool:
        if to == ClusterState.RUNNING and row.started_at is None:
            values.setdefault("started_at", now)
        if to == ClusterState.TERMINATED:
            values.setdefault("terminated_at", now)
        if message is not None:
            values.setdefault("state_message", message)
        return transition(
            self.db,
            row,
            entity="cluster",
            table=CLUSTER_TRANSITIONS,
            to=to,
            now=now,
            reason=reason,
            message=message,
            values=values,
        )

    def set_fields(self, row: Cluster, **values: Any) -> None:
        self.db.execute(update(Cluster).where(Cluster.id == row.id).values(**values), execution_options=_rows.UNSYNCED)
        self.db.expire(row)

    def take_lease(self, cluster_id: int, now: dt.datetime, until: dt.datetime) -> bool:
        """Claim the right to converge this cluster until `until`; False while another process holds it."""
        result = self.db.execute(
            update(Cluster)
            .where(Cluster.id == cluster_id, or_(Cluster.lease_until.is_(None), Cluster.lease_until < now))
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, cluster_id: int) -> None:
        self.db.execute(update(Cluster).where(Cluster.id == cluster_id).values(lease_until=None))

    def reserve_workers(self, row: Cluster, count: int) -> list[int]:
        """The next `count` worker indices of this cluster, never handed out twice (UPDATE … RETURNING)."""
        if count <= 0:
            return []
        result = self.db.execute(
            update(Cluster)
            .where(Cluster.id == row.id)
            .values(next_worker=Cluster.next_worker + count)
            .returning(Cluster.next_worker)
        ).one()
        self.db.expire(row)
        end = int(result[0])
        return list(range(end - count, end))

    def live_ids(self, limit: int) -> Sequence[int]:
        query = (
            select(Cluster.id)
            .where(Cluster.state.in_(LIVE_CLUSTER))
            .order_by(Cluster.last_observed_at.asc().nulls_first(), Cluster.id)
            .limit(limit)
        )
        return self.db.scalars(query).all()

    def live_uids(self, provider: str) -> set[str]:
        query = select(Cluster.uid).where(Cluster.provider == provider, Cluster.state.in_(LIVE_CLUSTER))
        return set(self.db.scalars(query).all())

    def providers(self) -> set[str]:
        return set(self.db.scalars(select(Cluster.provider).distinct()).all())

    def live(self, provider: str) -> Sequence[Cluster]:
        query = select(Cluster).where(Cluster.provider == provider, Cluster.state.in_(LIVE_CLUSTER))
        return self.db.scalars(query).all()

    def active_work(self, cluster_id: int) -> int:
        """Unfinished sessions and batches that run on the cluster: what keeps it from auto-terminating."""
        sessions = self.db.scalar(
            select(func.count()).where(Session.cluster_id == cluster_id, Session.state.in_(ACTIVE_SESSION))
        )
        batches = self.db.scalar(
            select(func.count()).where(Batch.cluster_id == cluster_id, Batch.state.in_(ACTIVE_BATCH))
        )
        return int(sessions or 0) + int(batches or 0)

    def active_session_ids(self, cluster_id: int) -> Sequence[int]:
        query = select(Session.id).where(Session.cluster_id == cluster_id, Session.state.in_(ACTIVE_SESSION))
        return self.db.scalars(query).all()

    def active_batch_ids(self, cluster_id: int) -> Sequence[int]:
        query = select(Batch.id).where(Batch.cluster_id == cluster_id, Batch.state.in_(ACTIVE_BATCH))
        return self.db.scalars(query).all()

    def waiting_session_ids(self, cluster_id: int) -> Sequence[int]:
        """Sessions placed on the cluster that have not been launched yet (it was starting)."""
        query = select(Session.id).where(
            Session.cluster_id == cluster_id, Session.state == "not_started", Session.handle.is_(None)
        )
        return self.db.scalars(query).all()

    def waiting_batch_ids(self, cluster_id: int) -> Sequence[int]:
        query = select(Batch.id).where(
            Batch.cluster_id == cluster_id, Batch.state == "not_started", Batch.handle.is_(None)
        )
        return self.db.scalars(query).all()

    def driver_uis(self, cluster_id: int) -> list[tuple[str, str]]:
        """(Spark UI URL, application id) of every live session and batch on the cluster, for its demand."""
        found: list[tuple[str, str]] = []
        for model, active in ((Session, ACTIVE_SESSION), (Batch, ACTIVE_BATCH)):
            query = select(model.ui_url, model.app_id).where(
                model.cluster_id == cluster_id,
                model.state.in_(active),
                model.ui_url.is_not(None),
                model.app_id.is_not(None),
            )
            found.extend((str(ui), str(app)) for ui, app in self.db.execute(query).all())
        return found

    def add_event(self, cluster_id: int, type_: str, details: dict[str, Any], now: dt.datetime) -> None:
        self.db.add(ClusterEvent(cluster_id=cluster_id, type=type_, details=details, created_at=now))

    def events(
        self, cluster_id: int, offset: int, limit: int, *, descending: bool = False, types: Sequence[str] = ()
    ) -> tuple[Sequence[ClusterEvent], int]:
        query = select(ClusterEvent).where(ClusterEvent.cluster_id == cluster_id)
        if types:
            query = query.where(ClusterEvent.type.in_(list(types)))
        total = int(self.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        order = ClusterEvent.id.desc() if descending else ClusterEvent.id
        return self.db.scalars(query.order_by(order).offset(_ids.offset(offset)).limit(limit)).all(), total

    def delete(self, row: Cluster) -> None:
        self.db.delete(row)
