"""State machines as data.

Names are Livy's for sessions, batches and statements (Livy clients reject anything else) and Databricks'
for clusters. Each machine is a set of states, the terminal subset and the allowed transitions; the
repositories refuse any move the table does not allow, and `next_*_state` decide moves from observations.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class BatchState(enum.StrEnum):
    NOT_STARTED = "not_started"
    STARTING = "starting"
    RUNNING = "running"
    SUCCESS = "success"
    DEAD = "dead"
    KILLED = "killed"


class SessionState(enum.StrEnum):
    NOT_STARTED = "not_started"
    STARTING = "starting"
    RECOVERING = "recovering"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"


class StatementState(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    AVAILABLE = "available"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class ClusterState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RESIZING = "RESIZING"
    RESTARTING = "RESTARTING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"


class Observed(enum.StrEnum):
    """What a backend reports, mapped from the vendor's own state by the backend's table."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    IDLE = "IDLE"
    BUSY = "BUSY"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"


class FailureReason(enum.StrEnum):
    SUBMIT_ERROR = "SUBMIT_ERROR"
    START_TIMEOUT = "START_TIMEOUT"
    MAX_RUNTIME = "MAX_RUNTIME"
    LOST = "LOST"
    BACKEND_FAILED = "BACKEND_FAILED"
    CANCEL_TIMEOUT = "CANCEL_TIMEOUT"
    USER_REQUEST = "USER_REQUEST"
    TIMEOUT = "TIMEOUT"  # idle timeout, time to live or heartbeat timeout of a session


B = BatchState
BATCH_TERMINAL: frozenset[BatchState] = frozenset({B.SUCCESS, B.DEAD, B.KILLED})
BATCH_TRANSITIONS: Mapping[BatchState, frozenset[BatchState]] = {
    B.NOT_STARTED: frozenset({B.STARTING, B.RUNNING, B.SUCCESS, B.DEAD, B.KILLED}),
    B.STARTING: frozenset({B.RUNNING, B.SUCCESS, B.DEAD, B.KILLED}),
    B.RUNNING: frozenset({B.SUCCESS, B.DEAD, B.KILLED}),
    B.SUCCESS: frozenset(),
    B.DEAD: frozenset(),
    B.KILLED: frozenset(),
}

S = SessionState
SESSION_TERMINAL: frozenset[SessionState] = frozenset({S.ERROR, S.DEAD, S.KILLED, S.SUCCESS})
_SESSION_ENDS = frozenset({S.SHUTTING_DOWN, S.ERROR, S.DEAD, S.KILLED, S.SUCCESS})
SESSION_TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    S.NOT_STARTED: frozenset({S.STARTING, S.IDLE}) | _SESSION_ENDS,
    S.STARTING: frozenset({S.IDLE, S.BUSY}) | _SESSION_ENDS,
    S.RECOVERING: frozenset({S.IDLE, S.BUSY}) | _SESSION_ENDS,
    S.IDLE: frozenset({S.BUSY, S.RECOVERING}) | _SESSION_ENDS,
    S.BUSY: frozenset({S.IDLE, S.RECOVERING}) | _SESSION_ENDS,
    S.SHUTTING_DOWN: frozenset({S.DEAD, S.KILLED, S.SUCCESS, S.ERROR}),
    S.ERROR: frozenset(),
    S.DEAD: frozenset(),
    S.KILLED: frozenset(),
    S.SUCCESS: frozenset(),
}

T = StatementState
STATEMENT_TERMINAL: frozenset[StatementState] = frozenset({T.AVAILABLE, T.CANCELLED})
STATEMENT_TRANSITIONS: Mapping[StatementState, frozenset[StatementState]] = {
    T.WAITING: frozenset({T.RUNNING, T.AVAILABLE, T.CANCELLING, T.CANCELLED}),
    T.RUNNING: frozenset({T.AVAILABLE, T.CANCELLING, T.CANCELLED}),
    T.CANCELLING: frozenset({T.CANCELLED, T.AVAILABLE}),
    T.AVAILABLE: frozenset(),
    T.CANCELLED: frozenset(),
}

C = ClusterState
CLUSTER_TERMINAL: frozenset[ClusterState] = frozenset({C.TERMINATED})
CLUSTER_TRANSITIONS: Mapping[ClusterState, frozenset[ClusterState]] = {
    C.PENDING: frozenset({C.RUNNING, C.TERMINATING, C.ERROR}),
    C.RUNNING: frozenset({C.RESIZING, C.RESTARTING, C.TERMINATING, C.ERROR}),
    C.RESIZING: frozenset({C.RUNNING, C.TERMINATING, C.ERROR}),
    C.RESTARTING: frozenset({C.RUNNING, C.TERMINATING, C.ERROR}),
    C.TERMINATING: frozenset({C.TERMINATED, C.ERROR}),
    C.ERROR: frozenset({C.TERMINATING, C.TERMINATED, C.RESTARTING}),
    C.TERMINATED: frozenset({C.PENDING}),
}

# What an observation means for a batch; a missing entry means "nothing to do".
_BATCH_TARGET: Mapping[Observed, BatchState] = {
    Observed.STARTING: B.STARTING,
    Observed.RUNNING: B.RUNNING,
    Observed.IDLE: B.RUNNING,
    Observed.BUSY: B.RUNNING,
    Observed.SUCCEEDED: B.SUCCESS,
    Observed.FAILED: B.DEAD,
    Observed.CANCELLED: B.KILLED,
}


def can_transition(transitions: Mapping[enum.StrEnum, frozenset[enum.StrEnum]], src: str, dst: str) -> bool:
    return any(dst == target for state, targets in transitions.items() if state == src for target in targets)


def next_batch_state(current: BatchState, observed: Observed) -> BatchState | None:
    """The state a batch moves to after an observation, or None to stay (unknown, queued, or not allowed)."""
    target = _BATCH_TARGET.get(observed)
    if target is None or target == current or target not in BATCH_TRANSITIONS[current]:
        return None
    return target


def next_session_state(current: SessionState, observed: Observed, *, stop_requested: bool) -> SessionState | None:
    """The state a session moves to after observing its agent, or None to stay.

    A session stopped on request ends `dead` (Livy: DELETE gives shutting_down, then dead). One whose driver
    ends on its own ends `success` with exit 0 (e.g. sys.exit() in a statement), else `error` if it never
    became idle and `dead` if it did.
    """
    ever_ready = current not in (S.NOT_STARTED, S.STARTING)
    target: SessionState | None
    if observed in (Observed.QUEUED, Observed.STARTING):
        target = S.STARTING if current == S.NOT_STARTED else None
    elif observed in (Observed.IDLE, Observed.RUNNING):
        target = S.IDLE
    elif observed == Observed.BUSY:
        target = S.BUSY
    elif stop_requested and observed in (Observed.SUCCEEDED, Observed.FAILED, Observed.CANCELLED):
        target = S.DEAD
    elif observed == Observed.SUCCEEDED:
        target = S.SUCCESS
    elif observed == Observed.CANCELLED:
        target = S.KILLED
    elif observed == Observed.FAILED:
        target = S.DEAD if ever_ready else S.ERROR
    else:
        target = None
    if target is None or target == current or target not in SESSION_TRANSITIONS[current]:
        return None
    return target
