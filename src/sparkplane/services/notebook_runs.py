"""Running notebooks: attach to a session, run a cell or all of them, cancel, clear outputs, keep cells current.

A cell runs as one statement of the notebook's session (pyspark -> kind pyspark, sql -> kind sql). Its
state, progress and, once the statement is final, its output are copied into the cell by `advance`, which
every read of the notebook and every interactive-watcher pass calls: so outputs outlive the session and a
reload shows them. Run all keeps a queue on the notebook and gives the agent one cell at a time, so the
first error stops the rest (cells queued after it go back to idle, never run).

Code runs with the owner's data credentials (they are in the session's Spark configuration), so only the
notebook's owner attaches it and runs its cells; admins read, cancel, clear, detach and delete.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparkplane.backends.base import Handle
from sparkplane.db.models import Notebook, NotebookCell, Session
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from sparkplane.domain.notebooks import (
    ACTIVE_CELL,
    CODE_KINDS,
    CellState,
    capped_output,
    cell_state_of,
    session_ended_output,
)
from sparkplane.domain.states import SESSION_TERMINAL, STATEMENT_TERMINAL, SessionState, StatementState
from sparkplane.services import sessions, statements
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from sparkplane.services.sessions import SessionRequest

log = logging.getLogger(__name__)
_GONE = (*SESSION_TERMINAL, SessionState.SHUTTING_DOWN)


@dataclass(frozen=True, slots=True)
class _Submitted:
    session_id: int
    backend: str
    handle: dict[str, Any] | None
    state: SessionState
    number: int


def _notebook(uow: UnitOfWork, principal: Principal, notebook_id: int) -> Notebook:
    row = uow.workspace.notebook(notebook_id, principal.owner_filter, for_update=True)
    if row is None:
        raise NotFound(f"Notebook {notebook_id} not found.")
    return row


def _require_owner(row: Notebook, principal: Principal) -> None:
    if row.owner_id != principal.user_id:
        raise Forbidden(f"only the owner of notebook {row.id} can attach it and run its cells; admins can read it")


def _live_session(uow: UnitOfWork, row: Notebook) -> Session:
    session = uow.sessions.get(row.session_id) if row.session_id is not None else None
    if session is None or session.state in _GONE:
        why = (
            "is not attached" if session is None else f"was attached to session {session.id}, which is {session.state}"
        )
        raise Conflict(f"notebook {row.id} {why}: attach it to a cluster or a new session first")
    return session


def attach(
    ctx: Context, principal: Principal, notebook_id: int, *, cluster_id: int | None, session_id: int | None
) -> None:
    """Give the notebook a session: a new one (on the cluster, if given), or one of the caller's own."""
    if cluster_id is not None and session_id is not None:
        raise InvalidInput("give cluster_id (a new session on that cluster) or session_id (an existing one), not both")
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        _require_owner(row, principal)
        current = uow.sessions.get(row.session_id) if row.session_id is not None else None
        if current is not None and current.state not in _GONE:
            raise Conflict(f"notebook {notebook_id} is attached to session {current.id}: detach it first")
        if session_id is not None:
            borrowed = sessions.owned(uow, principal, session_id)
            if borrowed.owner_id != principal.user_id or borrowed.state in _GONE:
                raise Conflict(f"session {session_id} is not a live session of yours")
            uow.workspace.set_notebook(row, session_id=borrowed.id, owns_session=False, updated_at=ctx.clock.now())
            return
    # A shared session: each statement says its kind, so pyspark and sql cells run in the same Spark session.
    made = sessions.create(ctx, principal, SessionRequest(kind="shared", cluster_id=cluster_id))
    with ctx.db.uow() as uow:
        again = uow.workspace.notebook(notebook_id, None, for_update=True)
        current = uow.sessions.get(again.session_id) if again is not None and again.session_id is not None else None
        if again is not None and (current is None or current.state in _GONE):
            uow.workspace.set_notebook(again, session_id=made.id, owns_session=True, updated_at=ctx.clock.now())
            return
    sessions.kill(ctx, None, made.id, message="its notebook was deleted or attached elsewhere meanwhile")
    if again is None:
        raise NotFound(f"Notebook {notebook_id} not found.")
    raise Conflict(f"notebook {notebook_id} was attached to another session meanwhile")


def detach(ctx: Context, principal: Principal, notebook_id: int) -> None:
    """Forget the session; stop it when the notebook made it. Cells keep their outputs."""
    advance(ctx, notebook_id)
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        ended = row.session_id if row.owns_session else None
        _drop_queue(uow, row, ctx)
        uow.workspace.set_notebook(row, session_id=None, owns_session=False, updated_at=ctx.clock.now())
    if ended is not None:
        sessions.kill(ctx, None, ended, message="its notebook was detached")
    advance(ctx, notebook_id)


