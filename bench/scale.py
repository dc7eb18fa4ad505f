"""Scale: many live sessions and batches tracked at once by the watchers (PostgreSQL, fake backend).

    scripts/bench scale [--items 10000]

`--items` sessions and as many batches are written straight into a fresh PostgreSQL database, each with a
handle on the shared-file fake backend, live (idle sessions, running batches); and one in ten more of each
that ends meanwhile (its agent stopped, its run finished), so the first cycle also has transitions to make.
Then this process runs the watchers' passes (`session_runs.watcher_pass`, `batch_runs.watcher_pass`, what
`sparkplane watch interactive|batch` run in a loop) once: a pass observes every live row, so it is one full
cycle. The second cycle is what every later one costs.

Figures: each watcher's cycle at --items, the steady one (target <= 1 s) and the first, with the endings,
against the same cycles over 100 items measured first in the same run and scaled linearly (a ratio near 1
means the cost per item does not grow with the count); and this process's memory (it is the watcher)
against its memory before the rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.common import Figure, report
from bench.plane import fresh_database
from sparkplane.backends.base import Handle
from sparkplane.backends.fake_shared import SharedFakeSessionBackend
from sparkplane.db import migrate
from sparkplane.db.models import Batch, Session, User
from sparkplane.db.repositories.batches import ACTIVE_BATCH
from sparkplane.db.repositories.sessions import ACTIVE_SESSION
from sparkplane.domain.specs import SessionSpec
from sparkplane.services import batch_runs, session_runs
from sparkplane.services.context import Context, build_context
from sparkplane.settings import load_settings

BASELINE_ITEMS = 100
ENDING = 10  # for every ENDING live rows, one more that ends during the first sweep


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale_context(database_url: str, data_dir: Path) -> Context:
    settings = load_settings(database_url=database_url, data_dir=data_dir, backend="fake", pool_size=0)
    ctx = build_context(settings)
    migrate.upgrade(ctx.db.engine, "head")
    return ctx


def _owner(ctx: Context) -> int:
    with ctx.db.uow() as uow:
        user = uow.users.by_username("scale")
        if user is None:
            now = dt.datetime.now(dt.UTC)
            user = User(username="scale", password_hash="-", role="user", is_active=True, created_at=now)
            uow.db.add(user)
            uow.db.flush()
        return user.id


def populate(ctx: Context, count: int) -> tuple[list[int], list[int]]:
    """`count` live sessions and batches on the fake backend, and one in ENDING more of each that end meanwhile;
    returns the ids of those that end."""
    root = ctx.settings.data_dir / "fake-runs"
    sessions_fake = SharedFakeSessionBackend(root / "sessions")
    owner, now = _owner(ctx), dt.datetime.now(dt.UTC)
    long_ago = time.time() - 3600
    session_rows, batch_rows = [], []
    for n in range(count + count // ENDING):
        ending = n % (ENDING + 1) == ENDING
        sid, bid = uuid.uuid4().hex, uuid.uuid4().hex
        if ending:  # a stopped agent, a finished run: the sweep must notice both
            sessions_fake.start_session(SessionSpec(kind="pyspark"), idempotency_key=sid)
            sessions_fake.cancel(Handle("fake", sid), grace=dt.timedelta(0))
        session_handle = Handle("fake", sid, {"started": repr(long_ago)})
        batch_seconds = "0" if ending else "86400"
        batch_handle = Handle(
            "fake", bid, {"started": repr(long_ago if ending else time.time()), "seconds": batch_seconds}
        )
        session_rows.append(
            {
                "uid": sid, "owner_id": owner, "kind": "pyspark", "state": "idle", "backend": "fake",
                "request": {"kind": "pyspark"}, "handle": session_handle.to_json(), "native_state": "idle",
                "app_id": f"fake-{sid[:8]}",
                "last_activity_at": now, "submitted_at": now, "started_at": now, "last_observed_at": now,
                "heartbeat_timeout_s": 0, "next_statement": 0, "version": 0,
            }
        )  # fmt: skip
        batch_rows.append(
            {
                "uid": bid, "owner_id": owner, "state": "running", "backend": "fake",
                "request": {"file": "job.py"}, "handle": batch_handle.to_json(), "native_state": "RUNNING",
                "app_id": f"fake-{bid[:8]}",
                "submitted_at": now, "started_at": now, "last_observed_at": now, "version": 0,
            }
        )  # fmt: skip
    with ctx.db.uow() as uow:
        session_ids = list(uow.db.scalars(sa.insert(Session).returning(Session.id), session_rows))
        batch_ids = list(uow.db.scalars(sa.insert(Batch).returning(Batch.id), batch_rows))
    return session_ids[ENDING :: ENDING + 1], batch_ids[ENDING :: ENDING + 1]


@dataclass
class Sweep:
    seconds: float
    seen: int
    live: int


def sweep(ctx: Context, model: type[Session] | type[Batch], one_pass: Callable[[Context], int]) -> Sweep:
    """One watcher pass, which observes every row live at its start: one full cycle."""
    active = ACTIVE_SESSION if model is Session else ACTIVE_BATCH
    with ctx.db.uow() as uow:
        live = int(uow.db.scalar(sa.select(sa.func.count()).where(model.state.in_(active))) or 0)
    started = time.perf_counter()
    seen = one_pass(ctx)
    seconds = time.perf_counter() - started
    if seen < live:
        raise RuntimeError(f"a {model.__tablename__} pass saw {seen} of the {live} live rows: not a full cycle")
    return Sweep(seconds, seen, live)


def age_stamps(ctx: Context) -> None:
    """Make every live row's `last_observed_at` old, as it is once a quarter of zombie_after_seconds passed."""
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with ctx.db.uow() as uow:
        for model in (Session, Batch):
            uow.db.execute(sa.update(model).values(last_observed_at=old))


