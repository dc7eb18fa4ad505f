"""In-memory, scriptable backends for tests and load runs (the idea of httpx's MockTransport).

Runs start QUEUED; tests move them with `set_state`, or pass `auto_advance` to walk every run through
RUNNING to SUCCEEDED on successive observations. `fail_next` scripts errors; `submissions` counts launches
per key so tests can assert exactly-once.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from sparkplane.backends.base import (
    BackendError,
    Capability,
    Handle,
    Observation,
    StatementObservation,
    TransientBackendError,
)
from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import Observed, StatementState


def fake_connect_url(key: str) -> str:
    # Not a secret worth the name: a fake agent serves no Spark Connect, so nothing checks this token.
    return f"sc://localhost:15002/;token=fake-{key}"


@dataclass
class FakeRun:
    key: str
    spec: BatchSpec
    state: Observed = Observed.QUEUED
    native_state: str = "QUEUED"
    log: list[str] = field(default_factory=list)
    cancelled: bool = False


class FakeBackend:
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capability] = Capability.BATCH | Capability.LOGS

    def __init__(self, *, auto_advance: bool = False) -> None:
        self.auto_advance = auto_advance
        self.runs: dict[str, FakeRun] = {}
        self.submissions: Counter[str] = Counter()
        self.errors: list[BackendError] = []
        self._lock = threading.Lock()

    # --- scripting ----------------------------------------------------------------------------------
    def set_state(self, key: str, state: Observed, native: str | None = None) -> None:
        with self._lock:
            run = self.runs[key]
            run.state, run.native_state = state, native or state.value

    def forget(self, key: str) -> None:
        with self._lock:
            self.runs.pop(key, None)

    def fail_next(self, error: BackendError) -> None:
        self.errors.append(error)

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    # --- ComputeBackend ------------------------------------------------------------------------------
    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        self._maybe_fail()
        with self._lock:
            self.submissions[idempotency_key] += 1
            if idempotency_key not in self.runs:
                self.runs[idempotency_key] = FakeRun(idempotency_key, spec, log=[f"fake run of {spec.file}"])
        return Handle(self.name, idempotency_key)

    def observe(self, handle: Handle) -> Observation | None:
        self._maybe_fail()
        with self._lock:
            run = self.runs.get(handle.external_id)
            if run is None:
                return None
            if self.auto_advance and not run.cancelled:
                following = {Observed.QUEUED: Observed.RUNNING, Observed.RUNNING: Observed.SUCCEEDED}
                run.state = following.get(run.state, run.state)
                run.native_state = run.state.value
            return Observation(run.state, run.native_state, spark_app_id=f"fake-{run.key[:8]}")

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        self._maybe_fail()
        with self._lock:
            run = self.runs.get(handle.external_id)
            if run is not None and run.state not in (Observed.SUCCEEDED, Observed.FAILED):
                run.cancelled = True
                run.state, run.native_state = Observed.CANCELLED, "CANCELLED"

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        with self._lock:
            run = self.runs.get(handle.external_id)
            if run is None:
                return None
            lines = run.log if tail_lines is None else run.log[-tail_lines:]
            return "\n".join(lines) + "\n"

    def active_external_ids(self) -> set[str]:
        with self._lock:
            done = (Observed.SUCCEEDED, Observed.FAILED, Observed.CANCELLED)
            return {key for key, run in self.runs.items() if run.state not in done}

    def close(self) -> None:
        pass


@dataclass
class FakeStatement:
    number: int
    code: str
    kind: str
    state: StatementState = StatementState.WAITING
    output: dict[str, object] | None = None


@dataclass
class FakeAgent:
    key: str
    spec: SessionSpec
    state: Observed = Observed.STARTING
    statements: dict[int, FakeStatement] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    unreachable: bool = False


class FakeSessionBackend:
    """Sessions in memory. With `auto_advance`, a session is IDLE from its first observation and a statement
    finishes on its first observation with `text/plain` "fake: <code>"; tests can also script both."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capability] = Capability.SESSION | Capability.STATEMENTS | Capability.LOGS

    def __init__(self, *, auto_advance: bool = True) -> None:
        self.auto_advance = auto_advance
        self.agents: dict[str, FakeAgent] = {}
        self.starts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _agent(self, handle: Handle) -> FakeAgent:
        agent = self.agents.get(handle.external_id)
        if agent is None or agent.state in (Observed.SUCCEEDED, Observed.FAILED, Observed.CANCELLED):
            raise TransientBackendError("the agent is gone")
        if agent.unreachable:
            raise TransientBackendError("the agent does not answer")
        return agent

    def start_session(self, spec: SessionSpec, *, idempotency_key: str) -> Handle:
        with self._lock:
            self.starts[idempotency_key] += 1
            self.agents.setdefault(idempotency_key, FakeAgent(idempotency_key, spec, log=["fake agent started"]))
        return Handle(self.name, idempotency_key)

    def observe(self, handle: Handle) -> Observation | None:
        with self._lock:
            agent = self.agents.get(handle.external_id)
            if agent is None:
                return None
            if self.auto_advance and agent.state == Observed.STARTING:
                agent.state = Observed.IDLE
            connect = fake_connect_url(agent.key) if agent.state in (Observed.IDLE, Observed.BUSY) else None
            return Observation(
                agent.state, agent.state.value.lower(), spark_app_id=f"fake-{agent.key[:8]}", connect_url=connect
            )

    def connect_url(self, session: Handle) -> str | None:
        return fake_connect_url(session.external_id)

    def set_state(self, key: str, state: Observed) -> None:
        with self._lock:
            self.agents[key].state = state

    def submit_statement(
        self, session: Handle, statement_id: int, code: str, kind: str, *, wait: float = 0.0
    ) -> StatementObservation | None:
        with self._lock:
            agent = self._agent(session)
            agent.statements.setdefault(statement_id, FakeStatement(statement_id, code, kind))
        return None  # statements move only when observed, so tests see every state

    def observe_statement(
        self, session: Handle, statement_id: int, *, wait: float = 0.0
    ) -> StatementObservation | None:
        with self._lock:
            agent = self._agent(session)
            statement = agent.statements.get(statement_id)
            if statement is None:
                return None
            if self.auto_advance and statement.state == StatementState.WAITING:
                statement.state = StatementState.AVAILABLE
                statement.output = {
                    "status": "ok",
                    "execution_count": statement_id,
                    "data": {"text/plain": f"fake: {statement.code}"},
                }
            done = statement.state in (StatementState.AVAILABLE, StatementState.CANCELLED)
            return StatementObservation(
                statement.state,
                statement.output,
                1.0 if done else 0.0,
                1 if statement.state != StatementState.WAITING else 0,
                2 if done else 0,
            )

    def finish_statement(self, key: str, number: int, state: StatementState, output: dict[str, object] | None) -> None:
        with self._lock:
            statement = self.agents[key].statements[number]
            statement.state, statement.output = state, output

    def cancel_statement(self, session: Handle, statement_id: int) -> None:
        with self._lock:
            statement = self._agent(session).statements.get(statement_id)
            if statement is not None and statement.state not in (StatementState.AVAILABLE,):
                statement.state = StatementState.CANCELLED

    def completion(self, session: Handle, code: str, kind: str, cursor: int) -> list[str]:
        with self._lock:
            self._agent(session)
        return [f"{code[:cursor]}_fake"]

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        raise BackendError("the fake session backend runs no batches")

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        with self._lock:
            agent = self.agents.get(handle.external_id)
            if agent is not None and agent.state not in (Observed.SUCCEEDED, Observed.FAILED):
                agent.state = Observed.CANCELLED

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        with self._lock:
            agent = self.agents.get(handle.external_id)
            return None if agent is None else "\n".join(agent.log) + "\n"

    def active_external_ids(self) -> set[str]:
        with self._lock:
            gone = (Observed.SUCCEEDED, Observed.FAILED, Observed.CANCELLED)
            return {key for key, agent in self.agents.items() if agent.state not in gone}

    def close(self) -> None:
        pass
