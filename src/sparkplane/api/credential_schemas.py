"""Wire shapes of users' credentials: what goes in once, and what comes out (never a secret field)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.services.credentials import CredentialView


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Your name for it, used in a session's or batch's `credentials` list")
    kind: str = Field(description="s3")
    fields: dict[str, str] = Field(
        description="s3: access_key_id, secret_access_key, and optionally session_token, endpoint, region, bucket"
    )


class CredentialSummary(BaseModel):
    name: str
    kind: str
    created_at: dt.datetime

    @classmethod
    def of(cls, view: CredentialView) -> CredentialSummary:
        return cls(name=view.name, kind=view.kind, created_at=view.created_at)


class Credential(CredentialSummary):
    details: dict[str, str] = Field(description="The fields that are not secret (endpoint, region, bucket)")

    @classmethod
    def of(cls, view: CredentialView) -> Credential:
        return cls(name=view.name, kind=view.kind, created_at=view.created_at, details=dict(view.details))
