"""One watcher pass over every live row of a kind, a page at a time, writing only what changed.

Per page: read the rows as tuples; observe each on its backend with no transaction open (a slow agent holds
no lock); write nothing for the rows whose observation changes nothing (but re-stamp, in one UPDATE, those
whose `last_observed_at` grew old); then settle the others in one transaction on their locked rows. Should
that transaction fail, each of those rows is settled again in a transaction of its own, so one bad row never
holds back its page. At 10,000 live rows, most of them quiet, a pass costs two reads per page instead of a
transaction per row.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeGuard, TypeVar

from sparkplane.backends.base import Handle, Observation
from sparkplane.db.repositories.tracking import LiveRow
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.states import Observed
from sparkplane.services.context import Context

log = logging.getLogger(__name__)


class _Row(Protocol):
    id: int
    backend: str
    handle: dict | None  # type: ignore[type-arg]


Row = TypeVar("Row", bound=_Row)
Observe = Callable[[], Observation | None]
FollowUp = Callable[[], None]


@dataclass(frozen=True)
class Seen:
    row: LiveRow
    observation: Observation | None


class Tracking(Protocol[Row]):
    """What `sweep` needs of one kind of row (sessions, batches)."""

    entity: str

    def page(self, uow: UnitOfWork, after_id: int, limit: int) -> list[LiveRow]: ...

    def observe(self, backend: str, handle: Handle) -> Observation | None: ...

    def quiet(self, uow: UnitOfWork, seen: Sequence[Seen]) -> set[int]:
        """The ids among `seen` that need nothing but a `last_observed_at` stamp."""
        ...

    def mark_observed(self, uow: UnitOfWork, ids: Sequence[int], now: dt.datetime) -> None: ...

    def lock(self, uow: UnitOfWork, ids: Sequence[int]) -> Sequence[Row]: ...

    def settle(self, uow: UnitOfWork, row: Row, observe: Observe, now: dt.datetime) -> FollowUp | None:
        """Move the locked row to match what `observe()` says; what to do once the transaction commits."""
        ...

    def reconcile(self, row_id: int) -> None:
        """The same for one row, in a transaction of its own."""
        ...


@dataclass
class Sweep(Generic[Row]):
    ctx: Context
    tracking: Tracking[Row]

    def run(self) -> int:
        """Observe every live row once; returns how many were seen."""
        seen_total = 0
        for page in pages(self.ctx, self.tracking.page):
            seen_total += len(page)
            self._settle_page(self._observe(page))
        return seen_total

    def _observe(self, page: Sequence[LiveRow]) -> list[Seen]:
        seen: list[Seen] = []
        for row in page:
            if row.handle is None:
                seen.append(Seen(row, None))
                continue
            try:
                seen.append(Seen(row, self.tracking.observe(row.backend, Handle.from_json(row.handle))))
            except Exception:  # an unreachable backend: this row waits for the next pass, the others go on
                log.exception("%s %s: observing it failed; will retry", self.tracking.entity, row.id)
        return seen

    def _settle_page(self, seen: list[Seen]) -> None:
        now = self.ctx.clock.now()
        # A quiet row is re-stamped only when its stamp gets old: a pass over 10,000 idle rows then writes
        # nothing. The stamp is what "lost" is measured from (zombie_after_seconds), so it is kept within a
        # quarter of that: a run the backend forgets is declared lost after 3/4 to 4/4 of the wait.
        stale = dt.timedelta(seconds=self.ctx.settings.zombie_after_seconds / 4)
        with self.ctx.db.uow() as uow:
            quiet = self.tracking.quiet(uow, seen)
            restamp = [
                s.row.id
                for s in seen
                if s.row.id in quiet and (s.row.last_observed_at is None or now - s.row.last_observed_at >= stale)
            ]
            self.tracking.mark_observed(uow, restamp, now)
        moving = {s.row.id: s for s in seen if s.row.id not in quiet}
        if not moving:
            return
        follow_ups: list[FollowUp] = []
        try:
            with self.ctx.db.uow() as uow:
                for row in self.tracking.lock(uow, sorted(moving)):
                    follow_up = self.tracking.settle(uow, row, _observer(self.tracking, moving[row.id], row), now)
                    if follow_up is not None:
                        follow_ups.append(follow_up)
        except Exception:
            log.exception("%s watcher: settling a page failed; settling its rows one by one", self.tracking.entity)
            follow_ups = []
            for row_id in sorted(moving):
                try:
                    self.tracking.reconcile(row_id)
                except Exception:  # one bad row never stops the loop; it is retried next pass
                    log.exception("%s %s: reconcile failed; will retry", self.tracking.entity, row_id)
        for follow_up in follow_ups:
            try:
                follow_up()
            except Exception:
                log.exception("%s watcher: follow-up work failed; will retry", self.tracking.entity)


def pages(ctx: Context, read: Callable[[UnitOfWork, int, int], list[LiveRow]]) -> Iterator[list[LiveRow]]:
    """Every live row, a page of `reconcile_batch_size` at a time, each page read in a short transaction of its
    own (nothing is held while the caller works on it)."""
    after, size = 0, max(1, ctx.settings.reconcile_batch_size)
    while True:
        with ctx.db.uow() as uow:
            page = read(uow, after, size)
        if not page:
            return
        yield page
        after = page[-1].id


def _observer(tracking: Tracking[Row], seen: Seen, locked: Row) -> Observe:
    """The observation made before the lock, if the locked row still has the handle it was made with (a
    worker may have launched the row meanwhile); otherwise a fresh look."""
    if locked.handle is not None and locked.handle == seen.row.handle:
        observation = seen.observation
        return lambda: observation
    if locked.handle is None:
        return lambda: None
    handle, backend = Handle.from_json(locked.handle), locked.backend
    return lambda: tracking.observe(backend, handle)


def unchanged(obs: Observation | None, row: LiveRow) -> TypeGuard[Observation]:
    """True when observing `row` gave nothing to write but the time of the look (an unknown native state is
    not quiet: settling it logs the warning)."""
    return (
        obs is not None
        and row.handle is not None
        and obs.state != Observed.UNKNOWN
        and obs.native_state == row.native_state
        and (not obs.spark_app_id or obs.spark_app_id == row.app_id)
        and (not obs.ui_url or obs.ui_url == row.ui_url)
    )
