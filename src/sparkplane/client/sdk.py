"""A synchronous Python client of the native REST API (/api/v1).

    with Client("http://127.0.0.1:8998", token="spk_...") as sp:
        batch = sp.submit_batch("jobs/etl.py", ["--day", "2024-05-01"])   # a local file is uploaded first
        for line in sp.follow_log(batch.id):
            print(line)
        print(sp.get_batch(batch.id).state)

Interactive sessions and statements come from `SessionsMixin` (sessions.py), clusters from `ClustersMixin`
(clusters.py). Pass `transport=httpx.MockTransport(handler)` to run against a fake server in tests.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from sparkplane.client._plumbing import FileRef, S, T
from sparkplane.client.clusters import ClustersMixin
from sparkplane.client.errors import (
    ApiError,
    ConfigError,
    RequestFailed,
    ServerUnreachable,
    UnexpectedResponse,
    WaitTimeout,
)
from sparkplane.client.models import Batch, BatchPage, Event, FileInfo, LogPage, Token, User
from sparkplane.client.sessions import SessionsMixin
from sparkplane.client.workspace import WorkspaceMixin

OnUpdate = Callable[[Batch], None]

# A URI scheme has two or more characters, so a Windows drive letter ("C:\\job.py") is not mistaken for one.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# Lines per log request while following: large enough that a chatty driver is drained in a few round
# trips, small enough that one answer stays well under a megabyte.
_LOG_PAGE = 1000
# Gateway and availability statuses that a control-plane restart produces; waiting rides them out.
_RETRYABLE_STATUS = frozenset({502, 503, 504})


class Client(SessionsMixin, ClustersMixin, WorkspaceMixin):
    """One connection pool to one sparkplane server; share it between threads as an httpx.Client. Close it, or
    use it as a context manager, when done."""

    # How long wait_batch/follow_log keep retrying while the server is unreachable or answers 502/503/504:
    # a rolling restart of the API takes seconds; a minute of silence means something is really down.
    outage_grace: float = 60.0

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"the server URL must start with http:// or https://, not {url!r}")
        if token and username:
            raise ValueError("give a token or a username and password, not both")
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "sparkplane-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.Client(base_url=self.url, headers=headers, auth=auth, timeout=timeout, transport=transport)
        self._sleep: Callable[[float], None] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- files and batches ----------------------------------------------------------------------------

    def upload(self, path: FileRef) -> FileInfo:
        local = Path(path).expanduser()
        with local.open("rb") as fh:
            response = self._request("POST", "/api/v1/files", files={"file": (local.name, fh)})
        return self._parse(response, FileInfo)

    def submit_batch(
        self,
        file: FileRef,
        args: Sequence[str] = (),
        *,
        class_name: str | None = None,
        name: str | None = None,
        conf: Mapping[str, str] | None = None,
        jars: Sequence[FileRef] = (),
        py_files: Sequence[FileRef] = (),
        files: Sequence[FileRef] = (),
        archives: Sequence[FileRef] = (),
        driver_memory: str | None = None,
        driver_cores: int | None = None,
        executor_memory: str | None = None,
        executor_cores: int | None = None,
        num_executors: int | None = None,
        queue: str | None = None,
        proxy_user: str | None = None,
        cluster_id: int | None = None,
    ) -> Batch:
        """Submit a batch. Every file reference that is an existing local file is uploaded first; anything
        else (an uploaded URI, a path inside the blob storage, s3://…) is passed to the server as it is.
        `cluster_id` runs it on one of your clusters (`create_cluster`), which must be running or starting."""
        uploaded: dict[str, str] = {}  # one upload per local file, however often it is named
        body: dict[str, Any] = {
            "file": self._stage(file, uploaded),
            "args": [str(a) for a in args],
            "jars": [self._stage(f, uploaded) for f in jars],
            "pyFiles": [self._stage(f, uploaded) for f in py_files],
            "files": [self._stage(f, uploaded) for f in files],
            "archives": [self._stage(f, uploaded) for f in archives],
            "conf": {str(k): str(v) for k, v in (conf or {}).items()},
        }
        optional = {
            "className": class_name,
            "name": name,
            "driverMemory": driver_memory,
            "driverCores": driver_cores,
            "executorMemory": executor_memory,
            "executorCores": executor_cores,
            "numExecutors": num_executors,
            "queue": queue,
            "proxyUser": proxy_user,
            "cluster_id": cluster_id,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._parse(self._request("POST", "/api/v1/batches", json=body), Batch)

    def list_batches(self, state: str | None = None, offset: int = 0, limit: int = 100) -> BatchPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = state
        return self._parse(self._request("GET", "/api/v1/batches", params=params), BatchPage)

    def get_batch(self, batch_id: int) -> Batch:
        return self._parse(self._request("GET", f"/api/v1/batches/{batch_id}"), Batch)

    def batch_log(self, batch_id: int, offset: int | None = None, limit: int | None = None) -> LogPage:
        """A page of the driver log: by default the last 100 lines; `limit=-1` for all from `offset`."""
        params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
        return self._parse(self._request("GET", f"/api/v1/batches/{batch_id}/log", params=params), LogPage)

    def read_log(self, batch_id: int, offset: int = 0) -> Iterator[str]:
        """Every line of the driver log from `offset` on, as it is now, fetched a page at a time."""
        while True:
            page = self.batch_log(batch_id, offset=offset, limit=_LOG_PAGE)
            yield from page.lines
            offset = page.end
            if not page.lines or offset >= page.total:
                return

    def batch_events(self, batch_id: int) -> list[Event]:
        return self._parse(self._request("GET", f"/api/v1/batches/{batch_id}/events"), list[Event])

    def kill_batch(self, batch_id: int) -> Batch:
        """Ask the server to kill the batch. Idempotent: killing a finished batch returns it unchanged."""
        return self._parse(self._request("DELETE", f"/api/v1/batches/{batch_id}"), Batch)

    def wait_batch(
        self,
        batch_id: int,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Batch:
        """Poll until the batch is final and return it. `on_update` sees every polled state, final included.
        A server outage shorter than `outage_grace` is waited out; `WaitTimeout` after `timeout` seconds."""

        def read() -> Batch:
            batch = self.get_batch(batch_id)
            if on_update is not None:
                on_update(batch)
            return batch

        return self._poll(
            read, lambda b: b.is_final, delays=itertools.repeat(poll), timeout=timeout, what=f"batch {batch_id}"
        )

    def follow_log(
        self,
        batch_id: int,
        *,
        poll: float = 1.0,
        offset: int = 0,
        on_update: OnUpdate | None = None,
    ) -> Iterator[str]:
        """Yield the driver log's lines from `offset` on as they appear, until the batch is final and every
        line is read. `on_update` sees the batch at each poll, as in `wait_batch`."""

        def read() -> Batch:
            batch = self.get_batch(batch_id)
            if on_update is not None:
                on_update(batch)
            return batch

        yield from self._follow(
            read, lambda at: self.batch_log(batch_id, offset=at, limit=_LOG_PAGE), poll=poll, offset=offset
        )

    # ---- users and tokens -----------------------------------------------------------------------------

    def me(self) -> User:
        return self._parse(self._request("GET", "/api/v1/users/me"), User)

    def list_users(self) -> list[User]:
        return self._parse(self._request("GET", "/api/v1/users"), list[User])

    def create_user(self, username: str, password: str, *, role: str = "user") -> User:
        body = {"username": username, "password": password, "role": role}
        return self._parse(self._request("POST", "/api/v1/users", json=body), User)

    def update_user(
        self, user_id: int, *, role: str | None = None, is_active: bool | None = None, password: str | None = None
    ) -> User:
        body = {k: v for k, v in (("role", role), ("is_active", is_active), ("password", password)) if v is not None}
        return self._parse(self._request("PATCH", f"/api/v1/users/{user_id}", json=body), User)

    def create_token(self, name: str) -> tuple[Token, str]:
        """A new API token and its secret. The server shows the secret this once; keep it."""
        response = self._request("POST", "/api/v1/tokens", json={"name": name})
        created = self._parse(response, _TokenSecret)
        # A plain Token goes back, so the secret never shows up in a repr or a log line by accident.
        return Token.model_validate(created.model_dump(exclude={"token"})), created.token

    def list_tokens(self) -> list[Token]:
        return self._parse(self._request("GET", "/api/v1/tokens"), list[Token])

    def revoke_token(self, token_id: int) -> Token:
        return self._parse(self._request("DELETE", f"/api/v1/tokens/{token_id}"), Token)

    # ---- plumbing -------------------------------------------------------------------------------------

    def _poll(
        self,
        read: Callable[[], S],
        done: Callable[[S], bool],
        *,
        delays: Iterator[float],
        timeout: float | None,
        what: str,
    ) -> S:
        """Call `read` until `done` says so, sleeping each of `delays` in between; `WaitTimeout` after `timeout`
        seconds. A server outage shorter than `outage_grace` is waited out."""
        deadline = None if timeout is None else self._clock() + timeout
        outage = _Outage(self._clock, self.outage_grace)
        state = "unknown"
        while True:
            try:
                item = read()
            except (ServerUnreachable, RequestFailed, ApiError) as exc:
                outage.tolerate(exc)
            else:
                outage.clear()
                if done(item):
                    return item
                state = item.state
            if deadline is not None and self._clock() >= deadline:
                raise WaitTimeout(f"{what} is still {state} after {timeout:g}s")
            self._sleep(next(delays))

    def _follow(
        self, read: Callable[[], S], page: Callable[[int], LogPage], *, poll: float, offset: int
    ) -> Iterator[str]:
        """Follow a log (a batch's or a session's): `read` gets the owner's state, `page` a page from an offset."""
        outage = _Outage(self._clock, self.outage_grace)
        while True:
            try:
                # The state is read before the log: once it is final, the log read after it is complete.
                owner = read()
                while True:
                    chunk = page(offset)
                    if chunk.total < offset:
                        # The log got shorter: the backend serves only a recent window, or the log moved to
                        # storage. Lines in between cannot be recovered; go on from the new end.
                        offset = chunk.total
                        break
                    yield from chunk.lines
                    offset = chunk.end
                    if not chunk.lines or offset >= chunk.total:
                        break
            except (ServerUnreachable, RequestFailed, ApiError) as exc:
                outage.tolerate(exc)
            else:
                outage.clear()
                if owner.is_final:
                    return
            self._sleep(poll)

    def _stage(self, ref: FileRef, uploaded: dict[str, str]) -> str:
        if not isinstance(ref, os.PathLike) and (_SCHEME.match(ref) or not Path(ref).expanduser().is_file()):
            return ref
        key = str(Path(ref).expanduser().resolve())
        if key not in uploaded:
            uploaded[key] = self.upload(ref).uri
        return uploaded[key]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.url, str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"sparkplane at {self.url} did not answer within {self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise RequestFailed(f"the request to sparkplane at {self.url} failed: {exc}") from exc
        if response.is_error:
            raise ApiError(response.status_code, _error_message(response))
        return response

    def _parse(self, response: httpx.Response, shape: type[T]) -> T:
        try:
            return _adapter(shape).validate_json(response.content)
        except ValidationError as exc:
            raise UnexpectedResponse(
                f"unexpected answer to {response.request.method} {response.request.url.path} from {self.url}: "
                "is this a sparkplane server of a compatible version?"
            ) from exc


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(shape: type[T]) -> TypeAdapter[T]:
    """Building a TypeAdapter compiles a validator; do it once per shape, not once per request."""
    adapter = _ADAPTERS.get(shape)
    if adapter is None:
        adapter = _ADAPTERS[shape] = TypeAdapter(shape)
    return adapter


class _TokenSecret(Token):
    token: str


class _Outage:
    """Rides out a server outage while polling: transient failures are tolerated until `grace` seconds
    have passed since the first one; then, and for any other error, the failure is raised."""

    def __init__(self, clock: Callable[[], float], grace: float) -> None:
        self._clock = clock
        self._grace = grace
        self._since: float | None = None

    def tolerate(self, exc: Exception) -> None:
        transient = not isinstance(exc, ApiError) or exc.status in _RETRYABLE_STATUS
        now = self._clock()
        if self._since is None:
            self._since = now
        if not transient or now - self._since >= self._grace:
            raise exc

    def clear(self) -> None:
        self._since = None


def _error_message(response: httpx.Response) -> str:
    """The server's own words: `detail` (native API) or `msg` (Livy face); else something short and true."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        value = body.get("detail", body.get("msg"))
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list):  # FastAPI's default validation shape: [{"loc": …, "msg": …}, …]
            parts = [str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value]
            return "; ".join(parts) or response.reason_phrase
    text = response.text.strip()
    # A short plain-text body is worth showing; an HTML error page from a proxy is not.
    if text and len(text) <= 200 and response.headers.get("content-type", "").startswith("text/plain"):
        return text
    return response.reason_phrase or "request failed"
