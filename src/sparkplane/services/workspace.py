"""The workspace: users' folders and notebooks as a tree (list, create, rename, move, delete).

Ownership as everywhere: another user's folder or notebook is not found (404); admins see and manage
everyone's. Something made inside a folder belongs to the folder's owner (an admin tidying alice's tree
makes alice's things), and nothing moves from one user's tree into another's. Folders and notebooks share
one namespace per folder, as files do in a directory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sparkplane.db.models import Notebook, WorkspaceFolder
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, InvalidInput, NotFound
from sparkplane.domain.notebooks import check_name
from sparkplane.services import sessions
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal


class _Keep:
    """A field the request leaves as it is (PATCH without it), unlike None (the top of the tree)."""


KEEP: Final = _Keep()


@dataclass(frozen=True, slots=True)
class FolderView:
    id: int
    name: str
    parent_id: int | None
    owner: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NotebookEntry:
    id: int
    name: str
    folder_id: int | None
    owner: str
    session_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Tree:
    folders: list[FolderView]
    notebooks: list[NotebookEntry]


def owner_names(uow: UnitOfWork, principal: Principal) -> Mapping[int, str]:
    if principal.is_admin:
        return {u.id: u.username for u in uow.users.list()}
    return {principal.user_id: principal.username}


def folder_view(row: WorkspaceFolder, names: Mapping[int, str]) -> FolderView:
    return FolderView(row.id, row.name, row.parent_id, names.get(row.owner_id, "?"), row.created_at, row.updated_at)


def entry_view(row: Notebook, names: Mapping[int, str]) -> NotebookEntry:
    return NotebookEntry(
        row.id, row.name, row.folder_id, names.get(row.owner_id, "?"), row.session_id, row.created_at, row.updated_at
    )


def tree(ctx: Context, principal: Principal, parent_id: int | None | _Keep = KEEP) -> Tree:
    """The caller's whole tree (everyone's for an admin), flat with parent ids; or one folder's children."""
    with ctx.db.uow() as uow:
        names = owner_names(uow, principal)
        folders = list(uow.workspace.folders(principal.owner_filter))
        notebooks = list(uow.workspace.notebooks(principal.owner_filter))
        if not isinstance(parent_id, _Keep):
            if parent_id is not None:
                folder_of(uow, principal, parent_id)
            folders = [f for f in folders if f.parent_id == parent_id]
            notebooks = [n for n in notebooks if n.folder_id == parent_id]
        return Tree([folder_view(f, names) for f in folders], [entry_view(n, names) for n in notebooks])


def folder_of(uow: UnitOfWork, principal: Principal, folder_id: int, *, for_update: bool = False) -> WorkspaceFolder:
    row = uow.workspace.folder(folder_id, principal.owner_filter, for_update=for_update)
    if row is None:
        raise NotFound(f"Folder {folder_id} not found.")
    return row


def place(uow: UnitOfWork, principal: Principal, folder_id: int | None) -> int:
    """The owner of what goes into this folder (the folder's owner, or the caller at the top)."""
    if folder_id is None:
        return principal.user_id
    return folder_of(uow, principal, folder_id).owner_id


def check_free(uow: UnitOfWork, owner_id: int, folder_id: int | None, name: str) -> None:
    if uow.workspace.name_taken(owner_id, folder_id, name):
        where = "at the top of the workspace" if folder_id is None else f"in folder {folder_id}"
        raise Conflict(f"'{name}' is already taken {where}: choose another name")


def check_destination(uow: UnitOfWork, principal: Principal, owner_id: int, folder_id: int | None) -> None:
    """A move stays within its owner's tree (an admin's top is their own, so at the top: the owner's)."""
    if folder_id is not None and folder_of(uow, principal, folder_id).owner_id != owner_id:
        raise InvalidInput(f"folder {folder_id} belongs to another user: things move within their owner's workspace")


def create_folder(ctx: Context, principal: Principal, name: str, parent_id: int | None) -> FolderView:
    name = check_name(name, "folder")
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        owner_id = place(uow, principal, parent_id)
        check_free(uow, owner_id, parent_id, name)
        row = uow.workspace.add_folder(
            WorkspaceFolder(owner_id=owner_id, parent_id=parent_id, name=name, created_at=now, updated_at=now)
        )
        return folder_view(row, owner_names(uow, principal))


def update_folder(
    ctx: Context, principal: Principal, folder_id: int, *, name: str | None, parent_id: int | None | _Keep
) -> FolderView:
    """Rename and/or move; moving into itself or below itself is refused (409)."""
    with ctx.db.uow() as uow:
        row = folder_of(uow, principal, folder_id, for_update=True)
        if (
            not isinstance(parent_id, _Keep)
            and parent_id is not None
            and folder_id in uow.workspace.ancestors(parent_id)
        ):
            raise Conflict(f"folder {folder_id} cannot move into itself or one of its own subfolders")
        change = relocation(uow, principal, row.owner_id, (row.name, row.parent_id), name, parent_id, "folder")
        if change is not None:
            uow.workspace.set_folder(row, name=change[0], parent_id=change[1], updated_at=ctx.clock.now())
        return folder_view(row, owner_names(uow, principal))


def relocation(
    uow: UnitOfWork,
    principal: Principal,
    owner_id: int,
    current: tuple[str, int | None],
    name: str | None,
    folder_id: int | None | _Keep,
    what: str,
) -> tuple[str, int | None] | None:
    """The (name, folder) a rename and/or move leads to, checked; None when nothing changes."""
    new_name = current[0] if name is None else check_name(name, what)
    new_folder = current[1] if isinstance(folder_id, _Keep) else folder_id
    if new_folder != current[1]:
        check_destination(uow, principal, owner_id, new_folder)
    if (new_name, new_folder) == current:
        return None
    check_free(uow, owner_id, new_folder, new_name)
    return new_name, new_folder


def delete_folder(ctx: Context, principal: Principal, folder_id: int, *, recursive: bool) -> None:
    """A non-empty folder only with `recursive`; its notebooks' own sessions are stopped too."""
    with ctx.db.uow() as uow:
        row = folder_of(uow, principal, folder_id, for_update=True)
        count = uow.workspace.children_count(row.id)
        if count and not recursive:
            raise Conflict(
                f"folder '{row.name}' is not empty ({count} items): delete or move them, or pass ?recursive=true"
            )
        subtree = set(uow.workspace.subtree(row.id))
        owned_sessions = [
            n.session_id
            for n in uow.workspace.notebooks(row.owner_id)
            if n.folder_id in subtree and n.owns_session and n.session_id is not None
        ]
        uow.workspace.delete_folder(row)
    for session_id in owned_sessions:
        sessions.kill(ctx, None, session_id, message="its notebook was deleted")
