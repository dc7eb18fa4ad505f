"""`sparkplane watch interactive`: reconciles sessions and clusters with what their backends report.

Sessions and clusters arrive with later capabilities; until then the pass only checks the database is
reachable, so the role runs, is supervised and can be deployed like the others.
"""

from __future__ import annotations

from sparkplane.services import health
from sparkplane.services.context import Context
from sparkplane.watchers.loop import Loop


def interactive_watcher(ctx: Context) -> Loop:
    def tick() -> None:
        problem = health.database_ok(ctx)
        if problem is not None:
            raise RuntimeError(problem)

    return Loop("interactive", tick, ctx.settings.reconcile_interval_seconds)
