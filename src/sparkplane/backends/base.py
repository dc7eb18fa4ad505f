"""The one interface between the control plane and a data plane.

Backends only report what they see (an `Observation` in our `Observed` vocabulary, with the vendor's own
string kept beside it); deciding what that means for a row is the domain's job (`next_batch_state`).
They are synchronous because Celery tasks and the vendor SDKs are. They never touch the database.

Errors follow kopf's taxonomy: `TransientBackendError` (retry later, no state change),
`PermanentBackendError` (the run cannot happen: it fails with the message), `UnsupportedOperation`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import Observed, StatementState


class Capability(enum.Flag):
    BATCH = enum.auto()
    SESSION = enum.auto()
    STATEMENTS = enum.auto()
    LOGS = enum.auto()


@dataclass(frozen=True, slots=True)
class Handle:
    """Where a run lives on its backend; persisted on the row as JSON."""

    backend: str
    external_id: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "external_id": self.external_id, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Handle:
        return cls(str(data["backend"]), str(data["external_id"]), dict(data.get("extra") or {}))


@dataclass(frozen=True, slots=True)
class Observation:
    state: Observed
    native_state: str
    message: str | None = None
    spark_app_id: str | None = None
    ui_url: str | None = None
    exit_code: int | None = None
    connect_url: str | None = None  # sessions: sc://host:port/;token=..., for the session's owner only


@dataclass(frozen=True, slots=True)
class StatementObservation:
    """One statement as the session's agent reports it, in Livy's vocabulary."""

    state: StatementState
    output: Mapping[str, Any] | None = None  # Livy's output object: status, execution_count, data | ename...
    progress: float = 0.0
    started_ms: int = 0  # epoch milliseconds, 0 when not started (Livy's convention)
    completed_ms: int = 0


class BackendError(Exception):
    pass


class TransientBackendError(BackendError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentBackendError(BackendError):
    pass


class UnsupportedOperation(BackendError):
    pass


class ComputeBackend(Protocol):
    name: ClassVar[str]
    capabilities: ClassVar[Capability]

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        """Start the batch, or return the handle of the one already started under this key."""
        ...

    def observe(self, handle: Handle) -> Observation | None:
        """The run's state now; None when the backend has no record of it."""
        ...

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        """Stop the run; idempotent: a run that is gone or finished counts as cancelled."""
        ...

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        """The driver's log so far (the last `tail_lines` lines, or all), or None when there is none."""
        ...

    def active_external_ids(self) -> set[str]:
        """Every run this backend still has alive, for cleanup to find orphans."""
        ...

    def close(self) -> None: ...


class SessionBackend(ComputeBackend, Protocol):
    """A backend with Capability.SESSION | STATEMENTS: interactive sessions run by sparkplane's agent.

    `observe(handle)` on a session reports STARTING until the agent is ready, then IDLE or BUSY, and
    FAILED/SUCCEEDED/CANCELLED when it is gone; `Observation.connect_url` carries its Spark Connect URL.
    """

    def start_session(self, spec: SessionSpec, *, idempotency_key: str) -> Handle:
        """Start (or take from the warm pool) an agent for this session; idempotent on the key."""
        ...

    def submit_statement(
        self, session: Handle, statement_id: int, code: str, kind: str, *, wait: float = 0.0
    ) -> StatementObservation | None:
        """Queue a statement on the agent; idempotent on statement_id. Transient when unreachable.

        With `wait`, the agent may hold its answer that many seconds for the statement to finish; the
        statement as then seen is returned (None: nothing seen yet, poll with observe_statement)."""
        ...

    def observe_statement(
        self, session: Handle, statement_id: int, *, wait: float = 0.0
    ) -> StatementObservation | None:
        """The statement now; None when the agent has no such statement. With `wait`, the agent may hold its
        answer that many seconds for an unfinished statement to end (a long poll)."""
        ...

    def connect_url(self, session: Handle) -> str | None:
        """The session's Spark Connect URL from what the backend already knows (no call to the agent): the
        owner's GET asks for it on every poll. None while the agent has not told where it listens."""
        ...

    def cancel_statement(self, session: Handle, statement_id: int) -> None: ...

    def completion(self, session: Handle, code: str, kind: str, cursor: int) -> list[str]: ...
