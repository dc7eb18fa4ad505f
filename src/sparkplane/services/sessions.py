"""Interactive sessions: create, read, kill, heartbeat, logs. Both API faces call these."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sparkplane.backends.base import BackendError, Handle
from sparkplane.db.models import Session
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, InvalidInput, NotFound
from sparkplane.domain.specs import (
    INT32_MAX,
    SESSION_KINDS,
    Resources,
    SessionSpec,
    check_conf,
    normalize_kind,
    parse_duration,
)
from sparkplane.domain.states import SESSION_TERMINAL, FailureReason, SessionState
from sparkplane.services import clusters, credentials, dispatch, faults, files, users
from sparkplane.services.batches import LogPage
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

LOG_PREFIX = "logs/sessions"


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A session as a user asks for it, in Livy's vocabulary (POST /sessions, all optional)."""

    kind: str | None = None
    name: str | None = None
    proxyUser: str | None = None  # noqa: N815  (Livy's wire names, shared by both faces)
    jars: Sequence[str] = ()
    pyFiles: Sequence[str] = ()  # noqa: N815
    files: Sequence[str] = ()
    archives: Sequence[str] = ()
    driverMemory: str | None = None  # noqa: N815
    driverCores: int | None = None  # noqa: N815
    executorMemory: str | None = None  # noqa: N815
    executorCores: int | None = None  # noqa: N815
    numExecutors: int | None = None  # noqa: N815
    queue: str | None = None
    conf: Mapping[str, str] = field(default_factory=dict)
    heartbeatTimeoutInSecond: int = 0  # noqa: N815
    ttl: str | None = None
    idleTimeout: str | None = None  # noqa: N815
    cluster_id: int | None = None  # run on this cluster's master and workers
    credentials: Sequence[str] = ()  # names of the caller's stored credentials, resolved at launch


@dataclass(frozen=True, slots=True)
class SessionView:
    id: int
    uid: str
    name: str | None
    owner: str
    owner_id: int
    kind: str
    state: SessionState
    backend: str
    app_id: str | None
    ui_url: str | None
    native_state: str | None
    failure_reason: str | None
    message: str | None
    request: Mapping[str, Any]
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last_activity_at: dt.datetime
    cluster_id: int | None = None


def view(session: Session, owner: str) -> SessionView:
    return SessionView(
        id=session.id,
        uid=session.uid,
        name=session.name,
        owner=owner,
        owner_id=session.owner_id,
        kind=session.kind,
        state=SessionState(session.state),
        backend=session.backend,
        app_id=session.app_id,
        ui_url=session.ui_url,
        native_state=session.native_state,
        failure_reason=session.failure_reason,
        message=session.message,
        request=session.request,
        submitted_at=session.submitted_at,
        started_at=session.started_at,
        finished_at=session.finished_at,
        last_activity_at=session.last_activity_at,
        cluster_id=session.cluster_id,
    )


def _validated(ctx: Context, principal: Principal, req: SessionRequest) -> dict[str, Any]:
    Resources(req.driverMemory, req.driverCores, req.executorMemory, req.executorCores, req.numExecutors)
    if req.name is not None and (not req.name.strip() or req.name.isdigit() or len(req.name) > 255):
        raise InvalidInput("name must be 1 to 255 characters and not only digits (digits name sessions by id)")
    if req.proxyUser not in (None, principal.username) and not principal.is_admin:
        raise InvalidInput(f"proxyUser '{req.proxyUser}' is not you; only admins may start sessions as another user")
    if req.heartbeatTimeoutInSecond < 0:
        raise InvalidInput("heartbeatTimeoutInSecond must not be negative")
    if req.heartbeatTimeoutInSecond > INT32_MAX:
        raise InvalidInput(f"heartbeatTimeoutInSecond must be at most {INT32_MAX}, not {req.heartbeatTimeoutInSecond}")
    data = asdict(req)
    data["kind"] = normalize_kind(req.kind, default="shared", allowed=SESSION_KINDS, what="kind")
    data["conf"] = check_conf(req.conf)
    data["ttl_s"] = parse_duration("ttl", req.ttl)
    data["idle_timeout_s"] = parse_duration("idleTimeout", req.idleTimeout)
    for key in ("jars", "pyFiles", "files", "archives"):
        data[key] = [files.resolve(ctx, principal, f"{key}[{i}]", ref) for i, ref in enumerate(getattr(req, key))]
    data["credentials"] = credentials.check_requested(ctx, principal, list(req.credentials))  # names only
    return data


