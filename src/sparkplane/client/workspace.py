"""The workspace: the SDK's part for /api/v1/workspace (folders and notebooks, files in and out).

with Client(url, token=token) as sp:
    for notebook in sp.workspace().notebooks:
        name, content = sp.export_notebook(notebook.id, "ipynb")
    made = sp.import_notebook("analysis.ipynb", folder_id=3)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from pydantic import BaseModel

from sparkplane.client._plumbing import ClientPlumbing

_PATH = "/api/v1/workspace"
FORMATS = ("ipynb", "py")


class WorkspaceFolder(BaseModel):
    id: int
    name: str
    parent_id: int | None
    owner: str


class WorkspaceNotebook(BaseModel):
    id: int
    name: str
    folder_id: int | None
    owner: str
    session_id: int | None


class WorkspaceTree(BaseModel):
    folders: list[WorkspaceFolder]
    notebooks: list[WorkspaceNotebook]

    def path_of(self, folder_id: int | None) -> str:
        """'/reports/2026' for a folder, '/' for the top."""
        by_id = {f.id: f for f in self.folders}
        parts: list[str] = []
        while folder_id is not None and folder_id in by_id and len(parts) <= len(by_id):
            parts.insert(0, by_id[folder_id].name)
            folder_id = by_id[folder_id].parent_id
        return "/" + "/".join(parts)


class NotebookCell(BaseModel):
    id: int
    kind: str
    state: str


class NotebookInfo(WorkspaceNotebook):
    cells: list[NotebookCell]


class WorkspaceMixin(ClientPlumbing):
    """The workspace routes of `Client`."""

    def workspace(self) -> WorkspaceTree:
        """Your folders and notebooks (everyone's for an admin), flat, each with its parent's id."""
        return self._parse(self._request("GET", _PATH), WorkspaceTree)

    def export_notebook(self, notebook_id: int, file_format: str = "ipynb") -> tuple[str, bytes]:
        """(file name, content) of a notebook as .ipynb (with outputs) or .py (Databricks source format)."""
        response = self._request("GET", f"{_PATH}/notebooks/{notebook_id}/export", params={"format": file_format})
        name = _filename(response.headers.get("content-disposition", "")) or f"notebook-{notebook_id}.{file_format}"
        return name, response.content

    def import_notebook(
        self, path: str | Path, *, folder_id: int | None = None, name: str | None = None, file_format: str | None = None
    ) -> NotebookInfo:
        """A new notebook from an .ipynb or .py file (the format from its name unless `file_format` says)."""
        local = Path(path).expanduser()
        data = {
            key: str(value)
            for key, value in (("folder_id", folder_id), ("name", name), ("format", file_format))
            if value is not None
        }
        with local.open("rb") as fh:
            response = self._request("POST", f"{_PATH}/import", files={"file": (local.name, fh)}, data=data)
        return self._parse(response, NotebookInfo)


def _filename(disposition: str) -> str | None:
    """The file name a Content-Disposition gives: its UTF-8 `filename*` (RFC 5987), else `filename`. Only
    its last path part, so a server can never make the CLI write outside the folder it was asked to."""
    found: dict[str, str] = {}
    for part in disposition.split(";"):
        key, _, raw = part.strip().partition("=")
        found[key.lower()] = raw.strip('"')
    name = unquote(found["filename*"].removeprefix("UTF-8''")) if "filename*" in found else found.get("filename")
    name = Path(name).name if name else None
    return name or None
