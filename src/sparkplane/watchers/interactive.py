"""`sparkplane watch interactive`: reconciles sessions with their agents and clusters with their machines.

At start it marks running sessions `recovering` (Livy's word for a control plane re-adopting them); the
first observation of each agent moves it back to idle or busy.
"""

from __future__ import annotations

from sparkplane.services import cluster_runs, notebook_runs, session_runs
from sparkplane.services.context import Context
from sparkplane.watchers.loop import Loop


def interactive_watcher(ctx: Context) -> Loop:
    session_runs.mark_recovering(ctx)

    def tick() -> None:
        cluster_runs.watcher_pass(ctx)  # first: a cluster that just came up lets its sessions start this pass
        session_runs.watcher_pass(ctx)
        notebook_runs.watcher_pass(ctx)  # after: copies what the statements' refresh just stored

    return Loop("interactive", tick, ctx.settings.reconcile_interval_seconds)
