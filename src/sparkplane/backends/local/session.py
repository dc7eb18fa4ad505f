"""`LocalSessionBackend`: interactive sessions as sparkplane agents on this machine, with a warm pool.

A session is `python -m sparkplane.agent` (the driver: classic PySpark plus Spark Connect, an HTTP API for
statements) owned by the same detached supervisor as a batch, in run_root/<key>/, launched exactly once under
the same key lock (batch.py explains the protocol). The batch backend's machinery is reused through an inner
`LocalBackend`: it observes the process, cancels it and reads its log; this class adds what the agent knows.

Where a session's agent comes from:
- a poolable spec (nothing that must be set before the driver starts) takes a ready agent from the warm pool:
  run_root/<key> becomes a link to the pooled agent's folder (pool.py);
- anything else, or an empty pool, starts a cold agent with the spec's resources as Spark confs. A spec with
  secret confs (the user's credentials) is never poolable: they reach the driver before it starts, through a
  0600 properties file (secret_files.py), and never through /claim or a command line.

The pool fills only when `refill_pool()` is called: the watcher calls it every pass, so there is no hidden
thread, and a process that never refills keeps no agents (each pooled agent stops itself once nobody has
touched it for `orphan_after` seconds).

Use a run_root of its own (not the batch backend's): both report every live folder under it as theirs.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from sparkplane.backends.base import (
    BackendError,
    Capability,
    Handle,
    Observation,
    PermanentBackendError,
    StatementObservation,
    TransientBackendError,
)
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.agent_client import READ_SECONDS, AgentClient, message_of
from sparkplane.backends.local.agent_command import AGENT_JSON, agent_argv, session_confs, write_secrets
from sparkplane.backends.local.batch import LocalBackend
from sparkplane.backends.local.pool import POOL_DIR, PoolStatus, WarmPool, is_alive
from sparkplane.backends.local.secret_files import write_secret_conf
from sparkplane.domain.specs import BatchSpec, SessionSpec
from sparkplane.domain.states import Observed, StatementState

logger = logging.getLogger(__name__)

_STATE_MAP: Mapping[str, Observed] = {
    "starting": Observed.STARTING,  # the process runs, agent.json is not written yet (Spark is starting)
    "idle": Observed.IDLE,
    "busy": Observed.BUSY,
    # The agent is ending (POST /shutdown, a statement's SystemExit, no contact): wait for the process to go.
    "stopping": Observed.UNKNOWN,
    # The process lives but /health failed just now (a loaded machine): the watcher waits, it does not decide.
    "unresponsive": Observed.UNKNOWN,
    "succeeded": Observed.SUCCEEDED,  # exit 0: shut down, sys.exit() in a statement, or stopped as an orphan
    "failed": Observed.FAILED,
    "cancelled": Observed.CANCELLED,
    "lost": Observed.FAILED,  # the supervisor died and took the agent with it: nobody recorded an exit
}
_PROCESS_ENDS = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled", "SUPERVISOR_LOST": "lost"}
# Same rule as batch.py: a key names a folder and its lock file.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ERROR_LINE = re.compile(r"(?:Error|Exception)\b|\bERROR\b|Traceback")
# POST /shutdown then waits this long at most for the agent to stop Spark and exit by itself.
_SHUTDOWN_SECONDS = 30.0
POOL_NAME = "sparkplane-pool"


def map_state(native_state: str) -> Observed:
    """Our vocabulary for a local session's state; an unknown string is UNKNOWN (logged), never an exception."""
    observed = _STATE_MAP.get(native_state)
    if observed is None:
        logger.warning("unknown local session state %r; reporting it as UNKNOWN", native_state)
        return Observed.UNKNOWN
    return observed


