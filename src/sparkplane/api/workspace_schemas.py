"""Wire shapes of the workspace: folders, notebooks and their cells."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.services.notebooks import CellView, NotebookView
from sparkplane.services.workspace import FolderView, NotebookEntry, Tree

_KIND = "pyspark, sql or markdown"
_OUTPUT = (
    "The last run's output in Livy's statement-output shape: `{status: ok, execution_count, data: {mime: value}}` "
    "(text/plain, application/json `{schema, data}` for SQL, image/png base64) or `{status: error, ename, evalue, "
    "traceback}`; null when never run or cleared"
)


class FolderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique among the folder's folders and notebooks; no '/'")
    parent_id: int | None = Field(None, description="The folder to make it in; none for the top of your workspace")


class FolderUpdate(BaseModel):
    """Rename (name) and/or move (parent_id; null moves it to the top). Absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    parent_id: int | None = None


class Folder(BaseModel):
    id: int
    name: str
    parent_id: int | None
    owner: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: FolderView) -> Folder:
        return cls(**{name: getattr(view, name) for name in cls.model_fields})


class NotebookSummary(BaseModel):
    id: int
    name: str
    folder_id: int | None
    owner: str
    session_id: int | None = Field(description="The session it is attached to, if any")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: NotebookEntry) -> NotebookSummary:
        return cls(**{name: getattr(view, name) for name in cls.model_fields})


class WorkspaceTree(BaseModel):
    folders: list[Folder]
    notebooks: list[NotebookSummary]

    @classmethod
    def of(cls, tree: Tree) -> WorkspaceTree:
        return cls(
            folders=[Folder.of(f) for f in tree.folders], notebooks=[NotebookSummary.of(n) for n in tree.notebooks]
        )


class CellCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field("pyspark", description=_KIND)
    source: str = ""
    index: int | None = Field(None, description="Where to insert it (0 is the top); the end by default")


class NewCell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field("pyspark", description=_KIND)
    source: str = ""


class CellUpdate(BaseModel):
    """Edit the source, change the kind (which clears the output), or move the cell to `index`."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    kind: str | None = Field(None, description=_KIND)
    index: int | None = Field(None, description="Move the cell here (0 is the top)")


class Cell(BaseModel):
    id: int
    position: int
    kind: str = Field(description=_KIND)
    source: str
    state: str = Field(description="idle, queued, running, done, error or cancelled")
    session_id: int | None = Field(description="The session of the last run's statement")
    statement_id: int | None = Field(description="The last run's statement in that session")
    output: dict[str, Any] | None = Field(description=_OUTPUT)
    execution_count: int | None
    progress: float
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: CellView) -> Cell:
        return cls(**{name: getattr(view, name) for name in cls.model_fields})


class NotebookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    folder_id: int | None = Field(None, description="The folder to make it in; none for the top of the workspace")
    cells: list[NewCell] = Field(default_factory=list, description="Its first cells, in order")


class NotebookUpdate(BaseModel):
    """Rename (name) and/or move (folder_id; null moves it to the top). Absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    folder_id: int | None = None


class Notebook(BaseModel):
    id: int
    name: str
    folder_id: int | None
    owner: str
    session_id: int | None = Field(description="The session its cells run in; null when detached")
    session_state: str | None
    cluster_id: int | None = Field(description="The cluster that session runs on, if any")
    owns_session: bool = Field(description="The session was made by attach, and detach stops it")
    running_all: bool = Field(description="A run-all is going through the cells")
    cells: list[Cell]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: NotebookView) -> Notebook:
        values = {name: getattr(view, name) for name in cls.model_fields if name != "cells"}
        return cls(cells=[Cell.of(c) for c in view.cells], **values)


class Attach(BaseModel):
    """`{}`: a new stand-alone session; `{cluster_id}`: a new session on that cluster; `{session_id}`: one of
    your running sessions (detach then leaves it running)."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: int | None = None
    session_id: int | None = None


class ImportJson(BaseModel):
    """The JSON form of an import (the other is multipart, a `file` field and these as form fields)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(description="Its name tells the format (.ipynb or .py) and, without it, the notebook's name")
    content: str | dict[str, Any] = Field(description="The file's text, or an .ipynb's JSON itself")
    format: str | None = Field(None, description="ipynb or py, when the filename does not say")
    folder_id: int | None = None
    name: str | None = Field(None, description="The notebook's name; a taken one gets ' (2)', ' (3)'…")
