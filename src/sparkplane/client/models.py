"""The API's answers as typed, immutable values.

Unknown fields are ignored rather than refused: a newer server that adds a field must not break an older
client. The state names are Livy's; they are repeated here because the SDK may not import the domain.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

ACTIVE_STATES = frozenset({"not_started", "starting", "running"})
FINAL_STATES = frozenset({"success", "dead", "killed"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Batch(_Model):
    id: int
    name: str | None = None
    owner: str
    proxy_user: str | None = None
    state: str
    backend: str
    app_id: str | None = None
    spark_ui_url: str | None = None
    native_state: str | None = None
    failure_reason: str | None = None
    message: str | None = None
    file: str
    args: tuple[str, ...] = ()
    class_name: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    submitted_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    def duration(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """Run time so far (or in all, once finished); None while it has not started."""
        if self.started_at is None:
            return None
        end = self.finished_at or now or dt.datetime.now(self.started_at.tzinfo)
        return max(end - self.started_at, dt.timedelta(0))


class BatchPage(_Model):
    offset: int
    total: int
    items: tuple[Batch, ...] = ()


class LogPage(_Model):
    id: int
    offset: int
    total: int
    lines: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        """The offset of the first line after this page: where the next read starts."""
        return self.offset + len(self.lines)


class Event(_Model):
    from_state: str | None = Field(default=None, alias="from")
    to_state: str = Field(alias="to")
    reason: str | None = None
    message: str | None = None
    at: dt.datetime


class FileInfo(_Model):
    uri: str
    filename: str
    size: int
    sha256: str


class User(_Model):
    id: int
    username: str
    role: str
    is_active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Token(_Model):
    id: int
    name: str
    prefix: str
    user_id: int
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    revoked: bool = False
