from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkplane.db.models import StoredFile


class FileRepository:
    def __init__(self, db: Session) -> None:
        self.db = db

    def add(self, stored: StoredFile) -> StoredFile:
        self.db.add(stored)
        self.db.flush()
        return stored

    def by_key(self, key: str) -> StoredFile | None:
        return self.db.scalar(select(StoredFile).where(StoredFile.key == key))
