"""An in-memory, scriptable backend for tests and load runs (the idea of httpx's MockTransport).

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

from sparkplane.backends.base import BackendError, Capability, Handle, Observation
from sparkplane.domain.specs import BatchSpec
from sparkplane.domain.states import Observed


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