def run_cell(ctx: Context, principal: Principal, notebook_id: int, cell_id: int) -> None:
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        _require_owner(row, principal)
        cell = uow.workspace.cell(row.id, cell_id)
        if cell is None:
            raise NotFound(f"Cell {cell_id} not found in notebook {notebook_id}.")
        if cell.kind not in CODE_KINDS:
            raise InvalidInput(f"cell {cell_id} is {cell.kind}: only pyspark and sql cells run")
        if cell.state in ACTIVE_CELL and cell.statement_number is not None:
            raise Conflict(f"cell {cell_id} is already {cell.state}: wait for it or cancel it")
        submitted = _submit(uow, ctx, _live_session(uow, row), cell)
    _hand_over(ctx, [submitted])


def run_all(ctx: Context, principal: Principal, notebook_id: int) -> None:
    """Queue every code cell in order; advance gives them to the agent one at a time."""
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        _require_owner(row, principal)
        _live_session(uow, row)
        cells = list(uow.workspace.cells(row.id))
        if any(c.state in ACTIVE_CELL for c in cells):
            raise Conflict(f"notebook {notebook_id} is running cells: wait for them or cancel them first")
        queue = [c.id for c in cells if c.kind in CODE_KINDS]
        for cell in cells:
            if cell.id in queue:
                _reset(uow, cell, CellState.QUEUED, now)
        uow.workspace.set_notebook(row, run_queue=queue or None, updated_at=now)
    advance(ctx, notebook_id)


def cancel(ctx: Context, principal: Principal, notebook_id: int) -> None:
    """Stop what runs and drop what is queued."""
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        _drop_queue(uow, row, ctx)
        running = [
            (c.statement_session_id, c.statement_number)
            for c in uow.workspace.cells(row.id)
            if c.state in ACTIVE_CELL and c.statement_session_id is not None and c.statement_number is not None
        ]
    unreachable = []
    for session_id, number in running:
        try:
            statements.cancel(ctx, principal, session_id, number)
        except NotFound:
            continue  # the statement's session is gone: advance marks the cell
        except Unavailable as exc:
            unreachable.append(exc.message)
    advance(ctx, notebook_id)
    if unreachable:
        raise Unavailable("; ".join(unreachable))


def clear_outputs(ctx: Context, principal: Principal, notebook_id: int) -> None:
    """Every cell that is not running back to idle, without output (running ones keep running)."""
    with ctx.db.uow() as uow:
        row = _notebook(uow, principal, notebook_id)
        uow.workspace.clear_outputs(row.id, list(ACTIVE_CELL), ctx.clock.now())
        uow.workspace.set_notebook(row, updated_at=ctx.clock.now())


def _reset(uow: UnitOfWork, cell: NotebookCell, state: CellState, now: dt.datetime) -> None:
    uow.workspace.set_cell(
        cell,
        state=state,
        output=None,
        execution_count=None,
        progress=0.0,
        statement_session_id=None,
        statement_number=None,
        updated_at=now,
    )


def _drop_queue(uow: UnitOfWork, row: Notebook, ctx: Context) -> None:
    """Cells waiting in a run-all queue and not yet given to the agent go back to idle."""
    for cell in uow.workspace.cells(row.id):
        if cell.state == CellState.QUEUED and cell.statement_number is None:
            _reset(uow, cell, CellState.IDLE, ctx.clock.now())
    if row.run_queue:
        uow.workspace.set_notebook(row, run_queue=None)


def _submit(uow: UnitOfWork, ctx: Context, session: Session, cell: NotebookCell) -> _Submitted:
    now = ctx.clock.now()
    statement = statements.add(uow, session, cell.source, cell.kind, now)
    _reset(uow, cell, CellState.QUEUED, now)
    uow.workspace.set_cell(cell, statement_session_id=session.id, statement_number=statement.number)
    return _Submitted(session.id, session.backend, session.handle, SessionState(session.state), statement.number)


def _hand_over(ctx: Context, submitted: Sequence[_Submitted]) -> None:
    for s in submitted:
        statements.hand_over_if_ready(ctx, s.session_id, s.backend, s.handle, s.state, s.number)


