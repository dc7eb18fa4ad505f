"""The fake backend that real processes use (`SPARKPLANE_BACKEND=fake`): its state moves with time and lives
in small files, so the API, the worker and the watchers, each in its own process, see the same runs.

The in-memory fakes of `fake.py` are for tests that script every step inside one process; a load run or a
scale run starts every role as its own process, where an in-memory run launched by the worker would be
unknown to the watcher (and declared lost). Here the launch time travels in the handle, so observing a run
reads no file at all: a run is QUEUED, then RUNNING, then SUCCEEDED as time passes. Only what a person does
to it (a cancel, a statement) is written down, one small file each, under `<root>/<key>/`.

Never written here: the spec's secret configuration (the data credentials), which a real backend would hand
to Spark and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import ClassVar

from sparkplane.backends.base import (
    BackendError,
    Capability,
    Handle,
    Observation,
    StatementObservation,
    TransientBackendError,
)
from sparkplane.backends.fake import fake_connect_url
from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import Observed, StatementState

# Short enough that a load run's create -> poll -> delete loop sees every phase within a second or two.
QUEUED_SECONDS = 0.2
RUNNING_SECONDS = 1.0
STATEMENT_SECONDS = 0.1
_STARTED = "started"
_STOPPED = "stopped"


class _Runs:
    """One folder per run key: `started` (the launch time, written once), `stopped` (a cancel)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)

    def start(self, key: str, description: str) -> float:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        started = folder / _STARTED
        try:  # a retried launch (same key) finds the first one: exactly once, as a real backend promises
            with open(started, "x") as out:
                json.dump({"at": time.time(), "what": description}, out)
        except FileExistsError:
            pass
        return float(json.loads(started.read_text())["at"])

    def started_at(self, handle: Handle) -> float | None:
        if "started" in handle.extra:
            return float(handle.extra["started"])
        try:
            return float(json.loads((self.root / handle.external_id / _STARTED).read_text())["at"])
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return (self.root / key / _STARTED).exists()

    def stop(self, key: str) -> None:
        if self.exists(key):
            _write_once(self.root / key / _STOPPED, str(time.time()))

    def stopped_at(self, key: str) -> float | None:
        # Plain strings, not Path objects: a scale run's watcher pass asks this of 10,000 runs.
        try:
            with open(os.path.join(self._root, key, _STOPPED)) as stopped:
                return float(stopped.read())
        except FileNotFoundError:
            return None

    def live_keys(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if (p / _STARTED).exists() and not (p / _STOPPED).exists()}


def _seconds(spec: BatchSpec) -> float:
    try:
        return max(0.0, float(spec.args[0])) if spec.args else RUNNING_SECONDS
    except ValueError:
        return RUNNING_SECONDS


def _write_once(path: Path, text: str) -> None:
    try:
        with open(path, "x") as out:
            out.write(text)
    except FileExistsError:
        pass