def create(ctx: Context, principal: Principal, req: SessionRequest) -> SessionView:
    request = _validated(ctx, principal, req)
    backend = ctx.settings.backend
    ctx.backends.session(backend)  # Unsupported (422) before anything is written, when it cannot
    now = ctx.clock.now()
    idle = request.pop("idle_timeout_s")
    ttl = request.pop("ttl_s")
    with ctx.db.uow() as uow:
        if req.name and uow.sessions.active_named(principal.user_id, req.name) is not None:
            raise Conflict(f"Duplicate session name: '{req.name}' is already an active session of yours")
        if req.cluster_id is not None:
            clusters.for_work(uow, principal, req.cluster_id)
        row = uow.sessions.add(
            Session(
                uid=uuid.uuid4().hex,
                owner_id=principal.user_id,
                name=req.name,
                kind=request["kind"],
                state=SessionState.NOT_STARTED,
                backend=backend,
                request=request,
                heartbeat_timeout_s=req.heartbeatTimeoutInSecond,
                ttl_s=int(ttl) if ttl is not None else None,
                idle_timeout_s=int(idle) if idle is not None else None,
                last_activity_at=now,
                submitted_at=now,
                next_statement=0,
                cluster_id=req.cluster_id,
                version=0,
            ),
            now,
        )
        entry = dispatch.enqueue(uow, ctx, dispatch.LAUNCH_SESSION, row.id)
        result = view(row, principal.username)
    faults.point("api.session_created", ctx.settings.data_dir)
    dispatch.publish(ctx, [entry])
    return result


def spec_of(row: Session) -> SessionSpec:
    r = row.request
    return SessionSpec(
        kind=row.kind,
        name=row.name or f"session-{row.id}",
        jars=tuple(r.get("jars") or ()),
        py_files=tuple(r.get("pyFiles") or ()),
        files=tuple(r.get("files") or ()),
        archives=tuple(r.get("archives") or ()),
        conf=dict(r.get("conf") or {}),
        resources=Resources(
            r.get("driverMemory"),
            r.get("driverCores"),
            r.get("executorMemory"),
            r.get("executorCores"),
            r.get("numExecutors"),
        ),
        queue=r.get("queue"),
        proxy_user=r.get("proxyUser"),
    )


def owned(uow: UnitOfWork, principal: Principal, ref: str | int) -> Session:
    row = uow.sessions.find(str(ref), principal.owner_filter)
    if row is None:
        raise NotFound(f"Session '{ref}' not found.")
    return row


def get(ctx: Context, principal: Principal, ref: str | int, *, heartbeat: bool = False) -> SessionView:
    """One session; `heartbeat` records contact (Livy: every /sessions/{id}/… call is a heartbeat)."""
    with ctx.db.autocommit() as uow:  # a read and at most one stamp
        row = owned(uow, principal, ref)
        if heartbeat and row.heartbeat_timeout_s and row.state not in SESSION_TERMINAL:
            uow.sessions.touch_heartbeat(row.id, ctx.clock.now())
        return view(row, users.owner_name(uow, row.owner_id, principal))


def page(
    ctx: Context, principal: Principal, offset: int, limit: int, state: str | None = None
) -> tuple[list[SessionView], int]:
    if state is not None and state not in {s.value for s in SessionState}:
        raise InvalidInput(f"state must be one of {', '.join(s.value for s in SessionState)}")
    with ctx.db.uow() as uow:
        rows, total = uow.sessions.page(principal.owner_filter, offset, limit, state)
        names = (
            {u.id: u.username for u in uow.users.list()}
            if principal.is_admin
            else {principal.user_id: principal.username}
        )
        return [view(r, names.get(r.owner_id, "?")) for r in rows], total


