"""Wire shapes. Livy's are exact (field names and order of Livy 0.8/0.9); the native face's are clean REST."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.services.batches import BatchRequest, BatchView


class BatchSubmit(BaseModel):
    """POST /livy/batches and /api/v1/batches. Unknown fields are refused (400), as Livy does."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Uploaded file URI, path inside the blob storage, or remote URI")
    proxyUser: str | None = None  # noqa: N815
    className: str | None = None  # noqa: N815
    args: list[str] = Field(default_factory=list)
    jars: list[str] = Field(default_factory=list)
    pyFiles: list[str] = Field(default_factory=list)  # noqa: N815
    files: list[str] = Field(default_factory=list)
    archives: list[str] = Field(default_factory=list)
    driverMemory: str | None = None  # noqa: N815
    driverCores: int | None = None  # noqa: N815
    executorMemory: str | None = None  # noqa: N815
    executorCores: int | None = None  # noqa: N815
    numExecutors: int | None = None  # noqa: N815
    queue: str | None = None
    name: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    cluster_id: int | None = Field(None, description="Run on this cluster (sparkplane's extension of Livy's fields)")
    # Not Livy's: sparkplane's one addition to its body, so Livy clients may pass it as an extra field.
    credentials: list[str] = Field(
        default_factory=list, description="Names of your stored credentials to give the batch as Spark conf"
    )

    def to_request(self) -> BatchRequest:
        return BatchRequest(**self.model_dump())


class LivyAppInfo(BaseModel):
    driverLogUrl: str | None = None  # noqa: N815
    sparkUiUrl: str | None = None  # noqa: N815


class LivyBatch(BaseModel):
    id: int
    name: str | None
    owner: str | None
    proxyUser: str | None  # noqa: N815
    state: str
    appId: str | None  # noqa: N815
    appInfo: LivyAppInfo  # noqa: N815
    log: list[str]


class LivyBatchList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "Livy's key is `sessions`, even for batches"})

    from_: int = Field(alias="from")
    total: int
    sessions: list[LivyBatch]


class LivyState(BaseModel):
    id: int
    state: str


class LivyLog(BaseModel):
    id: int
    from_: int = Field(alias="from")
    total: int
    log: list[str]


class LivyMessage(BaseModel):
    msg: str


class LivyVersion(BaseModel):
    version: str
    user: str
    revision: str
    branch: str
    date: str
    url: str


class Batch(BaseModel):
    id: int
    name: str | None
    owner: str
    proxy_user: str | None
    state: str
    backend: str
    app_id: str | None
    spark_ui_url: str | None
    native_state: str | None
    failure_reason: str | None
    message: str | None
    file: str
    args: list[str]
    class_name: str | None
    conf: dict[str, str]
    cluster_id: int | None
    credentials: list[str] = Field(description="Names of the stored credentials it was given")
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, view: BatchView) -> Batch:
        r = view.request
        return cls(
            id=view.id,
            name=view.name,
            owner=view.owner,
            proxy_user=view.proxy_user,
            state=view.state.value,
            backend=view.backend,
            app_id=view.app_id,
            spark_ui_url=view.ui_url,
            native_state=view.native_state,
            failure_reason=view.failure_reason,
            message=view.message,
            file=r["file"],
            args=list(r.get("args") or []),
            class_name=r.get("className"),
            conf=dict(r.get("conf") or {}),
            cluster_id=r.get("cluster_id"),
            credentials=list(r.get("credentials") or []),
            submitted_at=view.submitted_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
        )


class BatchPage(BaseModel):
    offset: int
    total: int
    items: list[Batch]


class LogLines(BaseModel):
    id: int
    offset: int
    total: int
    lines: list[str]


class Event(BaseModel):
    from_state: str | None = Field(alias="from")
    to_state: str = Field(alias="to")
    reason: str | None
    message: str | None
    at: str


class FileUploaded(BaseModel):
    uri: str
    filename: str
    size: int
    sha256: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str
    role: str = "user"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = None
    is_active: bool | None = None
    password: str | None = None


class User(BaseModel):
    id: int
    username: str
    role: str
    is_active: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Token(BaseModel):
    id: int
    name: str
    prefix: str
    user_id: int
    created_at: str
    last_used_at: str | None
    revoked: bool


class TokenCreated(Token):
    token: str = Field(description="The secret; shown this once and never again")


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)
