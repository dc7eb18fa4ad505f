"""Livy-compatible face under /livy: wire-compatible with Apache Livy 0.8/0.9 for batches.

See ../shared/reference/livy-contract.md. Status codes, field names and state names are Livy's exactly:
201 + Location on create, list key `sessions` even for batches, `total` in log pages, `{"msg": …}` errors.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from sparkplane import __version__
from sparkplane.api.deps import CtxDep, PrincipalDep, QuickDep
from sparkplane.api.errors import LIVY_ERRORS
from sparkplane.api.schemas import (
    BatchSubmit,
    LivyAppInfo,
    LivyBatch,
    LivyBatchList,
    LivyLog,
    LivyMessage,
    LivyState,
    LivyVersion,
)
from sparkplane.services import batches
from sparkplane.services.batches import BatchView
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

router = APIRouter(prefix="/livy", tags=["livy"], responses=LIVY_ERRORS)
EMBEDDED_LOG_LINES = 10  # Livy embeds the last 10 log lines in a session or batch view


def _livy_batch(ctx: Context, principal: Principal, view: BatchView) -> LivyBatch:
    tail = batches.log_page(ctx, principal, view.id, None, EMBEDDED_LOG_LINES).lines
    return LivyBatch(
        id=view.id,
        name=view.name,
        owner=view.owner,
        proxyUser=view.proxy_user,
        state=view.state.value,
        appId=view.app_id,
        appInfo=LivyAppInfo(driverLogUrl=None, sparkUiUrl=view.ui_url),
        log=tail,
    )


@router.get("/version", response_model=LivyVersion)
def version(_: PrincipalDep) -> LivyVersion:
    # pylivy parses `version` and treats < 0.5 as legacy; we speak 0.9's protocol.
    return LivyVersion(
        version="0.9.0",
        user="sparkplane",
        revision=__version__,
        branch="sparkplane",
        date="",
        url="https://sparkplane.invalid",
    )


@router.post("/batches", status_code=201, response_model=LivyBatch)
def create_batch(body: BatchSubmit, ctx: CtxDep, principal: PrincipalDep, response: Response) -> LivyBatch:
    view = batches.submit(ctx, principal, body.to_request())
    response.headers["Location"] = f"/livy/batches/{view.id}"
    return _livy_batch(ctx, principal, view)


@router.get("/batches", response_model=LivyBatchList, response_model_by_alias=True)
def list_batches(
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: int = Query(0, alias="from", ge=0),
    size: int = Query(100, ge=0, le=10_000),
) -> LivyBatchList:
    views, total = batches.page(ctx, principal, from_, size)
    return LivyBatchList.model_validate(
        {"from": from_, "total": total, "sessions": [_livy_batch(ctx, principal, v) for v in views]}
    )


@router.get("/batches/{batch_id}", response_model=LivyBatch)
def get_batch(batch_id: str, ctx: CtxDep, principal: PrincipalDep) -> LivyBatch:
    return _livy_batch(ctx, principal, batches.get(ctx, principal, batch_id))


@router.get("/batches/{batch_id}/state", response_model=LivyState)
async def batch_state(batch_id: str, ctx: CtxDep, principal: PrincipalDep, quick: QuickDep) -> LivyState:
    view = await quick(batches.get, ctx, principal, batch_id)
    return LivyState(id=view.id, state=view.state.value)


@router.get("/batches/{batch_id}/log", response_model=LivyLog, response_model_by_alias=True)
def batch_log(
    batch_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: int | None = Query(None, alias="from", ge=0),
    size: int | None = Query(None),
) -> LivyLog:
    page = batches.log_page(ctx, principal, batch_id, from_, size)
    return LivyLog.model_validate({"id": page.id, "from": page.offset, "total": page.total, "log": page.lines})


@router.delete("/batches/{batch_id}", response_model=LivyMessage)
def delete_batch(batch_id: str, ctx: CtxDep, principal: PrincipalDep) -> LivyMessage:
    batches.kill(ctx, principal, batch_id)
    return LivyMessage(msg="deleted")
