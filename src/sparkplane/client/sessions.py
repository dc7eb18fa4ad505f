"""Interactive sessions: the SDK's part for /api/v1/sessions and their statements.

    with Client(url, token=token) as sp, sp.create_session("pyspark") as session:   # waits until idle
        print(session.run("spark.range(10).count()").text)                          # "10"
        rows = session.sql("select 1 as one")                                       # [{"one": 1}]
        df = session.spark().range(3)                                               # Spark Connect
    # leaving the block stops the session (`keep=True` leaves it running)

`SessionsMixin` gives `Client` one method per route; `Session` is a handle on one session that calls them.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sparkplane.client._plumbing import ClientPlumbing, FileRef
from sparkplane.client.errors import ClientError, UnexpectedResponse, WaitTimeout
from sparkplane.client.models import (
    Candidates,
    Event,
    LogPage,
    SessionInfo,
    SessionPage,
    StatementPage,
    StatementResult,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

OnSessionUpdate = Callable[[SessionInfo], None]
OnStatementUpdate = Callable[[StatementResult], None]

# A session starts in seconds (a local driver) to minutes (a pod, a cluster): polling once a second shows a
# person the state soon enough and costs the server nothing worth counting.
SESSION_POLL_SECONDS = 1.0
# Most statements finish in tens of milliseconds, so the first look comes after 10 ms and each wait is 1.5x
# the last, up to 500 ms: a fast statement answers at once, a long one costs two requests a second.
STATEMENT_FIRST_POLL = 0.01
STATEMENT_MAX_POLL = 0.5
_POLL_GROWTH = 1.5
_LOG_PAGE = 1000  # lines per log request, as for batches
_PATH = "/api/v1/sessions"


class SessionFailed(ClientError):
    """The session ended (error, dead, killed, success) while it was waited for, before it became ready."""

    def __init__(self, session: SessionInfo) -> None:
        reason = " ".join(p for p in (session.failure_reason, session.message) if p)
        super().__init__(f"session {session.id} ended {session.state}" + (f": {reason}" if reason else ""))
        self.session = session


class StatementError(ClientError):
    """The statement's code raised: Livy's error output, with the session side's traceback lines."""

    def __init__(
        self, ename: str, evalue: str, traceback: Sequence[str] = (), *, statement: StatementResult | None = None
    ) -> None:
        super().__init__(f"{ename}: {evalue}" if evalue else ename)
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        self.statement = statement


class StatementCancelled(StatementError):
    """The statement ended cancelled: on request, or because its session ended."""

    def __init__(self, statement: StatementResult) -> None:
        super().__init__("StatementCancelled", f"statement {statement.id} was cancelled", statement=statement)


