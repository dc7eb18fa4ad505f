from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparkplane.db.models import Credential
from sparkplane.domain.errors import Conflict


class CredentialRepository:
    """Lookups by name always take the owner: none can reach another user's credential, not even an admin's."""

    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, credential: Credential) -> Credential:
        self.db.add(credential)
        try:
            self.db.flush()
        except IntegrityError as exc:  # a concurrent create of the same name won
            raise Conflict(f"you already have a credential named '{credential.name}'") from exc
        return credential

    def named(self, owner_id: int, name: str) -> Credential | None:
        query = select(Credential).where(Credential.owner_id == owner_id, Credential.name == name)
        return self.db.scalar(query)

    def named_many(self, owner_id: int, names: Sequence[str]) -> dict[str, Credential]:
        if not names:
            return {}
        query = select(Credential).where(Credential.owner_id == owner_id, Credential.name.in_(list(names)))
        return {row.name: row for row in self.db.scalars(query)}

    def list_for(self, owner_id: int) -> Sequence[Credential]:
        query = select(Credential).where(Credential.owner_id == owner_id).order_by(Credential.name)
        return self.db.scalars(query).all()

    def page_after(self, after_id: int, limit: int) -> Sequence[Credential]:
        """Every user's, in id order, a bounded page at a time, locked (re-encryption after a key change)."""
        query = select(Credential).where(Credential.id > after_id).order_by(Credential.id).limit(limit)
        return self.db.scalars(query.with_for_update()).all()

    def delete(self, credential: Credential) -> None:
        self.db.delete(credential)
        self.db.flush()
