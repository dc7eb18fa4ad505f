"""Fault points for the fault-injection tests: a named place where a role kills itself with SIGKILL.

`SPARKPLANE_FAULTS=worker.before_launch,...` arms points; each fires once per data folder (a marker file
records it), so the role restarted after the kill runs normally. Unarmed points cost an environment lookup or two.
`SPARKPLANE_FAULTS_FILE=path` arms the names listed in that file too, read at every point: a test arms a
running role without restarting it.
A point fires in whichever process has it armed, so one point serves every role that passes it (the
relay runs in the API and in both watchers; reconciles run in the watchers and in the worker's cancel).
tests/faults/ arms them one role at a time; the points, by the phase they interrupt:

batch submit
    api.batch_created              the row and its launch task are committed; nothing published, no response
    relay.after_publish            the task is published, its outbox entry not yet deleted (goes out twice)
    worker.before_launch           the worker read the row; nothing launched
    worker.after_launch            the backend launched it; the handle is not recorded
    batch_reconcile.before_<state> a reconcile locked the row to move it to <state> (running, success, ...)
cancel (kill)
    api.kill_requested             cancel_requested_at and the cancel task are committed; nothing published
    worker.before_cancel           the cancel task read the row; the backend was not asked
    worker.after_cancel            the backend stopped the run; the row does not say so yet
session create
    api.session_created            the row and its launch task are committed; nothing published
    worker.before_session_launch   the worker read the row; no agent started
    worker.after_session_launch    the agent started; the handle is not recorded
    session_reconcile.before_<state>  a reconcile locked the row to move it to <state> (idle, dead, ...)
statement run
    api.statement_created          the statement row is committed; the agent has not got it
    statement.after_hand_over      the agent took it; the row still says not submitted (it is handed again)
    statement.before_store         the agent's answer was read; the row is not updated
cluster create
    api.cluster_created            the row and its converge task are committed; nothing published
    converge.before_launch_master  a converge pass holds the lease; the master is not launched
    converge.after_launch_master   the provider launched the master; the pass has not ended
    converge.before_running        the master lists every worker; the RUNNING transition is not written
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def point(name: str, data_dir: Path) -> None:
    if name not in _armed():
        return
    marker = data_dir / "faults" / name
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _armed() -> set[str]:
    names = set(filter(None, os.environ.get("SPARKPLANE_FAULTS", "").split(",")))
    path = os.environ.get("SPARKPLANE_FAULTS_FILE")
    if path:
        with contextlib.suppress(FileNotFoundError):
            names.update(Path(path).read_text().split())
    return names
