"""Batches: submit, read, kill, logs. The API's two faces (native and Livy) both call these."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sparkplane.backends.base import BackendError, Handle
from sparkplane.db.models import Batch
from sparkplane.domain.errors import InvalidInput, NotFound
from sparkplane.domain.specs import BatchSpec, Resources, check_conf
from sparkplane.domain.states import BATCH_TERMINAL, BatchState, FailureReason
from sparkplane.services import clusters, credentials, dispatch, faults, files, users
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

LOG_PREFIX = "logs/batches"


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """A batch as a user asks for it, in Livy's vocabulary (the native face uses the same fields)."""

    file: str
    args: Sequence[str] = ()
    className: str | None = None  # noqa: N815  (Livy's wire names, kept so both faces share one type)
    name: str | None = None
    jars: Sequence[str] = ()
    pyFiles: Sequence[str] = ()  # noqa: N815
    files: Sequence[str] = ()
    archives: Sequence[str] = ()
    driverMemory: str | None = None  # noqa: N815
    driverCores: int | None = None  # noqa: N815
    executorMemory: str | None = None  # noqa: N815
    executorCores: int | None = None  # noqa: N815
    numExecutors: int | None = None  # noqa: N815
    conf: Mapping[str, str] = field(default_factory=dict)
    queue: str | None = None
    proxyUser: str | None = None  # noqa: N815
    cluster_id: int | None = None  # run on this cluster's master and workers
    credentials: Sequence[str] = ()  # names of the caller's stored credentials, resolved at launch


@dataclass(frozen=True, slots=True)
class BatchView:
    id: int
    uid: str
    name: str | None
    owner: str
    proxy_user: str | None
    state: BatchState
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


@dataclass(frozen=True, slots=True)
class LogPage:
    id: int
    offset: int
    total: int
    lines: list[str]


def _view(batch: Batch, owner: str) -> BatchView:
    return BatchView(
        id=batch.id,
        uid=batch.uid,
        name=batch.name,
        owner=owner,
        proxy_user=batch.request.get("proxyUser"),
        state=BatchState(batch.state),
        backend=batch.backend,
        app_id=batch.app_id,
        ui_url=batch.ui_url,
        native_state=batch.native_state,
        failure_reason=batch.failure_reason,
        message=batch.message,
        request=batch.request,
        submitted_at=batch.submitted_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
    )


def _validated(ctx: Context, principal: Principal, req: BatchRequest) -> dict[str, Any]:
    """Check every field and resolve every file now, so a bad request is refused before anything is written."""
    Resources(req.driverMemory, req.driverCores, req.executorMemory, req.executorCores, req.numExecutors)
    if req.name is not None and (not req.name.strip() or req.name.isdigit() or len(req.name) > 255):
        raise InvalidInput("name must be 1 to 255 characters and not only digits (digits name batches by id)")
    if req.proxyUser not in (None, principal.username) and not principal.is_admin:
        raise InvalidInput(f"proxyUser '{req.proxyUser}' is not you; only admins may submit as another user")
    data = asdict(req)
    data["conf"] = check_conf(req.conf)
    data["args"] = [str(a) for a in req.args]
    data["file"] = files.resolve(ctx, principal, "file", req.file)
    for key in ("jars", "pyFiles", "files", "archives"):
        data[key] = [files.resolve(ctx, principal, f"{key}[{i}]", ref) for i, ref in enumerate(getattr(req, key))]
    data["credentials"] = credentials.check_requested(ctx, principal, list(req.credentials))  # names only
    return data


def submit(ctx: Context, principal: Principal, req: BatchRequest) -> BatchView:
    request = _validated(ctx, principal, req)
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        if req.cluster_id is not None:
            clusters.for_work(uow, principal, req.cluster_id)
        batch = uow.batches.add(
            Batch(
                uid=uuid.uuid4().hex,
                owner_id=principal.user_id,
                name=req.name,
                state=BatchState.NOT_STARTED,
                backend=ctx.settings.backend,
                request=request,
                submitted_at=now,
                cluster_id=req.cluster_id,
                version=0,
            ),
            now,
        )
        entry = dispatch.enqueue(uow, ctx, dispatch.LAUNCH_BATCH, batch.id)
        view = _view(batch, principal.username)
    faults.point("api.batch_created", ctx.settings.data_dir)
    dispatch.publish(ctx, [entry])
    return view