def states(ctx: Context, model: type[Session] | type[Batch], ids: list[int]) -> dict[str, int]:
    with ctx.db.uow() as uow:
        rows = uow.db.execute(sa.select(model.state, sa.func.count()).where(model.id.in_(ids)).group_by(model.state))
        return {str(state): int(n) for state, n in rows}


@dataclass
class ScaleResult:
    items: int
    sessions: Sweep
    batches: Sweep
    base_sessions: Sweep
    base_batches: Sweep
    steady_sessions: Sweep
    steady_batches: Sweep
    restamp_sessions: Sweep
    restamp_batches: Sweep
    base_steady_sessions: Sweep
    base_steady_batches: Sweep
    rss_before: float
    rss_after: float
    peak_rss: float
    session_states: dict[str, int]
    batch_states: dict[str, int]
    ended_sessions: dict[str, int]
    ended_batches: dict[str, int]

    def figures(self) -> list[Figure]:
        linear = self.items / BASELINE_ITEMS
        ending = self.items // ENDING
        baseline = f"{BASELINE_ITEMS}-item sweep x {linear:.0f}"
        figures = []
        for kind, first, steady, restamp, base_first, base_steady in (
            (
                "session",
                self.sessions,
                self.steady_sessions,
                self.restamp_sessions,
                self.base_sessions,
                self.base_steady_sessions,
            ),
            (
                "batch",
                self.batches,
                self.steady_batches,
                self.restamp_batches,
                self.base_batches,
                self.base_steady_batches,
            ),
        ):
            figures.append(
                Figure(
                    f"{kind} watcher cycle, {self.items} live",
                    steady.seconds,
                    "s",
                    baseline,
                    base_steady.seconds * linear,
                    "<= 1 s",
                )
            )
            figures.append(
                Figure(
                    f"{kind} watcher cycle, {self.items} live + {ending} ending",
                    first.seconds,
                    "s",
                    baseline,
                    base_first.seconds * linear,
                )
            )
            figures.append(
                Figure(
                    f"{kind} watcher cycle, {self.items} live, re-stamping each (every 30 s)",
                    restamp.seconds,
                    "s",
                    "the steady cycle",
                    steady.seconds,
                )
            )
        figures.append(
            Figure(
                f"watcher process RSS, {2 * self.items} tracked",
                self.rss_after,
                "MiB",
                "same process before the rows",
                self.rss_before,
                "<= 300 MiB",
            )
        )
        return figures


def run_scale(database_url: str, data_dir: Path, items: int) -> ScaleResult:
    ctx = scale_context(database_url, data_dir)
    try:
        rss_before = rss_mib()
        populate(ctx, BASELINE_ITEMS)
        base_sessions = sweep(ctx, Session, session_runs.watcher_pass)
        base_batches = sweep(ctx, Batch, batch_runs.watcher_pass)
        base_steady_sessions = sweep(ctx, Session, session_runs.watcher_pass)
        base_steady_batches = sweep(ctx, Batch, batch_runs.watcher_pass)
        ended_sessions, ended_batches = populate(ctx, items)
        swept_sessions = sweep(ctx, Session, session_runs.watcher_pass)
        swept_batches = sweep(ctx, Batch, batch_runs.watcher_pass)
        steady_sessions = sweep(ctx, Session, session_runs.watcher_pass)  # what every later cycle costs
        steady_batches = sweep(ctx, Batch, batch_runs.watcher_pass)
        age_stamps(ctx)  # as every zombie_after_seconds / 4: each quiet row's stamp is renewed
        restamp_sessions = sweep(ctx, Session, session_runs.watcher_pass)
        restamp_batches = sweep(ctx, Batch, batch_runs.watcher_pass)
        with ctx.db.uow() as uow:
            all_sessions = list(uow.db.scalars(sa.select(Session.id)))
            all_batches = list(uow.db.scalars(sa.select(Batch.id)))
        return ScaleResult(
            items,
            swept_sessions,
            swept_batches,
            base_sessions,
            base_batches,
            steady_sessions,
            steady_batches,
            restamp_sessions,
            restamp_batches,
            base_steady_sessions,
            base_steady_batches,
            rss_before,
            rss_mib(),
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            states(ctx, Session, all_sessions),
            states(ctx, Batch, all_batches),
            states(ctx, Session, ended_sessions),
            states(ctx, Batch, ended_batches),
        )
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000, help="live sessions, and as many batches")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as database_url:
        result = run_scale(database_url, Path(tmp), args.items)
    print(f"sessions by state: {result.session_states}; batches by state: {result.batch_states}")
    print(f"sweeps: sessions {result.sessions}, batches {result.batches}; peak RSS {result.peak_rss:.0f} MiB")
    figures = result.figures()
    report(f"Scale: {args.items} sessions + {args.items} batches tracked, PostgreSQL, fake backend", figures, "scale")
    return figures


if __name__ == "__main__":
    main()
