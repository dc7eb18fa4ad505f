"""Livy-compatible interactive sessions under /livy/sessions (livy-contract.md §1.2–1.5, §2.1–2.2).

Every /sessions/{id}/… call is a heartbeat. Statuses are Livy's: 201 + Location on create, 200 on cancel,
DELETE of a stopped session answers 404 {"msg": "Session {id} already stopped."}.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from sparkplane.api.deps import CtxDep, PrincipalDep, QuickDep
from sparkplane.api.errors import LIVY_ERRORS
from sparkplane.api.routers.livy import EMBEDDED_LOG_LINES
from sparkplane.api.schemas import LivyLog, LivyMessage, LivyState
from sparkplane.api.session_schemas import (
    Candidates,
    CompletionRequest,
    LivySession,
    LivySessionList,
    LivyStatement,
    LivyStatementList,
    SessionCreate,
    StatementCreate,
)
from sparkplane.domain.errors import NotFound
from sparkplane.domain.states import SESSION_TERMINAL
from sparkplane.services import sessions, statements
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from sparkplane.services.sessions import SessionView

router = APIRouter(prefix="/livy/sessions", tags=["livy"], responses=LIVY_ERRORS)


def _livy(ctx: Context, principal: Principal, view: SessionView) -> LivySession:
    tail = sessions.log_page(ctx, principal, view.id, None, EMBEDDED_LOG_LINES).lines
    return LivySession.of(view, tail)


@router.post("", status_code=201, response_model=LivySession)
def create(body: SessionCreate, ctx: CtxDep, principal: PrincipalDep, response: Response) -> LivySession:
    view = sessions.create(ctx, principal, body.to_request())
    response.headers["Location"] = f"/livy/sessions/{view.id}"
    return LivySession.of(view, [])


@router.get("", response_model=LivySessionList, response_model_by_alias=True)
def list_sessions(
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: int = Query(0, alias="from", ge=0),
    size: int = Query(100, ge=0, le=10_000),
) -> LivySessionList:
    views, total = sessions.page(ctx, principal, from_, size)
    return LivySessionList.model_validate(
        {"from": from_, "total": total, "sessions": [_livy(ctx, principal, v) for v in views]}
    )


@router.get("/{session_id}", response_model=LivySession)
def get(session_id: str, ctx: CtxDep, principal: PrincipalDep) -> LivySession:
    return _livy(ctx, principal, sessions.get(ctx, principal, session_id, heartbeat=True))


@router.get("/{session_id}/state", response_model=LivyState)
async def state(session_id: str, ctx: CtxDep, principal: PrincipalDep, quick: QuickDep) -> LivyState:
    view = await quick(sessions.get, ctx, principal, session_id, heartbeat=True)
    return LivyState(id=view.id, state=view.state.value)


@router.get("/{session_id}/log", response_model=LivyLog, response_model_by_alias=True)
def log(
    session_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: int | None = Query(None, alias="from", ge=0),
    size: int | None = Query(None),
) -> LivyLog:
    page = sessions.log_page(ctx, principal, session_id, from_, size)
    return LivyLog.model_validate({"id": page.id, "from": page.offset, "total": page.total, "log": page.lines})


@router.delete("/{session_id}", response_model=LivyMessage)
def delete(session_id: str, ctx: CtxDep, principal: PrincipalDep) -> LivyMessage:
    before = sessions.get(ctx, principal, session_id)
    if before.state in SESSION_TERMINAL:
        raise NotFound(f"Session {before.id} already stopped.")
    sessions.kill(ctx, principal, session_id)
    return LivyMessage(msg="deleted")


@router.post("/{session_id}/statements", status_code=201, response_model=LivyStatement)
def run(
    session_id: str, body: StatementCreate, ctx: CtxDep, principal: PrincipalDep, response: Response
) -> LivyStatement:
    view = statements.submit(ctx, principal, session_id, body.code, body.kind)
    response.headers["Location"] = f"/livy/sessions/{session_id}/statements/{view.id}"
    return LivyStatement.of(view)


@router.get("/{session_id}/statements", response_model=LivyStatementList)
def list_statements(
    session_id: str,
    ctx: CtxDep,
    principal: PrincipalDep,
    from_: int = Query(0, alias="from", ge=0),
    size: int = Query(100, ge=0, le=10_000),
    order: str | None = Query(None, pattern="^(asc|desc)$"),
) -> LivyStatementList:
    views, total = statements.page(ctx, principal, session_id, from_, size, descending=order == "desc")
    return LivyStatementList(total_statements=total, statements=[LivyStatement.of(v) for v in views])


@router.get("/{session_id}/statements/{statement_id}", response_model=LivyStatement)
def get_statement(session_id: str, statement_id: int, ctx: CtxDep, principal: PrincipalDep) -> LivyStatement:
    return LivyStatement.of(statements.get(ctx, principal, session_id, statement_id))


@router.post("/{session_id}/statements/{statement_id}/cancel", response_model=LivyMessage)
def cancel_statement(session_id: str, statement_id: int, ctx: CtxDep, principal: PrincipalDep) -> LivyMessage:
    statements.cancel(ctx, principal, session_id, statement_id)
    return LivyMessage(msg="canceled")


@router.post("/{session_id}/completion", response_model=Candidates)
def completion(session_id: str, body: CompletionRequest, ctx: CtxDep, principal: PrincipalDep) -> Candidates:
    return Candidates(candidates=statements.completion(ctx, principal, session_id, body.code, body.kind, body.cursor))
