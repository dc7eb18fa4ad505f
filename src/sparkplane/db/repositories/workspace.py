"""Folders, notebooks and cells of users' workspaces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparkplane.db.models import Notebook, NotebookCell, WorkspaceFolder
from sparkplane.db.repositories import _ids
from sparkplane.domain.errors import Conflict


def _key(folder_id: int | None) -> int:
    return folder_id or 0


class WorkspaceRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    # folders -------------------------------------------------------------------------------------------

    def folder(self, folder_id: int, owner_id: int | None, *, for_update: bool = False) -> WorkspaceFolder | None:
        if not _ids.storable(folder_id):
            return None
        query = select(WorkspaceFolder).where(WorkspaceFolder.id == folder_id)
        if owner_id is not None:
            query = query.where(WorkspaceFolder.owner_id == owner_id)
        if for_update:
            query = query.with_for_update()
        return self.db.scalar(query)

    def folders(self, owner_id: int | None) -> Sequence[WorkspaceFolder]:
        query = select(WorkspaceFolder).order_by(WorkspaceFolder.name, WorkspaceFolder.id)
        if owner_id is not None:
            query = query.where(WorkspaceFolder.owner_id == owner_id)
        return self.db.scalars(query).all()

    def add_folder(self, folder: WorkspaceFolder) -> WorkspaceFolder:
        folder.parent_key = _key(folder.parent_id)
        self.db.add(folder)
        self._flush(f"a folder named '{folder.name}' is already there")
        return folder

    def set_folder(self, folder: WorkspaceFolder, **values: Any) -> None:
        if "parent_id" in values:
            values["parent_key"] = _key(values["parent_id"])
        for name, value in values.items():
            setattr(folder, name, value)
        self._flush(f"a folder named '{folder.name}' is already there")

    def ancestors(self, folder_id: int) -> list[int]:
        """The folder and every folder above it (a tree is shallow: one query per level is fine)."""
        chain: list[int] = []
        current: int | None = folder_id
        while current is not None and current not in chain:
            chain.append(current)
            current = self.db.scalar(select(WorkspaceFolder.parent_id).where(WorkspaceFolder.id == current))
        return chain

    def children_count(self, folder_id: int) -> int:
        folders = select(func.count()).where(WorkspaceFolder.parent_id == folder_id)
        notebooks = select(func.count()).where(Notebook.folder_id == folder_id)
        return int(self.db.scalar(folders) or 0) + int(self.db.scalar(notebooks) or 0)

    def subtree(self, folder_id: int) -> list[int]:
        """The folder and every folder below it."""
        found, frontier = [folder_id], [folder_id]
        while frontier:
            frontier = list(self.db.scalars(select(WorkspaceFolder.id).where(WorkspaceFolder.parent_id.in_(frontier))))
            found += frontier
        return found

    def delete_folder(self, folder: WorkspaceFolder) -> None:
        """With everything in it (the foreign keys cascade: folders, notebooks, cells)."""
        self.db.delete(folder)
        self.db.flush()

    def name_taken(self, owner_id: int, folder_id: int | None, name: str) -> bool:
        """Whether a folder or a notebook of this name is already in that folder: they share one namespace."""
        key = _key(folder_id)
        folder = select(WorkspaceFolder.id).where(
            WorkspaceFolder.owner_id == owner_id, WorkspaceFolder.parent_key == key, WorkspaceFolder.name == name
        )
        notebook = select(Notebook.id).where(
            Notebook.owner_id == owner_id, Notebook.folder_key == key, Notebook.name == name
        )
        return self.db.scalar(folder.limit(1)) is not None or self.db.scalar(notebook.limit(1)) is not None

    # notebooks -----------------------------------------------------------------------------------------

    def notebook(self, notebook_id: int, owner_id: int | None, *, for_update: bool = False) -> Notebook | None:
        if not _ids.storable(notebook_id):
            return None
        query = select(Notebook).where(Notebook.id == notebook_id)
        if owner_id is not None:
            query = query.where(Notebook.owner_id == owner_id)
        if for_update:
            query = query.with_for_update()
        return self.db.scalar(query)

    def notebooks(self, owner_id: int | None) -> Sequence[Notebook]:
        query = select(Notebook).order_by(Notebook.name, Notebook.id)
        if owner_id is not None:
            query = query.where(Notebook.owner_id == owner_id)
        return self.db.scalars(query).all()

    def add_notebook(self, notebook: Notebook) -> Notebook:
        notebook.folder_key = _key(notebook.folder_id)
        self.db.add(notebook)
        self._flush(f"a notebook named '{notebook.name}' is already there")
        return notebook

    def set_notebook(self, notebook: Notebook, **values: Any) -> None:
        if "folder_id" in values:
            values["folder_key"] = _key(values["folder_id"])
        for name, value in values.items():
            setattr(notebook, name, value)
        self._flush(f"a notebook named '{notebook.name}' is already there")

    def delete_notebook(self, notebook: Notebook) -> None:
        self.db.delete(notebook)
        self.db.flush()

    def attached_to(self, session_id: int) -> Sequence[Notebook]:
        return self.db.scalars(select(Notebook).where(Notebook.session_id == session_id)).all()

    def with_work(self, states: Sequence[str], limit: int) -> Sequence[int]:
        """Notebooks with a cell in one of these states or a run-all queue: what a watcher pass advances."""
        cells = select(NotebookCell.notebook_id).where(NotebookCell.state.in_(list(states))).distinct()
        queued = select(Notebook.id).where(Notebook.run_queue.is_not(None))
        ids = set(self.db.scalars(cells.limit(limit))) | set(self.db.scalars(queued.limit(limit)))
        return sorted(ids)[:limit]

    # cells ---------------------------------------------------------------------------------------------

    def cells(self, notebook_id: int) -> Sequence[NotebookCell]:
        query = select(NotebookCell).where(NotebookCell.notebook_id == notebook_id)
        return self.db.scalars(query.order_by(NotebookCell.position, NotebookCell.id)).all()

    def cells_of(self, notebook_ids: Sequence[int]) -> Sequence[NotebookCell]:
        query = select(NotebookCell).where(NotebookCell.notebook_id.in_(list(notebook_ids)))
        return self.db.scalars(query.order_by(NotebookCell.notebook_id, NotebookCell.position)).all()

    def cell(self, notebook_id: int, cell_id: int) -> NotebookCell | None:
        if not _ids.storable(cell_id):
            return None
        query = select(NotebookCell).where(NotebookCell.id == cell_id, NotebookCell.notebook_id == notebook_id)
        return self.db.scalar(query)

    def add_cells(self, cells: Sequence[NotebookCell]) -> None:
        self.db.add_all(cells)
        self.db.flush()

    def set_cell(self, cell: NotebookCell, **values: Any) -> None:
        for name, value in values.items():
            setattr(cell, name, value)
        self.db.flush()

    def set_positions(self, ordered: Sequence[NotebookCell]) -> None:
        for position, cell in enumerate(ordered):
            if cell.position != position:
                cell.position = position
        self.db.flush()

    def delete_cell(self, cell: NotebookCell) -> None:
        self.db.delete(cell)
        self.db.flush()

    def clear_outputs(self, notebook_id: int, states: Sequence[str], now: Any) -> None:
        """Every cell back to idle without output, except cells in these (running) states."""
        self.db.execute(
            update(NotebookCell)
            .where(NotebookCell.notebook_id == notebook_id, NotebookCell.state.not_in(list(states)))
            .values(state="idle", output=None, execution_count=None, progress=0.0, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )

    def delete_cells(self, notebook_id: int) -> None:
        self.db.execute(delete(NotebookCell).where(NotebookCell.notebook_id == notebook_id))

    def _flush(self, taken: str) -> None:
        try:
            self.db.flush()
        except IntegrityError as exc:  # a concurrent request took the name between our check and here (the
            # services check first, for the usual case); the unit of work then rolls back the whole request
            raise Conflict(taken) from exc