class LocalSessionBackend:
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capability] = Capability.SESSION | Capability.STATEMENTS | Capability.LOGS

    def __init__(
        self,
        run_root: Path,
        *,
        spark_home: Path,
        master: str = "local[*]",
        python: str = sys.executable,
        pool_size: int = 0,
        orphan_after: float = 600.0,
        transport: httpx.BaseTransport | None = None,  # tests pass an httpx.MockTransport
    ) -> None:
        self._runs = LocalBackend(run_root, spark_home=spark_home, master=master, python=python)
        self._run_root = self._runs.run_root
        self._master = master
        self._python = python
        self._orphan_after = orphan_after
        self._client = AgentClient(transport)
        self._pool = WarmPool(
            self._run_root, size=pool_size, client=self._client, launch=self._launch_pooled, stop=self._stop_dir
        )

    @property
    def run_root(self) -> Path:
        return self._run_root

    # -- start ---------------------------------------------------------------------------------------------

    def start_session(self, spec: SessionSpec, *, idempotency_key: str) -> Handle:
        key = idempotency_key
        if not _KEY.match(key) or key.endswith(".lock"):
            raise PermanentBackendError(f"idempotency key '{key}' cannot name a run folder")
        run_dir = self._run_root / key
        self._run_root.mkdir(parents=True, exist_ok=True)
        with self._runs._key_lock(key):
            if run_dir.is_symlink():
                return self._handle(key, pooled=True)
            if sup.launched(run_dir):
                logger.info("session %s was started before; not starting it again", key)
                return self._handle(key, pooled=False)
            # A folder left by a launch that failed before its supervisor started is relaunched cold in place.
            poolable = spec.poolable() and self._pool.size > 0 and not run_dir.exists()
            if poolable and self._pool.claim(key, spec.conf, run_dir):
                return self._handle(key, pooled=True)
            argv = agent_argv(
                python=self._python,
                run_dir=run_dir,
                master=spec.master or self._master,
                name=spec.name or key,
                orphan_after=self._orphan_after,
                conf=session_confs(spec),
                claimed_by=key,
                driver_cores=spec.resources.driver_cores,
                secret_conf_file=run_dir / sup.SECRET_CONF if spec.secret_conf else None,
            )
            self._launch(run_dir, argv, spec.secret_conf)
            logger.info("session %s started cold", key)
        return self._handle(key, pooled=False)

    def _handle(self, key: str, *, pooled: bool) -> Handle:
        return Handle(self.name, key, {"run_dir": str(self._run_root / key), "pooled": str(pooled).lower()})

    def _launch(self, run_dir: Path, argv: list[str], secret_conf: Mapping[str, str] | None = None) -> None:
        (run_dir / sup.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
        write_secrets(run_dir)
        write_secret_conf(run_dir, secret_conf or {})
        self._runs._start(run_dir, argv)

    def _launch_pooled(self, run_dir: Path) -> None:
        argv = agent_argv(
            python=self._python,
            run_dir=run_dir,
            master=self._master,
            name=POOL_NAME,
            orphan_after=self._orphan_after,
            conf={},
            claimed_by=None,
        )
        self._launch(run_dir, argv)

    # -- observe -------------------------------------------------------------------------------------------

    def observe(self, handle: Handle) -> Observation | None:
        run_dir = self._run_dir(handle)
        if run_dir is None or not run_dir.is_dir():
            return None
        process_handle = self._process_handle(handle, run_dir)
        process = self._runs.observe(process_handle)
        if process is None:
            return None
        address = self._client.address(run_dir)
        app_id = address.spark_app_id if address else process.spark_app_id
        ended = _PROCESS_ENDS.get(process.native_state)
        if ended is not None:
            if ended != "cancelled" and (run_dir / sup.CANCEL_REQUESTED).exists():
                ended = "cancelled"  # it obeyed our POST /shutdown before the supervisor had to signal it
            log = self._runs.fetch_logs(process_handle, tail_lines=200)
            return Observation(
                map_state(ended), ended, _end_message(ended, process.exit_code, log), app_id, None, process.exit_code
            )
        if address is None:
            return Observation(map_state("starting"), "starting", None, app_id)
        message: str | None = None
        try:
            native = str(self._client.call(run_dir, "GET", "/health").json().get("state"))
        except (BackendError, ValueError) as exc:
            native = "unresponsive"
            message = f"the session agent did not answer its health check: {exc}"
        return Observation(
            state=map_state(native),
            native_state=native,
            message=message,
            spark_app_id=app_id,
            ui_url=address.ui_url,
            connect_url=address.connect_url,
        )

    def connect_url(self, session: Handle) -> str | None:
        run_dir = self._run_dir(session)
        address = self._client.address(run_dir) if run_dir is not None else None
        return address.connect_url if address else None

    # -- statements ----------------------------------------------------------------------------------------

    def submit_statement(
        self, session: Handle, statement_id: int, code: str, kind: str, *, wait: float = 0.0
    ) -> StatementObservation | None:
        body = {"id": statement_id, "code": code, "kind": kind, "wait": wait}
        response = self._client.call(self._live_dir(session), "POST", "/statements", body, timeout=READ_SECONDS + wait)
        if response.status_code not in (200, 201):
            raise PermanentBackendError(f"the session refused statement {statement_id}: {message_of(response)}")
        data = response.json()
        if data.get("state") == "evicted":  # submitted long ago and forgotten by the agent: nothing to add
            return None
        return _statement_of(data)

    def observe_statement(
        self, session: Handle, statement_id: int, *, wait: float = 0.0
    ) -> StatementObservation | None:
        path = f"/statements/{statement_id}" + (f"?wait={wait}" if wait else "")
        response = self._client.call(self._live_dir(session), "GET", path, timeout=READ_SECONDS + wait)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TransientBackendError(f"statement {statement_id}: {message_of(response)}")
        return _statement_of(response.json())

    def cancel_statement(self, session: Handle, statement_id: int) -> None:
        self._client.call(self._live_dir(session), "POST", f"/statements/{statement_id}/cancel")  # 404: done

    def completion(self, session: Handle, code: str, kind: str, cursor: int) -> list[str]:
        body = {"code": code, "kind": kind, "cursor": cursor}
        response = self._client.call(self._live_dir(session), "POST", "/completion", body)
        if response.status_code != 200:
            raise PermanentBackendError(f"completion failed: {message_of(response)}")
        return [str(candidate) for candidate in response.json().get("candidates", [])]

    # -- cancel, logs, housekeeping ------------------------------------------------------------------------

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        run_dir = self._run_dir(handle)
        if run_dir is None or not run_dir.is_dir() or (run_dir / sup.EXIT_FILE).exists():
            return
        self._stop_dir(run_dir, grace=grace)

    def _stop_dir(self, run_dir: Path, *, grace: dt.timedelta = dt.timedelta(0)) -> None:
        """Ask the agent to stop Spark and exit; then the supervisor's cancel makes sure nothing is left."""
        seconds = max(0.0, grace.total_seconds())
        # Written first: observe then reports the end as cancelled, and an unstarted run never starts.
        sup.write_atomic(run_dir / sup.CANCEL_REQUESTED, str(seconds))
        if seconds > 0 and self._client.address(run_dir) is not None and is_alive(run_dir):
            try:
                self._client.call(run_dir, "POST", "/shutdown")
            except BackendError as exc:
                logger.info("the agent in %s did not take the shutdown request: %s", run_dir, exc)
            else:
                sup.wait_until(lambda: not is_alive(run_dir), min(seconds, _SHUTDOWN_SECONDS))
        self._runs.cancel(self._process_handle(Handle(self.name, run_dir.name), run_dir), grace=grace)
        self._client.forget(run_dir)

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        run_dir = self._run_dir(handle)
        if run_dir is None:
            return None
        return self._runs.fetch_logs(self._process_handle(handle, run_dir), tail_lines=tail_lines)

    def active_external_ids(self) -> set[str]:
        """Live sessions (cold or claimed from the pool); unclaimed pooled agents belong to no one, so not them."""
        ids = self._runs.active_external_ids()  # run_root/<key>, links included; .pool is no key
        ids.update(entry.name for entry in self._pool.unlinked_claimed())
        return ids

    def refill_pool(self) -> PoolStatus:
        """Start agents until `pool_size` are starting or ready, and touch the ready ones; call it every pass.

        While a cold session's driver is starting the pool waits: on a small machine a refill's JVM would
        compete with the start someone is waiting for (measured: a cold start took twice as long)."""
        return self._pool.refill(launch=not self._cold_start_in_progress())

    def _cold_start_in_progress(self) -> bool:
        if not self._run_root.is_dir():
            return False
        for run_dir in self._run_root.iterdir():
            if run_dir.name == POOL_DIR or run_dir.is_symlink() or not run_dir.is_dir():
                continue
            if not (run_dir / AGENT_JSON).exists() and is_alive(run_dir):
                return True
        return False

    def pool_status(self) -> PoolStatus:
        return self._pool.status()

    def drain_pool(self) -> None:
        """Stop every unclaimed pooled agent (at shutdown)."""
        self._pool.drain()

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        raise PermanentBackendError("the local session backend runs sessions; batches go to LocalBackend")

    def close(self) -> None:
        """Agents belong to their supervisors, not to this object; only the HTTP client is released."""
        self._client.close()

    def _run_dir(self, handle: Handle) -> Path | None:
        if not _KEY.match(handle.external_id):
            return None
        stored = handle.extra.get("run_dir")
        if stored:
            return Path(stored)
        direct = self._run_root / handle.external_id
        pooled = self._run_root / POOL_DIR / handle.external_id
        return pooled if not direct.exists() and pooled.is_dir() else direct

    def _live_dir(self, session: Handle) -> Path:
        run_dir = self._run_dir(session)
        if run_dir is None or not run_dir.is_dir():
            raise PermanentBackendError(f"no local session {session.external_id}")
        return run_dir

    @staticmethod
    def _process_handle(handle: Handle, run_dir: Path) -> Handle:
        return Handle(handle.backend, handle.external_id, {"run_dir": str(run_dir)})


def _end_message(ended: str, exit_code: int | None, log: str | None) -> str | None:
    if ended == "cancelled":
        return "cancelled"
    if ended == "lost":
        return "the local supervisor died before the session's agent ended"
    if ended == "succeeded":
        return "the session's agent stopped"
    message = f"the session's agent exited with code {exit_code}"
    for line in reversed((log or "").splitlines()):
        if _ERROR_LINE.search(line):
            return f"{message}: {line.strip()[:300]}"
    return message


def _statement_of(data: dict[str, Any]) -> StatementObservation:
    return StatementObservation(
        state=StatementState(data["state"]),
        output=data.get("output"),
        progress=float(data.get("progress") or 0.0),
        started_ms=int(data.get("started") or 0),
        completed_ms=int(data.get("completed") or 0),
    )
