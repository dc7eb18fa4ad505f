"""Native batches under /api/v1/batches."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from sparkplane.api.deps import CtxDep, PrincipalDep, QuickDep
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.api.schemas import Batch, BatchPage, BatchSubmit, Event, LogLines
from sparkplane.services import batches

router = APIRouter(prefix="/api/v1/batches", tags=["batches"], responses=NATIVE_ERRORS)


@router.post("", status_code=201, response_model=Batch)
def submit(body: BatchSubmit, ctx: CtxDep, principal: PrincipalDep, response: Response) -> Batch:
    view = batches.submit(ctx, principal, body.to_request())
    response.headers["Location"] = f"/api/v1/batches/{view.id}"
    return Batch.of(view)


@router.get("", response_model=BatchPage)
def list_batches(
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    state: str | None = Query(None, description="Only batches in this state"),
) -> BatchPage:
    views, total = batches.page(ctx, principal, offset, limit, state)
    return BatchPage(offset=offset, total=total, items=[Batch.of(v) for v in views])


@router.get("/{batch_id}", response_model=Batch)
async def get(batch_id: int, ctx: CtxDep, principal: PrincipalDep, quick: QuickDep) -> Batch:
    return Batch.of(await quick(batches.get, ctx, principal, batch_id))


@router.get("/{batch_id}/log", response_model=LogLines)
def log(
    batch_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int | None = Query(None, ge=0, description="First line; default: the tail"),
    limit: int | None = Query(None, description="Lines to return; default 100, negative for all"),
) -> LogLines:
    page = batches.log_page(ctx, principal, batch_id, offset, limit)
    return LogLines(id=page.id, offset=page.offset, total=page.total, lines=page.lines)


@router.get("/{batch_id}/events", response_model=list[Event], response_model_by_alias=True)
def events(batch_id: int, ctx: CtxDep, principal: PrincipalDep) -> list[Event]:
    return [Event.model_validate(e) for e in batches.events(ctx, principal, batch_id)]


@router.delete("/{batch_id}", response_model=Batch)
def kill(batch_id: int, ctx: CtxDep, principal: PrincipalDep) -> Batch:
    return Batch.of(batches.kill(ctx, principal, batch_id))