class SharedFakeBackend:
    """Batches: QUEUED for QUEUED_SECONDS, RUNNING for RUNNING_SECONDS (or for as many seconds as the batch's
    first argument says, like `pi.py 2`'s), then SUCCEEDED; a cancel before the end makes it CANCELLED."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capability] = Capability.BATCH | Capability.LOGS

    def __init__(self, root: Path) -> None:
        self._runs = _Runs(root)

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        started = self._runs.start(idempotency_key, spec.file)
        return Handle(self.name, idempotency_key, {"started": repr(started), "seconds": repr(_seconds(spec))})

    def _phase(self, handle: Handle) -> Observed | None:
        started = self._runs.started_at(handle)
        if started is None:
            return None
        stopped = self._runs.stopped_at(handle.external_id)
        end = started + QUEUED_SECONDS + float(handle.extra.get("seconds", RUNNING_SECONDS))
        if stopped is not None and stopped < end:
            return Observed.CANCELLED
        now = time.time()
        if now < started + QUEUED_SECONDS:
            return Observed.QUEUED
        return Observed.RUNNING if now < end else Observed.SUCCEEDED

    def observe(self, handle: Handle) -> Observation | None:
        state = self._phase(handle)
        if state is None:
            return None
        return Observation(state, state.value, spark_app_id=f"fake-{handle.external_id[:8]}")

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        self._runs.stop(handle.external_id)  # not found == done

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        if not self._runs.exists(handle.external_id):
            return None
        return f"fake run {handle.external_id}\n"

    def active_external_ids(self) -> set[str]:
        return {key for key in self._runs.live_keys() if self._phase(Handle(self.name, key)) is not Observed.SUCCEEDED}

    def close(self) -> None:
        pass


class SharedFakeSessionBackend:
    """Sessions: STARTING for QUEUED_SECONDS, then IDLE until stopped; a statement is RUNNING for
    STATEMENT_SECONDS after it was handed over, then AVAILABLE with `text/plain` "fake: <code>"."""

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capability] = Capability.SESSION | Capability.STATEMENTS | Capability.LOGS

    def __init__(self, root: Path) -> None:
        self._runs = _Runs(root)

    def start_session(self, spec: SessionSpec, *, idempotency_key: str) -> Handle:
        started = self._runs.start(idempotency_key, spec.kind)
        return Handle(self.name, idempotency_key, {"started": repr(started)})

    def observe(self, handle: Handle) -> Observation | None:
        started = self._runs.started_at(handle)
        if started is None:
            return None
        if self._runs.stopped_at(handle.external_id) is not None:
            state = Observed.CANCELLED
        else:
            state = Observed.STARTING if time.time() - started < QUEUED_SECONDS else Observed.IDLE
        connect = self.connect_url(handle) if state is Observed.IDLE else None
        return Observation(
            state, state.value.lower(), spark_app_id=f"fake-{handle.external_id[:8]}", connect_url=connect
        )

    def connect_url(self, session: Handle) -> str | None:
        return fake_connect_url(session.external_id)

    def _statement_file(self, session: Handle, statement_id: int) -> Path:
        if self._runs.stopped_at(session.external_id) is not None or not self._runs.exists(session.external_id):
            raise TransientBackendError("the agent is gone")
        return self._runs.root / session.external_id / f"statement-{statement_id}.json"

    def submit_statement(
        self, session: Handle, statement_id: int, code: str, kind: str, *, wait: float = 0.0
    ) -> StatementObservation | None:
        path = self._statement_file(session, statement_id)
        _write_once(path, json.dumps({"code": code, "kind": kind, "at": time.time()}))
        return None  # seen at the next read, as a real agent's quick answer would not be relied on

    def observe_statement(
        self, session: Handle, statement_id: int, *, wait: float = 0.0
    ) -> StatementObservation | None:
        path = self._statement_file(session, statement_id)
        try:
            statement = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        started_ms = int(statement["at"] * 1000)
        if path.with_suffix(".cancelled").exists():
            return StatementObservation(StatementState.CANCELLED, None, 0.0, started_ms, started_ms)
        if time.time() - statement["at"] < STATEMENT_SECONDS:
            return StatementObservation(StatementState.RUNNING, None, 0.0, started_ms, 0)
        output = {"status": "ok", "execution_count": statement_id, "data": {"text/plain": f"fake: {statement['code']}"}}
        completed_ms = started_ms + int(STATEMENT_SECONDS * 1000)
        return StatementObservation(StatementState.AVAILABLE, output, 1.0, started_ms, completed_ms)

    def cancel_statement(self, session: Handle, statement_id: int) -> None:
        path = self._statement_file(session, statement_id)
        if path.exists():
            _write_once(path.with_suffix(".cancelled"), str(time.time()))

    def completion(self, session: Handle, code: str, kind: str, cursor: int) -> list[str]:
        self._statement_file(session, 0)  # raises when the agent is gone
        return [f"{code[:cursor]}_fake"]

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        raise BackendError("the fake session backend runs no batches")

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        self._runs.stop(handle.external_id)

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        return "fake agent started\n" if self._runs.exists(handle.external_id) else None

    def active_external_ids(self) -> set[str]:
        return self._runs.live_keys()

    def close(self) -> None:
        pass
