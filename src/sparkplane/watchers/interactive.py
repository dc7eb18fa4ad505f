"""`sparkplane watch interactive`: reconciles sessions (and, later, clusters) with their backends.

At start it marks running sessions `recovering` (Livy's word for a control plane re-adopting them); the
first observation of each agent moves it back to idle or busy.
"""

from __future__ import annotations

from sparkplane.services import session_runs
from sparkplane.services.context import Context
from sparkplane.watchers.loop import Loop


def interactive_watcher(ctx: Context) -> Loop:
    session_runs.mark_recovering(ctx)
    return Loop("interactive", lambda: session_runs.watcher_pass(ctx), ctx.settings.reconcile_interval_seconds)
