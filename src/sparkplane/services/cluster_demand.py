"""How many cores the applications on a cluster wait for: the autoscaler's input.

Demand counts only while no core is free: an application the master could not place at all is WAITING (it
wants at least one worker's worth), and the drivers' own UIs tell how many tasks of their active stages
wait for a core (each task takes one core, Spark's default spark.task.cpus). A WAITING application next
to free cores is one no worker of this size can hold (its executors want more memory than a worker has):
adding workers of the same size would not help it, so it is not demand.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkplane.backends.clusters import MasterStatus
from sparkplane.backends.spark_ui import pending_tasks


def waiting_cores(status: MasterStatus, driver_uis: Sequence[tuple[str, str]], *, node_cores: int) -> int:
    free = sum(max(0, w.cores - w.cores_used) for w in status.alive_workers())
    if free > 0:
        return 0
    waiting = sum(node_cores for app in status.apps if app.state == "WAITING")
    for ui_url, app_id in driver_uis:
        waiting += pending_tasks(ui_url, app_id) or 0
    return waiting
