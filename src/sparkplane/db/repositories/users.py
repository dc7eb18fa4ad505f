from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sparkplane.db.models import ApiToken, User
from sparkplane.db.repositories import _ids


class UserRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def get(self, user_id: int) -> User | None:
        return self.db.get(User, user_id) if _ids.storable(user_id) else None

    def by_username(self, username: str) -> User | None:
        return self.db.scalar(select(User).where(User.username == username))

    def add(self, user: User) -> User:
        self.db.add(user)
        self.db.flush()
        return user

    def list(self) -> Sequence[User]:
        return self.db.scalars(select(User).order_by(User.id)).all()

    def count(self) -> int:
        return int(self.db.scalar(select(func.count()).select_from(User)) or 0)


class TokenRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, token: ApiToken) -> ApiToken:
        self.db.add(token)
        self.db.flush()
        return token

    def by_hash(self, token_hash: str) -> ApiToken | None:
        return self.db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))

    def with_user_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The token and its user in one round trip: every Bearer request asks this first."""
        query = select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash)
        row = self.db.execute(query).one_or_none()
        return None if row is None else (row[0], row[1])

    def get(self, token_id: int) -> ApiToken | None:
        return self.db.get(ApiToken, token_id) if _ids.storable(token_id) else None

    def list_for(self, user_id: int | None) -> Sequence[ApiToken]:
        query = select(ApiToken).order_by(ApiToken.id)
        if user_id is not None:
            query = query.where(ApiToken.user_id == user_id)
        return self.db.scalars(query).all()

    def touch(self, token_id: int, now: dt.datetime) -> None:
        self.db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