class SessionsMixin(ClientPlumbing):
    """The session routes of `Client`."""

    def create_session(
        self,
        kind: str = "pyspark",
        *,
        name: str | None = None,
        conf: Mapping[str, str] | None = None,
        driver_memory: str | None = None,
        driver_cores: int | None = None,
        executor_memory: str | None = None,
        executor_cores: int | None = None,
        num_executors: int | None = None,
        jars: Sequence[FileRef] = (),
        py_files: Sequence[FileRef] = (),
        files: Sequence[FileRef] = (),
        archives: Sequence[FileRef] = (),
        queue: str | None = None,
        proxy_user: str | None = None,
        heartbeat_timeout: int | None = None,
        ttl: str | None = None,
        idle_timeout: str | None = None,
        cluster_id: int | None = None,
        wait: bool = True,
        timeout: float | None = None,
        on_update: OnSessionUpdate | None = None,
        poll: float = SESSION_POLL_SECONDS,
        keep: bool = False,
    ) -> Session:
        """Start a session; with `wait` (the default), return once it is idle. Local files are uploaded first,
        as for batches. `ttl` and `idle_timeout` are durations such as "8h" and "30m"; `cluster_id` runs it on
        one of your clusters (`create_cluster`), which must be running or starting.

        Raises `SessionFailed` when it ends instead. If waiting times out or is interrupted, the session is
        stopped before the error propagates: the caller never got a handle, so nobody else would stop it."""
        uploaded: dict[str, str] = {}
        body: dict[str, Any] = {
            "kind": kind,
            "conf": {str(k): str(v) for k, v in (conf or {}).items()},
            "jars": [self._stage(f, uploaded) for f in jars],
            "pyFiles": [self._stage(f, uploaded) for f in py_files],
            "files": [self._stage(f, uploaded) for f in files],
            "archives": [self._stage(f, uploaded) for f in archives],
            "name": name,
            "driverMemory": driver_memory,
            "driverCores": driver_cores,
            "executorMemory": executor_memory,
            "executorCores": executor_cores,
            "numExecutors": num_executors,
            "queue": queue,
            "proxyUser": proxy_user,
            "heartbeatTimeoutInSecond": heartbeat_timeout,
            "ttl": ttl,
            "idleTimeout": idle_timeout,
            "cluster_id": cluster_id,
        }
        body = _set(body)  # unset options keep the server's defaults
        info = self._parse(self._request("POST", _PATH, json=body), SessionInfo)
        if on_update is not None:
            on_update(info)
        session = Session(self, info, keep=keep)
        if wait and not info.is_ready:
            try:
                session.wait(timeout=timeout, on_update=on_update, poll=poll)
            except (WaitTimeout, KeyboardInterrupt):
                _stop_quietly(self, info.id)
                raise
        return session

    def session(self, session_id: int, *, keep: bool = False) -> Session:
        """A handle on an existing session. Its context manager stops it too, unless `keep`."""
        return Session(self, self.get_session(session_id), keep=keep)

    def list_sessions(self, state: str | None = None, offset: int = 0, limit: int = 100) -> SessionPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = state
        return self._parse(self._request("GET", _PATH, params=params), SessionPage)

    def get_session(self, session_id: int) -> SessionInfo:
        """The session now; its `connect_url` is set for its owner while it is idle or busy."""
        return self._parse(self._request("GET", f"{_PATH}/{session_id}"), SessionInfo)

    def stop_session(self, session_id: int) -> SessionInfo:
        """Ask the server to stop the session; it answers at once (shutting_down). Idempotent."""
        return self._parse(self._request("DELETE", f"{_PATH}/{session_id}"), SessionInfo)

    def session_log(self, session_id: int, offset: int | None = None, limit: int | None = None) -> LogPage:
        """A page of the driver log: by default the last 100 lines; `limit=-1` for all from `offset`."""
        params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
        return self._parse(self._request("GET", f"{_PATH}/{session_id}/log", params=params), LogPage)

    def session_events(self, session_id: int) -> list[Event]:
        return self._parse(self._request("GET", f"{_PATH}/{session_id}/events"), list[Event])

    def wait_session(
        self,
        session_id: int,
        *,
        poll: float = SESSION_POLL_SECONDS,
        timeout: float | None = None,
        on_update: OnSessionUpdate | None = None,
    ) -> SessionInfo:
        """Poll until the session takes statements (idle or busy) and return it; `SessionFailed` if it ends
        first, `WaitTimeout` after `timeout` seconds. A short server outage is waited out, as for batches."""

        def read() -> SessionInfo:
            info = self.get_session(session_id)
            if on_update is not None:
                on_update(info)
            if info.is_final:
                raise SessionFailed(info)
            return info

        delays = itertools.repeat(poll)
        return self._poll(read, lambda s: s.is_ready, delays=delays, timeout=timeout, what=f"session {session_id}")

    # ---- statements -----------------------------------------------------------------------------------

    def submit_statement(self, session_id: int, code: str, kind: str | None = None) -> StatementResult:
        """Queue code in the session and return at once; `kind` defaults to the session's own."""
        body = _set({"code": code, "kind": kind})
        return self._parse(self._request("POST", f"{_PATH}/{session_id}/statements", json=body), StatementResult)

    def get_statement(self, session_id: int, statement_id: int) -> StatementResult:
        return self._parse(self._request("GET", f"{_PATH}/{session_id}/statements/{statement_id}"), StatementResult)

    def list_statements(self, session_id: int, offset: int = 0, limit: int = 100) -> StatementPage:
        params = {"offset": offset, "limit": limit}
        return self._parse(self._request("GET", f"{_PATH}/{session_id}/statements", params=params), StatementPage)

    def cancel_statement(self, session_id: int, statement_id: int) -> StatementResult:
        """Ask for the statement to be cancelled; it may answer `cancelling` and end `cancelled` later."""
        path = f"{_PATH}/{session_id}/statements/{statement_id}/cancel"
        return self._parse(self._request("POST", path), StatementResult)

    def wait_statement(
        self,
        session_id: int,
        statement_id: int,
        *,
        timeout: float | None = None,
        on_update: OnStatementUpdate | None = None,
    ) -> StatementResult:
        """Poll until the statement is final (available or cancelled) and return it, quickly at first."""

        def read() -> StatementResult:
            statement = self.get_statement(session_id, statement_id)
            if on_update is not None:
                on_update(statement)
            return statement

        what = f"statement {statement_id} of session {session_id}"
        return self._poll(read, lambda s: s.is_final, delays=_backoff(), timeout=timeout, what=what)

    def complete(self, session_id: int, code: str, cursor: int | None = None, kind: str | None = None) -> list[str]:
        """Completion candidates for `code` at `cursor` (default: its end), from the session's interpreter."""
        body = _set({"code": code, "cursor": len(code) if cursor is None else cursor, "kind": kind})
        response = self._request("POST", f"{_PATH}/{session_id}/completion", json=body)
        return list(self._parse(response, Candidates).candidates)


