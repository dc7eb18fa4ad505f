from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from sparkplane.db.models import WebLogin


class WebLoginRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, login: WebLogin) -> WebLogin:
        self.db.add(login)
        self.db.flush()
        return login

    def by_hash(self, token_hash: str) -> WebLogin | None:
        return self.db.scalar(select(WebLogin).where(WebLogin.token_hash == token_hash))

    def touch(self, login_id: int, now: dt.datetime, expires_at: dt.datetime) -> None:
        self.db.execute(update(WebLogin).where(WebLogin.id == login_id).values(last_seen_at=now, expires_at=expires_at))

    def delete(self, login_id: int) -> None:
        self.db.execute(delete(WebLogin).where(WebLogin.id == login_id))

    def delete_for_user(self, user_id: int, *, keep: int | None = None) -> int:
        query = delete(WebLogin).where(WebLogin.user_id == user_id)
        if keep is not None:
            query = query.where(WebLogin.id != keep)
        return int(self.db.execute(query).rowcount or 0)  # type: ignore[attr-defined]

    def delete_expired(self, now: dt.datetime) -> int:
        return int(self.db.execute(delete(WebLogin).where(WebLogin.expires_at <= now)).rowcount or 0)  # type: ignore[attr-defined]