def advance(ctx: Context, notebook_id: int) -> None:
    """Bring running cells up to date from their statements, and give run all's next cell to the agent."""
    _refresh_statements(ctx, notebook_id)
    with ctx.db.uow() as uow:
        row = uow.workspace.notebook(notebook_id, None, for_update=True)
        if row is None:
            return
        cells = list(uow.workspace.cells(row.id))
        for cell in cells:
            if cell.state in ACTIVE_CELL and cell.statement_number is not None:
                _copy_statement(uow, ctx, cell)
        submitted = _next_of_queue(uow, ctx, row, cells)
    _hand_over(ctx, submitted)


def _refresh_statements(ctx: Context, notebook_id: int) -> None:
    """Ask the agents about this notebook's unfinished statements (the watcher does too; reads are quicker)."""
    with ctx.db.uow() as uow:
        live = []
        for cell in uow.workspace.cells(notebook_id):
            if cell.state not in ACTIVE_CELL or cell.statement_session_id is None or cell.statement_number is None:
                continue
            session = uow.sessions.get(cell.statement_session_id)
            statement = uow.statements.get(cell.statement_session_id, cell.statement_number)
            if session is None or session.handle is None or statement is None:
                continue
            if statement.submitted and statement.state not in STATEMENT_TERMINAL and session.state not in _GONE:
                live.append((session.id, session.backend, session.handle, statement.number))
    for session_id, backend, handle, number in live:
        statements.refresh(ctx, session_id, backend, Handle.from_json(handle), number)


def _copy_statement(uow: UnitOfWork, ctx: Context, cell: NotebookCell) -> None:
    assert cell.statement_session_id is not None and cell.statement_number is not None
    statement = uow.statements.get(cell.statement_session_id, cell.statement_number)
    session = uow.sessions.get(cell.statement_session_id)
    count = cell.statement_number + 1  # Jupyter counts from 1, Livy numbers statements from 0
    now = ctx.clock.now()
    if statement is None or (
        session is not None and session.state in SESSION_TERMINAL and statement.state not in STATEMENT_TERMINAL
    ):
        uow.workspace.set_cell(
            cell, state=CellState.ERROR, output=session_ended_output(count), execution_count=count, updated_at=now
        )
        return
    state = StatementState(statement.state)
    target = cell_state_of(state, statement.output)
    if state in STATEMENT_TERMINAL:
        output = capped_output(statement.output, count) if state == StatementState.AVAILABLE else None
        uow.workspace.set_cell(
            cell, state=target, output=output, execution_count=count, progress=statement.progress, updated_at=now
        )
    elif (target, statement.progress) != (cell.state, cell.progress):
        uow.workspace.set_cell(cell, state=target, progress=statement.progress, updated_at=now)


def _next_of_queue(uow: UnitOfWork, ctx: Context, row: Notebook, cells: list[NotebookCell]) -> list[_Submitted]:
    queue = list(row.run_queue or [])
    by_id = {c.id: c for c in cells}
    submitted: list[_Submitted] = []
    while queue:
        head = by_id.get(queue[0])
        if head is None or head.state == CellState.DONE and head.statement_number is not None:
            queue.pop(0)  # deleted meanwhile, or finished well: on to the next
            continue
        if head.state in (CellState.ERROR, CellState.CANCELLED) or (head.state == CellState.IDLE):
            for cell_id in queue[1:]:  # the first error stops the rest
                if (cell := by_id.get(cell_id)) is not None and cell.statement_number is None:
                    _reset(uow, cell, CellState.IDLE, ctx.clock.now())
            queue = []
            break
        if head.statement_number is not None:
            break  # still running
        if any(c.state in ACTIVE_CELL and c.statement_number is not None for c in cells):
            break  # a single cell run meanwhile goes first
        session = uow.sessions.get(row.session_id) if row.session_id is not None else None
        if session is None or session.state in _GONE:
            for cell_id in queue:
                if (cell := by_id.get(cell_id)) is not None and cell.statement_number is None:
                    _reset(uow, cell, CellState.IDLE, ctx.clock.now())
            queue = []
            break
        submitted.append(_submit(uow, ctx, session, head))
        break
    if queue != list(row.run_queue or []):
        uow.workspace.set_notebook(row, run_queue=queue or None)
    return submitted


def watcher_pass(ctx: Context) -> int:
    """One pass of the interactive watcher over notebooks with running or queued cells."""
    with ctx.db.uow() as uow:
        due = uow.workspace.with_work([s.value for s in ACTIVE_CELL], ctx.settings.reconcile_batch_size)
    for notebook_id in due:
        try:
            advance(ctx, notebook_id)
        except Exception:  # one bad notebook never stops the loop
            log.exception("notebook %s: advancing its cells failed; will retry", notebook_id)
    return len(due)
