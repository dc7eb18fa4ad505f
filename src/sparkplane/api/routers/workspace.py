"""Users' workspaces under /api/v1/workspace: folders, notebooks, cells, running them, files in and out.

Another user's folder or notebook answers 404; admins see and manage everyone's but run no code in a
notebook that is not theirs (403), as with sessions. Cells run asynchronously: run and run-all answer 202
with the notebook, whose cells then show `queued`, `running` and finally `done` or `error` with their
output; poll GET /notebooks/{id}, which brings running cells up to date.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sparkplane.api.deps import CtxDep, PrincipalDep
from sparkplane.api.errors import NATIVE_ERRORS, describe_validation
from sparkplane.api.workspace_schemas import (
    Attach,
    Cell,
    CellCreate,
    CellUpdate,
    Folder,
    FolderCreate,
    FolderUpdate,
    ImportJson,
    Notebook,
    NotebookCreate,
    NotebookUpdate,
    WorkspaceTree,
)
from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.notebooks import CellDoc, NotebookDoc, cell_kind
from sparkplane.services import notebook_runs, notebooks, workspace
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

router = APIRouter(prefix="/api/v1/workspace", tags=["workspace"], responses=NATIVE_ERRORS)
NOTEBOOK = "/notebooks/{notebook_id}"


@router.get("", response_model=WorkspaceTree)
def tree(
    ctx: CtxDep,
    principal: PrincipalDep,
    parent_id: int | None = Query(
        None, ge=0, description="Only this folder's children (0: the top); without it, the whole tree, flat"
    ),
) -> WorkspaceTree:
    """Your folders and notebooks (everyone's for an admin), each with its parent's id."""
    chosen: int | None | workspace._Keep = workspace.KEEP if parent_id is None else (parent_id or None)
    return WorkspaceTree.of(workspace.tree(ctx, principal, chosen))


@router.post("/folders", status_code=201, response_model=Folder)
def create_folder(body: FolderCreate, ctx: CtxDep, principal: PrincipalDep) -> Folder:
    return Folder.of(workspace.create_folder(ctx, principal, body.name, body.parent_id))


@router.patch("/folders/{folder_id}", response_model=Folder)
def update_folder(folder_id: int, body: FolderUpdate, ctx: CtxDep, principal: PrincipalDep) -> Folder:
    """Rename and/or move. 409 when the name is taken there, or when the move would put it inside itself."""
    parent = body.parent_id if "parent_id" in body.model_fields_set else workspace.KEEP
    return Folder.of(workspace.update_folder(ctx, principal, folder_id, name=body.name, parent_id=parent))


@router.delete("/folders/{folder_id}", status_code=204)
def delete_folder(
    folder_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    recursive: bool = Query(False, description="Also delete everything in it (else a non-empty folder is 409)"),
) -> Response:
    workspace.delete_folder(ctx, principal, folder_id, recursive=recursive)
    return Response(status_code=204)


@router.post("/notebooks", status_code=201, response_model=Notebook)
def create_notebook(body: NotebookCreate, ctx: CtxDep, principal: PrincipalDep, response: Response) -> Notebook:
    doc = NotebookDoc(body.name, tuple(CellDoc(cell_kind(c.kind), c.source) for c in body.cells))
    view = notebooks.create(ctx, principal, doc, body.folder_id)
    response.headers["Location"] = f"/api/v1/workspace/notebooks/{view.id}"
    return Notebook.of(view)


@router.get(NOTEBOOK, response_model=Notebook)
def get_notebook(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.patch(NOTEBOOK, response_model=Notebook)
def update_notebook(notebook_id: int, body: NotebookUpdate, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    folder = body.folder_id if "folder_id" in body.model_fields_set else workspace.KEEP
    return Notebook.of(notebooks.update(ctx, principal, notebook_id, name=body.name, folder_id=folder))


@router.delete(NOTEBOOK, status_code=204)
def delete_notebook(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Deletes it with its cells, and stops the session that attach made for it."""
    notebooks.delete(ctx, principal, notebook_id)
    return Response(status_code=204)


@router.post(NOTEBOOK + "/cells", status_code=201, response_model=Cell)
def add_cell(notebook_id: int, body: CellCreate, ctx: CtxDep, principal: PrincipalDep) -> Cell:
    return Cell.of(notebooks.add_cell(ctx, principal, notebook_id, body.kind, body.source, body.index))


@router.patch(NOTEBOOK + "/cells/{cell_id}", response_model=Cell)
def update_cell(notebook_id: int, cell_id: int, body: CellUpdate, ctx: CtxDep, principal: PrincipalDep) -> Cell:
    view = notebooks.update_cell(
        ctx, principal, notebook_id, cell_id, source=body.source, kind=body.kind, index=body.index
    )
    return Cell.of(view)


@router.delete(NOTEBOOK + "/cells/{cell_id}", status_code=204)
def delete_cell(notebook_id: int, cell_id: int, ctx: CtxDep, principal: PrincipalDep) -> Response:
    notebooks.delete_cell(ctx, principal, notebook_id, cell_id)
    return Response(status_code=204)


@router.post(NOTEBOOK + "/cells/{cell_id}/run", status_code=202, response_model=Notebook)
def run_cell(notebook_id: int, cell_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    """Runs one code cell as a statement of the attached session (409 when the notebook is not attached;
    400 for a markdown cell)."""
    notebook_runs.run_cell(ctx, principal, notebook_id, cell_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.post(NOTEBOOK + "/run-all", status_code=202, response_model=Notebook)
def run_all(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    """Runs the code cells top to bottom, one at a time; the first error stops the rest."""
    notebook_runs.run_all(ctx, principal, notebook_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.post(NOTEBOOK + "/cancel", response_model=Notebook)
def cancel(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    """Cancels the running cells and drops the rest of a run-all."""
    notebook_runs.cancel(ctx, principal, notebook_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.post(NOTEBOOK + "/clear-outputs", response_model=Notebook)
def clear_outputs(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    notebook_runs.clear_outputs(ctx, principal, notebook_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.post(NOTEBOOK + "/attach", response_model=Notebook)
def attach(notebook_id: int, body: Attach, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    """Gives the notebook a session to run in: a new one (`{}`, or `{cluster_id}` to place it on your cluster)
    or one of your running sessions (`{session_id}`). 409 when it is attached to a live session already."""
    notebook_runs.attach(ctx, principal, notebook_id, cluster_id=body.cluster_id, session_id=body.session_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.post(NOTEBOOK + "/detach", response_model=Notebook)
def detach(notebook_id: int, ctx: CtxDep, principal: PrincipalDep) -> Notebook:
    """Stops the session attach made (a borrowed one keeps running); the cells keep their outputs."""
    notebook_runs.detach(ctx, principal, notebook_id)
    return Notebook.of(notebooks.get(ctx, principal, notebook_id))


@router.get(
    NOTEBOOK + "/export",
    response_class=Response,
    responses={
        200: {
            "description": "The notebook as a file to download",
            "content": {"application/x-ipynb+json": {}, "text/x-python": {}},
        }
    },
)
def export(
    notebook_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    format: str = Query(  # noqa: A002  (the query parameter's public name)
        "ipynb",
        description="ipynb: Jupyter nbformat 4 with outputs (SQL cells start with %%sql); py: Databricks "
        "source format, cells between '# COMMAND ----------' lines, no outputs",
    ),
) -> Response:
    filename, media_type, content = notebooks.export(ctx, principal, notebook_id, format)
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(content, media_type=media_type, headers={"Content-Disposition": disposition})


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "format": {"type": "string", "enum": ["ipynb", "py"]},
                        "folder_id": {"type": "integer"},
                        "name": {"type": "string"},
                    },
                }
            },
            "application/json": {"schema": ImportJson.model_json_schema()},
        },
    }
}


@router.post("/import", status_code=201, response_model=Notebook, openapi_extra=_IMPORT_BODY)
async def import_notebook(request: Request, ctx: CtxDep, principal: PrincipalDep, response: Response) -> Notebook:
    """A notebook from an .ipynb (Jupyter's nbformat 4) or .py file (`# COMMAND ----------` or `# %%` cell
    markers): upload it as multipart `file`, or send JSON `{filename, content}`. 400 says what is wrong."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        args = await _form_import(request)
    else:
        args = _json_import(await request.body())
    view = await run_in_threadpool(_import, ctx, principal, args)
    response.headers["Location"] = f"/api/v1/workspace/notebooks/{view.id}"
    return Notebook.of(view)


def _import(ctx: Context, principal: Principal, args: dict[str, Any]) -> notebooks.NotebookView:
    return notebooks.import_file(ctx, principal, **args)


async def _form_import(request: Request) -> dict[str, Any]:
    async with request.form() as form:  # closes the spooled upload files, whatever happens
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput('send the notebook as a multipart file field named "file"')
        folder = form.get("folder_id")
        name, file_format = form.get("name"), form.get("format")
        content = await upload.read()
    return {
        "filename": upload.filename or "notebook",
        "content": content,
        "file_format": file_format if isinstance(file_format, str) and file_format else None,
        "folder_id": _folder_id(folder if isinstance(folder, str) else None),
        "name": name if isinstance(name, str) and name else None,
    }


def _folder_id(value: str | None) -> int | None:
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput("folder_id must be a folder's id (a number)")
    return int(value)


def _json_import(raw: bytes) -> dict[str, Any]:
    try:
        body = ImportJson.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(
            "send multipart/form-data with a 'file', or JSON {filename, content[, format, folder_id, name]}: "
            + describe_validation(exc.errors())
        ) from None
    content = body.content if isinstance(body.content, str) else json.dumps(body.content)
    return {
        "filename": body.filename,
        "content": content.encode(),
        "file_format": body.format,
        "folder_id": body.folder_id,
        "name": body.name,
    }
