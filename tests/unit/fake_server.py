"""An in-memory fake of sparkplane's REST API for the SDK and CLI tests (httpx.MockTransport): no network.

Each GET of a batch moves it one step along a script of (state, new log lines), the way a real batch
advances between polls; sessions and statements do the same along their own scripts (`FakeSessions`), and
clusters along theirs (`FakeClusters`, fake_clusters.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from sparkplane.client import Client
from tests.unit.fake_clusters import FakeClusters

URL = "http://sp.test"
TOKEN = "spk_test_secret"
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
SESSION_FINAL_STATES = ("error", "dead", "killed", "success")
SUCCESS = (("starting", ()), ("running", ("line 1", "line 2")), ("running", ("line 3",)), ("success", ("bye",)))
DEAD = (("running", ("boom",)), ("dead", ("Error: oops",)))


def error(status: int, message: str, key: str = "detail") -> httpx.Response:
    return httpx.Response(status, json={key: message})


# A session's states, one per GET, from creation (not_started) on; a step is a state or (state, fields).
STARTS = ("starting", "idle")
START_FAILS = ("starting", ("error", {"failure_reason": "BACKEND_FAILED", "message": "driver exited with code 1"}))
CONNECT_URL = "sc://localhost:15002/;token=connect-secret"
SessionStep = str | tuple[str, dict[str, Any]]
Output = dict[str, Any]


def text_output(text: str) -> Output:
    return {"status": "ok", "execution_count": 0, "data": {"text/plain": text}}


def error_output(ename: str, evalue: str) -> Output:
    traceback = [
        "Traceback (most recent call last):\n",
        '  File "<stdin>", line 1, in <module>\n',
        f"{ename}: {evalue}\n",
    ]
    return {"status": "error", "execution_count": 0, "ename": ename, "evalue": evalue, "traceback": traceback}


def sql_output(fields: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> Output:
    schema = {
        "type": "struct",
        "fields": [{"name": n, "type": t, "nullable": True, "metadata": {}} for n, t in fields],
    }
    return {"status": "ok", "execution_count": 0, "data": {"application/json": {"schema": schema, "data": rows}}}


class FakeSessions:
    """The session and statement routes. Statements step waiting -> running -> available (one step per GET)
    and take their output from `outputs` (by code) or `default_output`."""

    def init_sessions(self) -> None:
        self.session_script: list[SessionStep] = list(STARTS)
        self.sessions: dict[int, dict[str, Any]] = {}
        self.session_steps: dict[int, list[SessionStep]] = {}
        self.session_logs: dict[int, list[str]] = {}
        self.session_events: dict[int, list[dict[str, Any]]] = {}
        self.created: list[dict[str, Any]] = []
        self.statements: dict[int, list[dict[str, Any]]] = {}
        self.statement_script: list[str] = ["running", "available"]
        self.statement_steps: dict[tuple[int, int], list[str]] = {}
        self.outputs: dict[str, Output] = {}
        self.default_output: Callable[[str], Output] = lambda code: text_output(f"ran: {code}")
        self.completions: list[dict[str, Any]] = []

    def add_session(self, state: str = "not_started", **fields: Any) -> dict[str, Any]:
        session_id = len(self.sessions) + 1
        session = {
            "id": session_id, "name": None, "owner": "alice", "kind": "pyspark", "state": state, "backend": "fake",
            "app_id": None, "spark_ui_url": None, "connect_url": None, "native_state": None, "failure_reason": None,
            "message": None, "conf": {}, "submitted_at": NOW.isoformat(), "started_at": None, "finished_at": None,
            "last_activity_at": NOW.isoformat(),
        } | fields  # fmt: skip
        self.sessions[session_id] = session
        self.session_steps[session_id] = list(self.session_script)
        self.session_logs[session_id] = []
        self.session_events[session_id] = [
            {"from": None, "to": state, "reason": None, "message": None, "at": NOW.isoformat()}
        ]
        self.statements[session_id] = []
        return session

    def _sessions(self, method: str, path: str, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if path == "/api/v1/sessions":
            if method == "POST":
                body = json.loads(request.content)
                self.created.append(body)
                fields = {"kind": body.get("kind") or "pyspark", "name": body.get("name"), "conf": body.get("conf", {})}
                return httpx.Response(201, json=self.add_session(**fields))
            offset, limit = int(params["offset"]), int(params["limit"])
            items = [s for s in self.sessions.values() if s["state"] == params.get("state", s["state"])]
            return httpx.Response(200, json={"offset": offset, "total": len(items), "items": items[offset:][:limit]})
        m = re.fullmatch(r"/api/v1/sessions/(\d+)(?:/(log|events|completion|statements)(?:/(\d+)(/cancel)?)?)?", path)
        if m is None or int(m[1]) not in self.sessions:
            return error(404, f"Session '{m[1] if m else '?'}' not found.")
        session_id, tail = int(m[1]), m[2]
        session = self.sessions[session_id]
        if tail == "log":
            return log_page(session_id, self.session_logs[session_id], params)
        if tail == "events":
            return httpx.Response(200, json=self.session_events[session_id])
        if tail == "completion":
            self.completions.append(json.loads(request.content))
            return httpx.Response(200, json={"candidates": ["spark", "spark.range("]})
        if tail == "statements":
            return self._statements(method, session_id, None if m[3] is None else int(m[3]), bool(m[4]), request)
        if method == "DELETE":
            if session["state"] not in SESSION_FINAL_STATES:
                self._move(session_id, "shutting_down")
                self.session_steps[session_id] = ["dead"]
            return httpx.Response(200, json=session)
        if self.session_steps[session_id]:
            step = self.session_steps[session_id].pop(0)
            state, extra = (step, {}) if isinstance(step, str) else step
            self._move(session_id, state, **extra)
        connect = CONNECT_URL if session["state"] in ("idle", "busy") else None
        return httpx.Response(200, json=session | {"connect_url": connect})

    def _move(self, session_id: int, state: str, **fields: Any) -> None:
        session = self.sessions[session_id]
        if state != session["state"]:
            self.session_events[session_id].append(
                {
                    "from": session["state"],
                    "to": state,
                    "reason": fields.get("failure_reason"),
                    "message": None,
                    "at": NOW.isoformat(),
                }
            )
        session.update(state=state, **fields)
        if state == "idle" and session["started_at"] is None:
            session["started_at"] = NOW.isoformat()
        if state in SESSION_FINAL_STATES:
            session["finished_at"] = (NOW + dt.timedelta(seconds=65)).isoformat()
            for statement in self.statements[session_id]:
                if statement["state"] not in ("available", "cancelled"):
                    statement["state"] = "cancelled"

    def _statements(
        self, method: str, session_id: int, statement_id: int | None, cancel: bool, request: httpx.Request
    ) -> httpx.Response:
        statements = self.statements[session_id]
        if statement_id is None and method == "POST":
            session = self.sessions[session_id]
            if session["state"] in SESSION_FINAL_STATES or session["state"] == "shutting_down":
                return error(409, f"Session '{session_id}' is {session['state']}: start a new session to run code")
            body = json.loads(request.content)
            statement = {
                "id": len(statements), "code": body["code"], "kind": body.get("kind") or session["kind"],
                "state": "waiting", "output": None, "progress": 0.0, "started": 0, "completed": 0,
            }  # fmt: skip
            statements.append(statement)
            self.statement_steps[(session_id, statement["id"])] = list(self.statement_script)
            return httpx.Response(201, json=statement)
        if statement_id is None:
            offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
            page = {"offset": offset, "total": len(statements), "items": statements[offset:][:limit]}
            return httpx.Response(200, json=page)
        if statement_id >= len(statements):
            return error(404, "Statement not found")
        statement = statements[statement_id]
        if cancel:
            if statement["state"] not in ("available", "cancelled"):
                statement["state"] = "cancelled"
        elif statement["state"] not in ("available", "cancelled") and self.statement_steps[(session_id, statement_id)]:
            statement["state"] = self.statement_steps[(session_id, statement_id)].pop(0)
            if statement["state"] == "running":
                statement.update(started=1714564800000, progress=0.5)
            if statement["state"] == "available":
                code = statement["code"]
                output = self.outputs.get(code) or self.default_output(code)
                statement.update(
                    output=output | {"execution_count": statement_id}, progress=1.0, completed=1714564801500
                )
        return httpx.Response(200, json=statement)


class FakeServer(FakeSessions, FakeClusters):
    """The routes the SDK calls, with the server's wire shapes, in memory."""

    def __init__(self, script: Sequence[tuple[str, Sequence[str]]] = SUCCESS) -> None:
        self.script = list(script)
        self.tokens = {TOKEN: 1}
        self.passwords = {"alice": "alice-password"}
        self.users: dict[int, dict[str, Any]] = {
            1: {"id": 1, "username": "alice", "role": "admin", "is_active": True},
            2: {"id": 2, "username": "bob", "role": "user", "is_active": True},
        }
        self.batches: dict[int, dict[str, Any]] = {}
        self.steps: dict[int, list[tuple[str, Sequence[str]]]] = {}
        self.logs: dict[int, list[str]] = {}
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.api_tokens: dict[int, dict[str, Any]] = {}
        self.uploads: list[tuple[str, bytes]] = []
        self.submitted: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.init_sessions()
        self.init_clusters()
        self.failures: list[httpx.Response | Exception] = []  # served first, in order, before any route

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("token", TOKEN)
        return Client(URL, transport=httpx.MockTransport(self.handle), **kwargs)

    def add_batch(self, state: str = "not_started", **fields: Any) -> dict[str, Any]:
        batch_id = len(self.batches) + 1
        batch = {
            "id": batch_id, "name": None, "owner": "alice", "proxy_user": None, "state": state,
            "backend": "fake", "app_id": None, "spark_ui_url": None, "native_state": None,
            "failure_reason": None, "message": None, "file": "s3://b/app.py", "args": [], "class_name": None,
            "conf": {}, "submitted_at": NOW.isoformat(), "started_at": None, "finished_at": None,
        } | fields  # fmt: skip
        self.batches[batch_id] = batch
        self.steps[batch_id] = list(self.script)
        self.logs[batch_id] = []
        self.events[batch_id] = [{"from": None, "to": state, "reason": None, "message": None, "at": NOW.isoformat()}]
        return batch

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        if request.url.path.startswith("/livy"):
            return error(404, "Session '9' not found.", key="msg")
        user = self._principal(request)
        if user is None:
            return error(401, "not authenticated")
        method, path = request.method, request.url.path
        if m := re.fullmatch(r"/api/v1/batches/(\d+)(/log|/events)?", path):
            batch_id, tail = int(m[1]), m[2]
            if batch_id not in self.batches:
                return error(404, f"batch {batch_id} not found")
            if tail == "/log":
                return self._log(batch_id, request.url.params)
            if tail == "/events":
                return httpx.Response(200, json=self.events[batch_id])
            if method == "DELETE":
                self._advance(batch_id, "killed", ())
            else:
                self._step(batch_id)
            return httpx.Response(200, json=self.batches[batch_id])
        if (method, path) == ("POST", "/api/v1/batches"):
            body = json.loads(request.content)
            self.submitted.append(body)
            batch = self.add_batch(file=body["file"], args=body["args"], name=body.get("name"))
            return httpx.Response(201, json=batch)
        if (method, path) == ("GET", "/api/v1/batches"):
            offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
            items = [b for b in self.batches.values() if b["state"] == request.url.params.get("state", b["state"])]
            return httpx.Response(200, json={"offset": offset, "total": len(items), "items": items[offset:][:limit]})
        if (method, path) == ("POST", "/api/v1/files"):
            name, content = _multipart_file(request)
            self.uploads.append((name, content))
            uri = f"file:///blobs/uploads/1/{len(self.uploads)}/{name}"
            return httpx.Response(201, json={"uri": uri, "filename": name, "size": len(content), "sha256": "0" * 64})
        if path.startswith("/api/v1/sessions"):
            return self._sessions(method, path, request)
        if path.startswith("/api/v1/clusters"):
            return self._clusters(method, path, request)
        return self._accounts(method, path, request, user)

    def _accounts(self, method: str, path: str, request: httpx.Request, user: int) -> httpx.Response:
        if path == "/api/v1/users/me":
            return httpx.Response(200, json=self.users[user])
        if path == "/api/v1/users":
            if method == "POST":
                body = json.loads(request.content)
                new = {"id": len(self.users) + 1, "username": body["username"], "role": body["role"], "is_active": True}
                self.users[new["id"]] = new
                return httpx.Response(201, json=new)
            return httpx.Response(200, json=list(self.users.values()))
        if m := re.fullmatch(r"/api/v1/users/(\d+)", path):
            if int(m[1]) not in self.users:
                return error(404, f"user {m[1]} not found")
            self.users[int(m[1])].update(json.loads(request.content))
            return httpx.Response(200, json=self.users[int(m[1])])
        if path == "/api/v1/tokens" and method == "POST":
            token_id = len(self.api_tokens) + 1
            secret = f"spk_{token_id}_{'s' * 30}"
            info = {
                "id": token_id, "name": json.loads(request.content)["name"], "prefix": secret[:10],
                "user_id": user, "created_at": NOW.isoformat(), "last_used_at": None, "revoked": False,
            }  # fmt: skip
            self.api_tokens[token_id] = info
            self.tokens[secret] = user
            return httpx.Response(201, json=info | {"token": secret})
        if path == "/api/v1/tokens":
            return httpx.Response(200, json=list(self.api_tokens.values()))
        if m := re.fullmatch(r"/api/v1/tokens/(\d+)", path):
            self.api_tokens[int(m[1])]["revoked"] = True
            return httpx.Response(200, json=self.api_tokens[int(m[1])])
        return error(404, "Not Found")

    def _principal(self, request: httpx.Request) -> int | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme == "Bearer":
            return self.tokens.get(value)
        if scheme == "Basic":
            username, _, password = base64.b64decode(value).decode().partition(":")
            if self.passwords.get(username) == password:
                return next(int(u["id"]) for u in self.users.values() if u["username"] == username)
        return None

    def _step(self, batch_id: int) -> None:
        if self.steps[batch_id] and self.batches[batch_id]["state"] not in ("success", "dead", "killed"):
            state, lines = self.steps[batch_id].pop(0)
            self._advance(batch_id, state, lines)

    def _advance(self, batch_id: int, state: str, lines: Sequence[str]) -> None:
        batch = self.batches[batch_id]
        if batch["state"] in ("success", "dead", "killed"):
            return
        self.logs[batch_id].extend(lines)
        if state != batch["state"]:
            self.events[batch_id].append(
                {"from": batch["state"], "to": state, "reason": None, "message": None, "at": NOW.isoformat()}
            )
        batch["state"] = state
        if state == "running":
            batch["started_at"] = NOW.isoformat()
        if state in ("success", "dead", "killed"):
            batch["finished_at"] = (NOW + dt.timedelta(seconds=65)).isoformat()
            batch["failure_reason"] = None if state == "success" else "BACKEND_FAILED"

    def _log(self, batch_id: int, params: httpx.QueryParams) -> httpx.Response:
        return log_page(batch_id, self.logs[batch_id], params)


def log_page(owner_id: int, lines: list[str], params: httpx.QueryParams) -> httpx.Response:
    """Livy's paging, as the server does it: size 100 by default, negative for all; from the tail."""
    size = int(params.get("limit", 100))
    size = len(lines) if size < 0 else size
    start = max(0, len(lines) - size) if "offset" not in params else int(params["offset"])
    return httpx.Response(
        200, json={"id": owner_id, "offset": start, "total": len(lines), "lines": lines[start : start + size]}
    )


def _multipart_file(request: httpx.Request) -> tuple[str, bytes]:
    body = request.read()
    m = re.search(rb'name="file"; filename="([^"]+)"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--', body, re.S)
    assert m is not None, body[:200]
    return m[1].decode(), m[2]