class Session:
    """A handle on one interactive session. As a context manager it stops the session on exit, unless `keep`."""

    def __init__(self, client: SessionsMixin, info: SessionInfo, *, keep: bool = False) -> None:
        self._client = client
        self.last = info  # the state as last seen; info() refreshes it
        self.keep = keep

    @property
    def id(self) -> int:
        return self.last.id

    @property
    def kind(self) -> str:
        return self.last.kind

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.kind} {self.last.state}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.keep:
            return
        if exc is None:
            self.stop()
        else:
            _stop_quietly(self._client, self.id)  # the error in flight says more than a failed stop would

    def info(self) -> SessionInfo:
        self.last = self._client.get_session(self.id)
        return self.last

    def wait(
        self,
        *,
        timeout: float | None = None,
        on_update: OnSessionUpdate | None = None,
        poll: float = SESSION_POLL_SECONDS,
    ) -> SessionInfo:
        """Wait until the session takes statements; `SessionFailed` if it ends first."""

        def seen(info: SessionInfo) -> None:
            self.last = info
            if on_update is not None:
                on_update(info)

        return self._client.wait_session(self.id, poll=poll, timeout=timeout, on_update=seen)

    def submit(self, code: str, kind: str | None = None) -> StatementResult:
        return self._client.submit_statement(self.id, code, kind)

    def statement(self, statement_id: int) -> StatementResult:
        return self._client.get_statement(self.id, statement_id)

    def statements(self, offset: int = 0, limit: int = 100) -> StatementPage:
        return self._client.list_statements(self.id, offset, limit)

    def wait_statement(
        self, statement_id: int, *, timeout: float | None = None, on_update: OnStatementUpdate | None = None
    ) -> StatementResult:
        return self._client.wait_statement(self.id, statement_id, timeout=timeout, on_update=on_update)

    def run(
        self,
        code: str,
        kind: str | None = None,
        *,
        timeout: float | None = None,
        raise_on_error: bool = True,
        on_update: OnStatementUpdate | None = None,
    ) -> StatementResult:
        """Run code and return its result once final. With `raise_on_error`, an error output raises
        `StatementError` (and a cancelled statement `StatementCancelled`).

        A statement left behind would hold up every later one in the session, so a timeout or a Ctrl-C
        cancels it before `WaitTimeout` or `KeyboardInterrupt` propagates."""
        statement = self.submit(code, kind)
        try:
            result = self.wait_statement(statement.id, timeout=timeout, on_update=on_update)
        except WaitTimeout as exc:
            _cancel_quietly(self, statement.id)
            raise WaitTimeout(f"{exc.message}; cancelled it") from exc
        except KeyboardInterrupt:
            _cancel_quietly(self, statement.id)
            raise
        if raise_on_error:
            raise_for_error(result)
        return result

    def sql(self, query: str, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run a sql statement and return its rows as dicts keyed by column name (at most the server's cap
        of rows per result)."""
        result = self.run(query, "sql", timeout=timeout)
        rows = result.table
        if rows is None:
            raise UnexpectedResponse(f"sql statement {result.id} of session {self.id} returned no table")
        return rows

    def cancel(self, statement_id: int) -> StatementResult:
        return self._client.cancel_statement(self.id, statement_id)

    def complete(self, code: str, cursor: int | None = None, kind: str | None = None) -> list[str]:
        return self._client.complete(self.id, code, cursor, kind)

    def logs(self, offset: int = 0) -> list[str]:
        """Every line of the driver log from `offset` on, as it is now."""
        lines: list[str] = []
        while True:
            page = self._client.session_log(self.id, offset=offset, limit=_LOG_PAGE)
            lines.extend(page.lines)
            offset = page.end
            if not page.lines or offset >= page.total:
                return lines

    def follow_log(self, *, poll: float = SESSION_POLL_SECONDS, offset: int = 0) -> Iterator[str]:
        """The driver log's lines from `offset` on as they appear, until the session has ended."""

        def page(at: int) -> LogPage:
            return self._client.session_log(self.id, offset=at, limit=_LOG_PAGE)

        return self._client._follow(self.info, page, poll=poll, offset=offset)

    def events(self) -> list[Event]:
        return self._client.session_events(self.id)

    def stop(self) -> SessionInfo:
        """Ask the server to stop the session; it returns at once, usually `shutting_down`."""
        self.last = self._client.stop_session(self.id)
        return self.last

    def spark(self) -> SparkSession:
        """A Spark Connect SparkSession on this session's driver (needs pyspark with Spark Connect).

        `getOrCreate()` hands back the process's existing Spark Connect session if there is one, whatever
        its URL: attach one sparkplane session per process, or call `.stop()` on the old SparkSession first."""
        info = self.last if self.last.connect_url else self.info()
        if info.connect_url is None:
            raise ClientError(
                f"session {self.id} has no Spark Connect URL (it is {info.state}): the server gives it to the "
                "session's owner only, once the session is idle, and only on backends that serve Spark Connect"
            )
        try:
            from pyspark.sql import SparkSession  # lazily: the SDK must work without pyspark installed
        except ImportError as exc:
            raise ClientError(
                "Session.spark() needs pyspark with Spark Connect: pip install 'pyspark[connect]'"
            ) from exc
        return SparkSession.builder.remote(info.connect_url).getOrCreate()


def raise_for_error(result: StatementResult) -> None:
    """Raise `StatementError` for an error output, `StatementCancelled` for a cancelled statement."""
    if result.failed:
        raise StatementError(result.ename or "Error", result.evalue or "", result.traceback, statement=result)
    if result.state == "cancelled":
        raise StatementCancelled(result)


def _set(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _backoff() -> Iterator[float]:
    delay = STATEMENT_FIRST_POLL
    while True:
        yield delay
        delay = min(delay * _POLL_GROWTH, STATEMENT_MAX_POLL)


def _cancel_quietly(session: Session, statement_id: int) -> None:
    with contextlib.suppress(ClientError):  # best effort: the error in flight is the one to report
        session.cancel(statement_id)


def _stop_quietly(client: SessionsMixin, session_id: int) -> None:
    # Best effort: the session's idle timeout and TTL still end it; the caller's own error matters more.
    with contextlib.suppress(ClientError):
        client.stop_session(session_id)