def spec_of(batch: Batch) -> BatchSpec:
    r = batch.request
    return BatchSpec(
        file=r["file"],
        args=tuple(r.get("args") or ()),
        class_name=r.get("className"),
        name=batch.name or f"batch-{batch.id}",
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


def spec_of_request(ctx: Context, batch_id: int) -> BatchSpec:
    with ctx.db.uow() as uow:
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise NotFound(f"Batch '{batch_id}' not found.")
        return spec_of(batch)


def _owned(ctx: Context, principal: Principal | None, ref: str | int) -> tuple[Batch, str]:
    """The batch, as `principal` may see it; None is sparkplane itself, which sees every batch."""
    with ctx.db.autocommit() as uow:  # reads only
        batch = uow.batches.find(str(ref), principal.owner_filter if principal is not None else None)
        if batch is None:
            raise NotFound(f"Batch '{ref}' not found.")
        return batch, users.owner_name(uow, batch.owner_id, principal)


def get(ctx: Context, principal: Principal, ref: str | int) -> BatchView:
    return _view(*_owned(ctx, principal, ref))


def page(
    ctx: Context, principal: Principal, offset: int, limit: int, state: str | None = None
) -> tuple[list[BatchView], int]:
    if offset < 0 or limit < 0:
        raise InvalidInput("from and size must not be negative")
    if state is not None and state not in {s.value for s in BatchState}:
        raise InvalidInput(f"state must be one of {', '.join(s.value for s in BatchState)}")
    with ctx.db.uow() as uow:
        rows, total = uow.batches.page(principal.owner_filter, offset, limit, state)
        names = (
            {u.id: u.username for u in uow.users.list()}
            if principal.is_admin
            else {principal.user_id: principal.username}
        )
        return [_view(b, names.get(b.owner_id, "?")) for b in rows], total


def kill(
    ctx: Context, principal: Principal | None, ref: str | int, *, message: str = "killed before it started"
) -> BatchView:
    """Kill a batch. Idempotent: a finished batch stays as it is and the call succeeds.

    `principal` None is sparkplane itself (its cluster terminating)."""
    batch, owner = _owned(ctx, principal, ref)
    entries: list[int] = []
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = uow.batches.get(batch.id, for_update=True)
        assert row is not None
        if row.state in BATCH_TERMINAL:
            return _view(row, owner)
        if row.state == BatchState.NOT_STARTED and row.handle is None:
            # Not launched yet: nothing to stop on a backend. A launch racing this sees `killed` and stands down.
            uow.batches.transition(
                row,
                BatchState.KILLED,
                now,
                reason=FailureReason.USER_REQUEST,
                message=message,
                cancel_requested_at=now,
            )
        elif row.cancel_requested_at is None:
            uow.batches.set_fields(row, cancel_requested_at=now)
            entries.append(dispatch.enqueue(uow, ctx, dispatch.CANCEL_BATCH, row.id))
        view = _view(row, owner)
    if entries:
        faults.point("api.kill_requested", ctx.settings.data_dir)
    dispatch.publish(ctx, entries)
    return view


def log_page(ctx: Context, principal: Principal, ref: str | int, offset: int | None, size: int | None) -> LogPage:
    """Livy's paging: size defaults to 100, negative means all; from defaults to the tail."""
    batch, _ = _owned(ctx, principal, ref)
    lines = read_log(ctx, batch).splitlines()
    total = len(lines)
    size = 100 if size is None else size
    if size < 0:
        size = total
    start = max(0, total - size) if offset is None else max(0, offset)
    return LogPage(batch.id, start, total, lines[start : start + size])


def read_log(ctx: Context, batch: Batch) -> str:
    if batch.log_key is not None:
        return ctx.blobs.read_text(batch.log_key) or ""
    if batch.handle is None:
        return ""
    try:
        return ctx.backends.get(batch.backend).fetch_logs(Handle.from_json(batch.handle)) or ""
    except BackendError:
        return ""


def log_key(batch: Batch) -> str:
    return f"{LOG_PREFIX}/{batch.uid}/driver.log"


def events(ctx: Context, principal: Principal, ref: str | int) -> list[dict[str, Any]]:
    batch, _ = _owned(ctx, principal, ref)
    with ctx.db.uow() as uow:
        return [
            {
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
                "message": e.message,
                "at": e.created_at.isoformat(),
            }
            for e in uow.batches.events(batch.id)
        ]
