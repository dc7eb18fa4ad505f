"""The agent's HTTP API on 127.0.0.1: JSON in and out, a bearer token on every request.

`AgentAPI.dispatch` is the routing, free of HTTP so it is tested directly; `serve` wraps it in a
ThreadingHTTPServer. Every authorised request is contact from the control plane (the orphan timer's input).
Routes: GET /health, POST /claim, POST /statements (`wait`: seconds to hold the answer for a quick
statement to finish), GET /statements[/ID] (`?wait=` as for the POST: a long poll), POST /statements/ID/cancel,
POST /completion, POST /shutdown.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from sparkplane.agent.completion import complete
from sparkplane.agent.statements import StatementQueue
from sparkplane.domain.specs import KIND_ALIASES, STATEMENT_KINDS

logger = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024 * 1024  # a statement is code, not data; anything bigger is a mistake
_STATEMENT = re.compile(r"^/statements/(-?\d+)$")
_CANCEL = re.compile(r"^/statements/(-?\d+)/cancel$")
MAX_SUBMIT_WAIT = 5.0  # POST /statements and GET /statements/N may hold their answer this long for the end
Reply = tuple[int, dict[str, Any]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AgentInfo:
    """What /health reports besides the queue, and the claim (a pooled agent is unclaimed until POST /claim)."""

    spark_app_id: str | None = None
    ui_url: str | None = None
    claimed_by: str | None = None
    last_contact: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class AgentAPI:
    def __init__(
        self,
        queue: StatementQueue,
        info: AgentInfo,
        *,
        namespace: Mapping[str, Any],
        set_confs: Callable[[Mapping[str, str]], None] = lambda confs: None,
        call: Callable[[Callable[[], list[str]]], list[str]] = lambda fn: fn(),
        table_names: Callable[[], list[str]] | None = None,
        on_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.info = info
        self._namespace = namespace
        self._set_confs = set_confs
        self._call = call
        self._table_names = table_names
        self._on_shutdown = on_shutdown
        # Set when a statement is read while the agent stops: after a SystemExit it waits for that read.
        self.result_read = threading.Event()
        self._claim_lock = threading.Lock()  # held across the JVM call, so not info.lock, which every request takes

    def dispatch(self, method: str, path: str, body: Any) -> Reply:
        if method == "GET" and path.startswith("/statements") and self.queue.exit_requested:
            self.result_read.set()
        try:
            route, _, query = path.partition("?")
            return self._route(method, route.rstrip("/") or "/", body, query)
        except ApiError as exc:
            return exc.status, {"msg": str(exc)}

    def _route(self, method: str, path: str, body: Any, query: str = "") -> Reply:
        if method == "GET":
            if path == "/health":
                return 200, self.health()
            if path == "/statements":
                return 200, {"statements": self.queue.all()}
            if match := _STATEMENT.match(path):
                statement_id = int(match.group(1))
                if wait := _wait(parse_qs(query).get("wait", ["0"])[-1]):
                    self.queue.wait(statement_id, wait)  # a long poll: answers the moment the statement ends
                found = self.queue.get(statement_id)
                if found is None:
                    raise ApiError(404, "Statement not found")
                return 200, found
        elif method == "POST":
            if path == "/statements":
                return self._submit(_object(body))
            if match := _CANCEL.match(path):
                if self.queue.cancel(int(match.group(1))) is None:
                    raise ApiError(404, "Statement not found")
                return 200, {"msg": "canceled"}  # Livy's spelling
            if path == "/claim":
                return self._claim(_object(body))
            if path == "/completion":
                return 200, {"candidates": self._complete(_object(body))}
            if path == "/shutdown":
                self._on_shutdown()
                return 200, {"msg": "shutting down"}
        raise ApiError(404, f"no route for {method} {path}")

    def health(self) -> dict[str, Any]:
        state = "stopping" if self.queue.stopping else "busy" if self.queue.busy else "idle"
        with self.info.lock:
            claimed_by = self.info.claimed_by
        return {
            "state": state,
            "spark_app_id": self.info.spark_app_id,
            "ui_url": self.info.ui_url,
            "statements": self.queue.count,
            "claimed": claimed_by is not None,
            "session": claimed_by,
        }

    def _submit(self, body: Mapping[str, Any]) -> Reply:
        statement_id, code = body.get("id"), body.get("code")
        if not isinstance(statement_id, int) or isinstance(statement_id, bool) or statement_id < 0:
            raise ApiError(400, "'id' must be a whole number of at least 0")
        if not isinstance(code, str):
            raise ApiError(400, "'code' must be a string")
        kind = _kind(body.get("kind") or "pyspark")
        wait = _wait(body.get("wait", 0))
        try:
            view, created = self.queue.submit(statement_id, code, kind)
        except RuntimeError as exc:
            raise ApiError(409, str(exc)) from exc
        if wait and created:
            self.queue.wait(statement_id, float(wait))
            view = self.queue.get(statement_id) or view
        return (201 if created else 200), view

    def _claim(self, body: Mapping[str, Any]) -> Reply:
        session = body.get("session")
        confs = body.get("conf") or {}
        if not isinstance(session, str) or not session:
            raise ApiError(400, "'session' must name the session")
        if not isinstance(confs, dict) or not all(isinstance(v, str) for v in confs.values()):
            raise ApiError(400, "'conf' must map names to strings")
        with self._claim_lock:
            with self.info.lock:
                claimed_by = self.info.claimed_by
            if claimed_by is not None:
                raise ApiError(409, f"already claimed by session {claimed_by}")
            try:
                self._set_confs(confs)
            except Exception as exc:
                raise ApiError(400, str(exc)) from exc
            with self.info.lock:
                self.info.claimed_by = session
        logger.info("claimed by session %s", session)
        return 200, {"msg": "claimed", "session": session}

    def _complete(self, body: Mapping[str, Any]) -> list[str]:
        code, cursor = body.get("code", ""), body.get("cursor")
        if not isinstance(code, str):
            raise ApiError(400, "'code' must be a string")
        position = cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else len(code)
        kind = _kind(body.get("kind") or "pyspark")
        tables = self._table_names
        # Evaluating `a.b.` for attributes may call into the JVM: on the control thread, like other Spark calls.
        return self._call(lambda: complete(self._namespace, code, kind, position, tables=tables))


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _wait(value: Any) -> float:
    """Seconds a request may hold its answer for its statement to end: a number, or a query's string of one."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_SUBMIT_WAIT:
        raise ApiError(400, f"'wait' must be a number of seconds from 0 to {MAX_SUBMIT_WAIT}")
    return float(value)


