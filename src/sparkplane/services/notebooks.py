"""Notebooks and their cells: create, read, rename, move, delete, edit cells, import and export files.

Running them (attach, run, cancel) is notebook_runs.py; reading a notebook first brings its running cells
up to date from their statements, so a page that polls the notebook sees progress and outputs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sparkplane.db.models import Notebook, NotebookCell
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, InvalidInput, NotFound
from sparkplane.domain.notebook_formats import from_ipynb, from_py, to_ipynb, to_py
from sparkplane.domain.notebooks import (
    ACTIVE_CELL,
    MAX_CELLS,
    CellDoc,
    CellKind,
    CellState,
    NotebookDoc,
    capped_output,
    cell_kind,
    check_name,
    check_source,
)
from sparkplane.services import notebook_runs, sessions, workspace
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from sparkplane.services.workspace import KEEP, _Keep

FORMATS = {"ipynb": ("application/x-ipynb+json", ".ipynb"), "py": ("text/x-python", ".py")}


@dataclass(frozen=True, slots=True)
class CellView:
    id: int
    position: int
    kind: str
    source: str
    state: str
    session_id: int | None
    statement_id: int | None
    output: dict[str, Any] | None
    execution_count: int | None
    progress: float
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NotebookView:
    id: int
    name: str
    folder_id: int | None
    owner: str
    session_id: int | None
    session_state: str | None
    cluster_id: int | None
    owns_session: bool
    running_all: bool
    cells: list[CellView]
    created_at: dt.datetime
    updated_at: dt.datetime


def cell_view(row: NotebookCell) -> CellView:
    return CellView(
        row.id,
        row.position,
        row.kind,
        row.source,
        row.state,
        row.statement_session_id,
        row.statement_number,
        row.output,
        row.execution_count,
        row.progress,
        row.updated_at,
    )


def owned(uow: UnitOfWork, principal: Principal, notebook_id: int, *, for_update: bool = False) -> Notebook:
    row = uow.workspace.notebook(notebook_id, principal.owner_filter, for_update=for_update)
    if row is None:
        raise NotFound(f"Notebook {notebook_id} not found.")
    return row


def _view(uow: UnitOfWork, principal: Principal, row: Notebook) -> NotebookView:
    session = uow.sessions.get(row.session_id) if row.session_id is not None else None
    names = workspace.owner_names(uow, principal)
    return NotebookView(
        id=row.id,
        name=row.name,
        folder_id=row.folder_id,
        owner=names.get(row.owner_id, "?"),
        session_id=row.session_id,
        session_state=session.state if session is not None else None,
        cluster_id=session.cluster_id if session is not None else None,
        owns_session=row.owns_session,
        running_all=bool(row.run_queue),
        cells=[cell_view(c) for c in uow.workspace.cells(row.id)],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _new_cell(notebook_id: int, position: int, doc: CellDoc, now: dt.datetime) -> NotebookCell:
    has_output = doc.output is not None and doc.kind != CellKind.MARKDOWN
    state = CellState.IDLE
    if has_output:
        state = CellState.ERROR if doc.output and doc.output.get("status") == "error" else CellState.DONE
    return NotebookCell(
        notebook_id=notebook_id,
        position=position,
        kind=doc.kind,
        source=check_source(doc.source),
        state=state,
        output=capped_output(doc.output, doc.execution_count) if has_output else None,
        execution_count=doc.execution_count if doc.kind != CellKind.MARKDOWN else None,
        progress=1.0 if has_output else 0.0,
        updated_at=now,
    )


def _add(
    uow: UnitOfWork, principal: Principal, doc: NotebookDoc, folder_id: int | None, now: dt.datetime, *, rename: bool
) -> Notebook:
    name = check_name(doc.name, "notebook")
    owner_id = workspace.place(uow, principal, folder_id)
    if rename:  # imports never fail on a taken name: 'report (2)', 'report (3)'…
        base, n = name, 1
        while uow.workspace.name_taken(owner_id, folder_id, name):
            n += 1
            name = check_name(f"{base[: 255 - 8]} ({n})", "notebook")
    workspace.check_free(uow, owner_id, folder_id, name)
    row = uow.workspace.add_notebook(
        Notebook(
            owner_id=owner_id,
            folder_id=folder_id,
            name=name,
            owns_session=False,
            created_at=now,
            updated_at=now,
            version=0,
        )
    )
    uow.workspace.add_cells([_new_cell(row.id, i, cell, now) for i, cell in enumerate(doc.cells)])
    return row


def create(ctx: Context, principal: Principal, doc: NotebookDoc, folder_id: int | None) -> NotebookView:
    with ctx.db.uow() as uow:
        return _view(uow, principal, _add(uow, principal, doc, folder_id, ctx.clock.now(), rename=False))


def get(ctx: Context, principal: Principal, notebook_id: int) -> NotebookView:
    with ctx.db.uow() as uow:
        owned(uow, principal, notebook_id)
    notebook_runs.advance(ctx, notebook_id)
    with ctx.db.uow() as uow:
        return _view(uow, principal, owned(uow, principal, notebook_id))


def visible(ctx: Context, principal: Principal, notebook_id: int) -> bool:
    with ctx.db.uow() as uow:
        return uow.workspace.notebook(notebook_id, principal.owner_filter) is not None


def update(
    ctx: Context, principal: Principal, notebook_id: int, *, name: str | None, folder_id: int | None | _Keep = KEEP
) -> NotebookView:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, notebook_id, for_update=True)
        current = (row.name, row.folder_id)
        change = workspace.relocation(uow, principal, row.owner_id, current, name, folder_id, "notebook")
        if change is not None:
            uow.workspace.set_notebook(row, name=change[0], folder_id=change[1], updated_at=ctx.clock.now())
        return _view(uow, principal, row)


def delete(ctx: Context, principal: Principal, notebook_id: int) -> None:
    """The notebook and its cells; the session it made for itself is stopped, one it borrowed is not."""
    with ctx.db.uow() as uow:
        row = owned(uow, principal, notebook_id, for_update=True)
        own_session = row.session_id if row.owns_session else None
        uow.workspace.delete_notebook(row)
    if own_session is not None:
        sessions.kill(ctx, None, own_session, message="its notebook was deleted")


# cells -------------------------------------------------------------------------------------------------


def _cell(uow: UnitOfWork, notebook_id: int, cell_id: int) -> NotebookCell:
    cell = uow.workspace.cell(notebook_id, cell_id)
    if cell is None:
        raise NotFound(f"Cell {cell_id} not found in notebook {notebook_id}.")
    return cell


def _check_index(index: int, size: int) -> int:
    if not 0 <= index <= size:
        raise InvalidInput(f"index must be between 0 and {size} (the number of cells)")
    return index


def add_cell(
    ctx: Context, principal: Principal, notebook_id: int, kind: str, source: str, index: int | None
) -> CellView:
    doc = CellDoc(cell_kind(kind), check_source(source))
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = owned(uow, principal, notebook_id, for_update=True)
        cells = list(uow.workspace.cells(row.id))
        if len(cells) >= MAX_CELLS:
            raise Conflict(f"notebook {notebook_id} already has {MAX_CELLS} cells, the most one can have")
        at = len(cells) if index is None else _check_index(index, len(cells))
        cell = _new_cell(row.id, at, doc, now)
        uow.workspace.add_cells([cell])
        uow.workspace.set_positions([*cells[:at], cell, *cells[at:]])
        uow.workspace.set_notebook(row, updated_at=now)
        return cell_view(cell)


def update_cell(
    ctx: Context,
    principal: Principal,
    notebook_id: int,
    cell_id: int,
    *,
    source: str | None,
    kind: str | None,
    index: int | None,
) -> CellView:
    """Edit the source or kind, or move the cell to `index` (0 is the top)."""
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = owned(uow, principal, notebook_id, for_update=True)
        cell = _cell(uow, row.id, cell_id)
        values: dict[str, Any] = {}
        if source is not None:
            values["source"] = check_source(source)
        if kind is not None and kind != cell.kind:
            if cell.state in ACTIVE_CELL:
                raise Conflict(f"cell {cell_id} is {cell.state}: cancel it before changing its kind")
            values.update(kind=cell_kind(kind), state=CellState.IDLE, output=None, execution_count=None, progress=0.0)
        if values:
            uow.workspace.set_cell(cell, updated_at=now, **values)
        if index is not None:
            others = [c for c in uow.workspace.cells(row.id) if c.id != cell.id]
            at = _check_index(index, len(others))
            uow.workspace.set_positions([*others[:at], cell, *others[at:]])
        uow.workspace.set_notebook(row, updated_at=now)
        return cell_view(cell)


def delete_cell(ctx: Context, principal: Principal, notebook_id: int, cell_id: int) -> None:
    with ctx.db.uow() as uow:
        row = owned(uow, principal, notebook_id, for_update=True)
        cell = _cell(uow, row.id, cell_id)
        if cell.state in ACTIVE_CELL:
            raise Conflict(f"cell {cell_id} is {cell.state}: cancel it before deleting it")
        uow.workspace.delete_cell(cell)
        uow.workspace.set_positions(list(uow.workspace.cells(row.id)))
        uow.workspace.set_notebook(row, updated_at=ctx.clock.now())


# files -------------------------------------------------------------------------------------------------


def parse_file(filename: str, content: bytes, file_format: str | None) -> NotebookDoc:
    """A notebook from an uploaded file; the format is `ipynb` or `py`, by default from the file's name."""
    stem, dot, ext = filename.rpartition(".")
    chosen = file_format or (ext.lower() if dot else "")
    if chosen not in FORMATS:
        raise InvalidInput(f"cannot tell the format of '{filename}': name it .ipynb or .py, or pass format=ipynb|py")
    name = (stem if dot else filename).rsplit("/", 1)[-1].strip() or "Imported notebook"
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"'{filename}' is not UTF-8 text") from None
    if chosen == "py":
        return from_py(text, default_name=name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"'{filename}' is not valid JSON (line {exc.lineno}: {exc.msg}), so not an .ipynb") from None
    return from_ipynb(data, default_name=name)


def import_file(
    ctx: Context,
    principal: Principal,
    filename: str,
    content: bytes,
    *,
    file_format: str | None,
    folder_id: int | None,
    name: str | None,
) -> NotebookView:
    doc = parse_file(filename, content, file_format)
    if name is not None:
        doc = NotebookDoc(name, doc.cells)
    with ctx.db.uow() as uow:
        return _view(uow, principal, _add(uow, principal, doc, folder_id, ctx.clock.now(), rename=True))


def export(ctx: Context, principal: Principal, notebook_id: int, file_format: str) -> tuple[str, str, bytes]:
    """(file name, media type, content) of the notebook as .ipynb (with outputs) or .py (sources only)."""
    if file_format not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not '{file_format}'")
    view = get(ctx, principal, notebook_id)
    doc = NotebookDoc(
        view.name,
        tuple(CellDoc(CellKind(c.kind), c.source, c.output, c.execution_count) for c in view.cells),
    )
    media_type, suffix = FORMATS[file_format]
    content = json.dumps(to_ipynb(doc), indent=1, ensure_ascii=False) + "\n" if file_format == "ipynb" else to_py(doc)
    return view.name + suffix, media_type, content.encode()
