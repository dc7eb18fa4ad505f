"""HTTP to session agents, with errors in the backend taxonomy.

One `httpx.Client` per backend object serves every agent (it is thread-safe and keeps connections alive).
Timeouts are short because the agent is on this machine: one second to connect, five to answer (it answers
from memory; only completion may call into the JVM). An agent that cannot be reached is a transient error:
the watcher's next pass tries again, and `observe` tells whether the process is still there at all.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sparkplane.backends.base import PermanentBackendError, TransientBackendError
from sparkplane.backends.local.agent_command import AGENT_JSON, AGENT_TOKEN, CONNECT_TOKEN, read_secret

CONNECT_SECONDS = 1.0
READ_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class AgentAddress:
    url: str
    token: str
    connect_port: int
    connect_token: str
    spark_app_id: str | None
    ui_url: str | None

    @property
    def connect_url(self) -> str:
        # Literally "localhost": with any other host the Python client forces TLS (spark-notes gotcha 6).
        return f"sc://localhost:{self.connect_port}/;token={self.connect_token}"


def read_address(run_dir: Path) -> AgentAddress | None:
    """The agent's address once it has written agent.json; None while it starts."""
    try:
        record = json.loads((run_dir / AGENT_JSON).read_text())
    except (OSError, ValueError):
        return None
    token, connect_token = read_secret(run_dir, AGENT_TOKEN), read_secret(run_dir, CONNECT_TOKEN)
    if not isinstance(record, dict) or token is None or connect_token is None:
        return None
    try:
        return AgentAddress(
            url=str(record["url"]),
            token=token,
            connect_port=int(record["connect_port"]),
            connect_token=connect_token,
            spark_app_id=record.get("spark_app_id"),
            ui_url=record.get("ui_url"),
        )
    except (KeyError, TypeError, ValueError):
        return None


class AgentClient:
    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        timeout = httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)
        self._http = httpx.Client(timeout=timeout, transport=transport)
        # agent.json and the tokens never change once written, so each run folder is read once.
        self._addresses: dict[Path, AgentAddress] = {}
        self._lock = threading.Lock()

    def address(self, run_dir: Path) -> AgentAddress | None:
        key = run_dir.resolve()
        with self._lock:
            found = self._addresses.get(key)
        if found is None:
            found = read_address(run_dir)
            if found is not None:
                with self._lock:
                    self._addresses[key] = found
        return found

    def call(
        self, run_dir: Path, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> httpx.Response:
        """One request to the agent of `run_dir`; Transient when it cannot answer, Permanent when it refuses us."""
        address = self.address(run_dir)
        if address is None:
            raise TransientBackendError(f"the session agent in {run_dir} is not ready yet", retry_after=1.0)
        headers = {"Authorization": f"Bearer {address.token}"}
        try:
            response = self._http.request(
                method,
                address.url + path,
                json=body,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:  # refused, timed out, cut off: the agent may be busy, starting or gone
            raise TransientBackendError(f"the session agent did not answer {method} {path}: {exc}") from exc
        if response.status_code == 401:
            raise PermanentBackendError("the session agent refused our token")
        if response.status_code >= 500:
            raise TransientBackendError(f"the session agent failed {method} {path}: {message_of(response)}")
        return response

    def forget(self, run_dir: Path) -> None:
        with self._lock:
            self._addresses.pop(run_dir.resolve(), None)

    def close(self) -> None:
        self._http.close()


def message_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("msg", response.text))
    except ValueError:
        return response.text[:300]
