"""Native interactive sessions under /api/v1/sessions: Livy's operations, clean REST, plus Spark Connect."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from sparkplane.api.deps import CtxDep, PrincipalDep, QuickDep
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.api.schemas import Event, LogLines
from sparkplane.api.session_schemas import (
    Candidates,
    CompletionRequest,
    NativeSession,
    NativeSessionPage,
    NativeStatement,
    NativeStatementPage,
    SessionCreate,
    StatementCreate,
)
from sparkplane.services import sessions, statements

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], responses=NATIVE_ERRORS)


@router.post("", status_code=201, response_model=NativeSession)
def create(body: SessionCreate, ctx: CtxDep, principal: PrincipalDep, response: Response) -> NativeSession:
    view = sessions.create(ctx, principal, body.to_request())
    response.headers["Location"] = f"/api/v1/sessions/{view.id}"
    return NativeSession.of(view)


@router.get("", response_model=NativeSessionPage)
def list_sessions(
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    state: str | None = Query(None, description="Only sessions in this state"),
) -> NativeSessionPage:
    views, total = sessions.page(ctx, principal, offset, limit, state)
    return NativeSessionPage(offset=offset, total=total, items=[NativeSession.of(v) for v in views])


@router.get("/{session_id}", response_model=NativeSession)
async def get(session_id: int, ctx: CtxDep, principal: PrincipalDep, quick: QuickDep) -> NativeSession:
    view, connect_url = await quick(sessions.get_with_connect_url, ctx, principal, session_id)
    return NativeSession.of(view, connect_url)


@router.delete("/{session_id}", response_model=NativeSession)
def kill(session_id: int, ctx: CtxDep, principal: PrincipalDep) -> NativeSession:
    return NativeSession.of(sessions.kill(ctx, principal, session_id))


@router.get("/{session_id}/log", response_model=LogLines)
def log(
    session_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int | None = Query(None, ge=0),
    limit: int | None = Query(None),
) -> LogLines:
    page = sessions.log_page(ctx, principal, session_id, offset, limit)
    return LogLines(id=page.id, offset=page.offset, total=page.total, lines=page.lines)


@router.get("/{session_id}/events", response_model=list[Event], response_model_by_alias=True)
def events(session_id: int, ctx: CtxDep, principal: PrincipalDep) -> list[Event]:
    return [Event.model_validate(e) for e in sessions.events(ctx, principal, session_id)]


@router.post("/{session_id}/statements", status_code=201, response_model=NativeStatement)
def run(
    session_id: int, body: StatementCreate, ctx: CtxDep, principal: PrincipalDep, response: Response
) -> NativeStatement:
    view = statements.submit(ctx, principal, session_id, body.code, body.kind)
    response.headers["Location"] = f"/api/v1/sessions/{session_id}/statements/{view.id}"
    return NativeStatement.of(view)


@router.get("/{session_id}/statements", response_model=NativeStatementPage)
def list_statements(
    session_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> NativeStatementPage:
    views, total = statements.page(ctx, principal, session_id, offset, limit)
    return NativeStatementPage(offset=offset, total=total, items=[NativeStatement.of(v) for v in views])


@router.get("/{session_id}/statements/{statement_id}", response_model=NativeStatement)
def get_statement(session_id: int, statement_id: int, ctx: CtxDep, principal: PrincipalDep) -> NativeStatement:
    return NativeStatement.of(statements.get(ctx, principal, session_id, statement_id))


@router.post("/{session_id}/statements/{statement_id}/cancel", response_model=NativeStatement)
def cancel_statement(session_id: int, statement_id: int, ctx: CtxDep, principal: PrincipalDep) -> NativeStatement:
    return NativeStatement.of(statements.cancel(ctx, principal, session_id, statement_id))


@router.post("/{session_id}/completion", response_model=Candidates)
def completion(session_id: int, body: CompletionRequest, ctx: CtxDep, principal: PrincipalDep) -> Candidates:
    return Candidates(candidates=statements.completion(ctx, principal, session_id, body.code, body.kind, body.cursor))
