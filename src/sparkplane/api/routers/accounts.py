"""Users, API tokens and file uploads under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter, File, Request, UploadFile

from sparkplane.api.deps import CtxDep, PrincipalDep
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.api.schemas import (
    FileUploaded,
    Token,
    TokenCreate,
    TokenCreated,
    User,
    UserCreate,
    UserUpdate,
)
from sparkplane.services import files, users, web_logins

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=NATIVE_ERRORS)


@router.get("/users/me", response_model=User)
def me(ctx: CtxDep, principal: PrincipalDep) -> User:
    return User(
        id=principal.user_id,
        username=principal.username,
        role="admin" if principal.is_admin else "user",
        is_active=True,
    )


@router.get("/users", response_model=list[User])
def list_users(ctx: CtxDep, principal: PrincipalDep) -> list[User]:
    return [User(**vars_of(u)) for u in users.list_users(ctx, principal)]


@router.post("/users", status_code=201, response_model=User)
def create_user(body: UserCreate, ctx: CtxDep, principal: PrincipalDep) -> User:
    return User(**vars_of(users.create_user(ctx, principal, body.username, body.password, body.role)))


# The int convertor keeps "me" from matching: PATCH /users/me is then a 405, not a 400 about "me" as an id.
@router.patch("/users/{user_id:int}", response_model=User)
def update_user(user_id: int, body: UserUpdate, request: Request, ctx: CtxDep, principal: PrincipalDep) -> User:
    """Change a role, disable or enable, or set a password. A new password or a disable ends the user's other
    web logins (a stolen cookie dies with the old password); the browser that made the change stays in."""
    info = users.update_user(ctx, principal, user_id, role=body.role, is_active=body.is_active, password=body.password)
    if body.password is not None or body.is_active is False:
        current = getattr(request.state, "web_login", None)
        keep = current.login_id if current is not None and current.principal.user_id == user_id else None
        web_logins.end_other_logins(ctx, user_id, keep=keep)
    return User(**vars_of(info))


@router.get("/tokens", response_model=list[Token])
def list_tokens(ctx: CtxDep, principal: PrincipalDep) -> list[Token]:
    return [Token(**vars_of(t)) for t in users.list_tokens(ctx, principal)]


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, ctx: CtxDep, principal: PrincipalDep) -> TokenCreated:
    created = users.create_token(ctx, principal, body.name)
    return TokenCreated(**vars_of(created.info), token=created.token)


@router.delete("/tokens/{token_id}", response_model=Token)
def revoke_token(token_id: int, ctx: CtxDep, principal: PrincipalDep) -> Token:
    return Token(**vars_of(users.revoke_token(ctx, principal, token_id)))


@router.post("/files", status_code=201, response_model=FileUploaded)
def upload_file(ctx: CtxDep, principal: PrincipalDep, file: UploadFile = File(...)) -> FileUploaded:
    info = files.upload(ctx, principal, file.filename, file.file)
    return FileUploaded(uri=info.uri, filename=info.filename, size=info.size, sha256=info.sha256)


def vars_of(obj: object) -> dict[str, object]:
    """A slotted dataclass's fields as a dict (vars() does not work on slots)."""
    from dataclasses import asdict

    return asdict(obj)  # type: ignore[call-overload, no-any-return]