def kill(
    ctx: Context,
    principal: Principal | None,
    ref: str | int,
    *,
    reason: str = FailureReason.USER_REQUEST,
    message: str = "stopped on request",
) -> SessionView:
    """Stop a session (idempotent). `principal` None is the system itself (cleanup, timeouts)."""
    now = ctx.clock.now()
    entries: list[int] = []
    with ctx.db.uow() as uow:
        if principal is None:
            row = uow.sessions.get(int(ref), for_update=True)
            if row is None:
                raise NotFound(f"Session '{ref}' not found.")
        else:
            row = owned(uow, principal, ref)
            row = uow.sessions.get(row.id, for_update=True) or row
        if row.state not in SESSION_TERMINAL:
            if row.state == SessionState.NOT_STARTED and row.handle is None:
                uow.sessions.transition(
                    row, SessionState.DEAD, now, reason=reason, message=message, cancel_requested_at=now
                )
            elif row.state != SessionState.SHUTTING_DOWN:
                uow.sessions.transition(
                    row, SessionState.SHUTTING_DOWN, now, reason=reason, message=message, cancel_requested_at=now
                )
                entries.append(dispatch.enqueue(uow, ctx, dispatch.STOP_SESSION, row.id))
        result = view(row, users.owner_name(uow, row.owner_id, principal))
    dispatch.publish(ctx, entries)
    return result


def log_page(ctx: Context, principal: Principal, ref: str | int, offset: int | None, size: int | None) -> LogPage:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, ref)
        if row.heartbeat_timeout_s and row.state not in SESSION_TERMINAL:
            uow.sessions.touch_heartbeat(row.id, ctx.clock.now())
    lines = read_log(ctx, row).splitlines()
    total = len(lines)
    size = 100 if size is None else size
    if size < 0:
        size = total
    start = max(0, total - size) if offset is None else max(0, offset)
    return LogPage(row.id, start, total, lines[start : start + size])


def read_log(ctx: Context, row: Session) -> str:
    if row.log_key is not None:
        return ctx.blobs.read_text(row.log_key) or ""
    if row.handle is None:
        return ""
    try:
        return ctx.backends.session(row.backend).fetch_logs(Handle.from_json(row.handle)) or ""
    except BackendError:
        return ""


def get_with_connect_url(ctx: Context, principal: Principal, ref: str | int) -> tuple[SessionView, str | None]:
    """One session (a heartbeat) and its Spark Connect URL, read in one transaction: the hot GET of clients
    polling their session."""
    with ctx.db.autocommit() as uow:  # a read and at most one stamp
        row = owned(uow, principal, ref)
        if row.heartbeat_timeout_s and row.state not in SESSION_TERMINAL:
            uow.sessions.touch_heartbeat(row.id, ctx.clock.now())
        found = view(row, users.owner_name(uow, row.owner_id, principal))
        backend, handle, owner_id, state = row.backend, row.handle, row.owner_id, row.state
    return found, _connect_url(ctx, principal, backend, handle, owner_id, state)


def _connect_url(
    ctx: Context, principal: Principal, backend: str, handle: dict[str, Any] | None, owner_id: int, state: str
) -> str | None:
    """The Spark Connect URL with its token, for the session's owner only (admins included: no)."""
    if (
        owner_id != principal.user_id
        or handle is None
        or state not in (SessionState.IDLE, SessionState.BUSY, SessionState.RECOVERING)
    ):
        return None
    try:
        return ctx.backends.session(backend).connect_url(Handle.from_json(handle))
    except BackendError:
        return None


def events(ctx: Context, principal: Principal, ref: str | int) -> list[dict[str, Any]]:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, ref)
        return [
            {
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
                "message": e.message,
                "at": e.created_at.isoformat(),
            }
            for e in uow.sessions.events(row.id)
        ]