def _kind(value: Any) -> str:
    kind = KIND_ALIASES.get(value, value) if isinstance(value, str) else value
    if kind not in STATEMENT_KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(STATEMENT_KINDS)}")
    return str(kind)


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    protocol_version = "HTTP/1.1"  # keep-alive: the control plane's client reuses its connection

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm the second waits for the client's
        # delayed ACK, 40 ms per response on Linux (measured: a 1+1 round trip took 88 ms instead of a few).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(400, {"msg": "bad Content-Length"}, close=True)
            return
        if length < 0 or length > _MAX_BODY:
            self._reply(413, {"msg": "request body too large"}, close=True)
            return
        raw = self.rfile.read(length) if length else b""
        if not self.server.authorised(self.headers.get("Authorization")):
            self._reply(401, {"msg": "missing or wrong bearer token"})
            return
        self.server.touch()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._reply(400, {"msg": "the body is not JSON"})
            return
        try:
            status, payload = self.server.api.dispatch(method, self.path, body)
        except Exception:
            logger.exception("%s %s failed", method, self.path)
            status, payload = 500, {"msg": "internal error in the session agent; see its log"}
        self._reply(status, payload)

    def _reply(self, status: int, payload: dict[str, Any], *, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: " + format, *args)


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the agent from exiting

    def __init__(self, api: AgentAPI, token: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api = api
        self._token = f"Bearer {token}".encode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def authorised(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self._token)

    def touch(self) -> None:
        with self.api.info.lock:
            self.api.info.last_contact = time.monotonic()


def serve(api: AgentAPI, token: str) -> tuple[AgentServer, threading.Thread]:
    server = AgentServer(api, token)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True)
    thread.start()
    return server, thread
