"""Users' own data-source credentials under /api/v1/credentials. Only their owner sees or uses them; their
secret fields go in once and never come out (not even in the answer to the POST)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sparkplane.api.credential_schemas import Credential, CredentialCreate, CredentialSummary
from sparkplane.api.deps import CtxDep, PrincipalDep
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.services import credentials

router = APIRouter(prefix="/api/v1/credentials", tags=["credentials"], responses=NATIVE_ERRORS)


@router.post("", status_code=201, response_model=Credential)
def create(body: CredentialCreate, ctx: CtxDep, principal: PrincipalDep, response: Response) -> Credential:
    view = credentials.create(ctx, principal, body.name, body.kind, body.fields)
    response.headers["Location"] = f"/api/v1/credentials/{view.name}"
    return Credential.of(view)


@router.get("", response_model=list[CredentialSummary])
def list_credentials(ctx: CtxDep, principal: PrincipalDep) -> list[CredentialSummary]:
    return [CredentialSummary.of(view) for view in credentials.list_mine(ctx, principal)]


@router.get("/{name}", response_model=Credential)
def get(name: str, ctx: CtxDep, principal: PrincipalDep) -> Credential:
    return Credential.of(credentials.get(ctx, principal, name))


@router.delete("/{name}", response_model=Credential)
def delete(name: str, ctx: CtxDep, principal: PrincipalDep) -> Credential:
    return Credential.of(credentials.delete(ctx, principal, name))
