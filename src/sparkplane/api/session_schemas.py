"""Wire shapes of sessions and statements: Livy 0.9's exactly (field order included), and the native face's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.api.schemas import LivyAppInfo
from sparkplane.services.sessions import SessionRequest, SessionView
from sparkplane.services.statements import StatementView


class SessionCreate(BaseModel):
    """POST /livy/sessions and /api/v1/sessions; every field optional, unknown ones refused (400) as Livy does."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(None, description="spark, pyspark, sparkr, sql or shared (aliases scala, python, r)")
    proxyUser: str | None = None  # noqa: N815
    jars: list[str] = Field(default_factory=list)
    pyFiles: list[str] = Field(default_factory=list)  # noqa: N815
    files: list[str] = Field(default_factory=list)
    driverMemory: str | None = None  # noqa: N815
    driverCores: int | None = None  # noqa: N815
    executorMemory: str | None = None  # noqa: N815
    executorCores: int | None = None  # noqa: N815
    numExecutors: int | None = None  # noqa: N815
    archives: list[str] = Field(default_factory=list)
    queue: str | None = None
    name: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    heartbeatTimeoutInSecond: int = 0  # noqa: N815
    ttl: str | None = Field(None, description="Stop the session after this long, e.g. 8h")
    idleTimeout: str | None = Field(None, description="Stop the session after this long without a statement, e.g. 30m")  # noqa: N815
    cluster_id: int | None = Field(None, description="Run on this cluster (sparkplane's extension of Livy's fields)")
    # Not Livy's: sparkplane's one addition to its body, so Livy clients may pass it as an extra field.
    credentials: list[str] = Field(
        default_factory=list, description="Names of your stored credentials to give the session as Spark conf"
    )

    def to_request(self) -> SessionRequest:
        return SessionRequest(**self.model_dump())


class LivySession(BaseModel):
    id: int
    name: str | None
    appId: str | None  # noqa: N815
    owner: str | None
    proxyUser: str | None  # noqa: N815
    state: str
    kind: str
    appInfo: LivyAppInfo  # noqa: N815
    log: list[str]
    ttl: str | None
    idleTimeout: str | None  # noqa: N815
    driverMemory: str | None  # noqa: N815
    driverCores: int  # noqa: N815
    executorMemory: str | None  # noqa: N815
    executorCores: int  # noqa: N815
    conf: dict[str, str]
    archives: list[str] | None
    files: list[str] | None
    heartbeatTimeoutInSecond: int  # noqa: N815
    jars: list[str] | None
    numExecutors: int  # noqa: N815
    pyFiles: list[str] | None  # noqa: N815
    queue: str | None

    @classmethod
    def of(cls, view: SessionView, log: list[str]) -> LivySession:
        r = view.request
        # Livy serialises unset ints as 0 and unset strings and lists as null.
        return cls(
            id=view.id,
            name=view.name,
            appId=view.app_id,
            owner=view.owner,
            proxyUser=r.get("proxyUser"),
            state=view.state.value,
            kind=view.kind,
            appInfo=LivyAppInfo(driverLogUrl=None, sparkUiUrl=view.ui_url),
            log=log,
            ttl=r.get("ttl"),
            idleTimeout=r.get("idleTimeout"),
            driverMemory=r.get("driverMemory"),
            driverCores=r.get("driverCores") or 0,
            executorMemory=r.get("executorMemory"),
            executorCores=r.get("executorCores") or 0,
            conf=dict(r.get("conf") or {}),
            archives=r.get("archives") or None,
            files=r.get("files") or None,
            heartbeatTimeoutInSecond=r.get("heartbeatTimeoutInSecond") or 0,
            jars=r.get("jars") or None,
            numExecutors=r.get("numExecutors") or 0,
            pyFiles=r.get("pyFiles") or None,
            queue=r.get("queue"),
        )


class LivySessionList(BaseModel):
    from_: int = Field(alias="from")
    total: int
    sessions: list[LivySession]


class StatementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    kind: str | None = Field(None, description="Needed on a shared session; else the session's kind")


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    kind: str | None = None
    cursor: int


class Candidates(BaseModel):
    candidates: list[str]


class LivyStatement(BaseModel):
    id: int
    code: str
    state: str
    output: dict[str, Any] | None
    progress: float
    started: int
    completed: int

    @classmethod
    def of(cls, view: StatementView) -> LivyStatement:
        return cls(
            id=view.id,
            code=view.code,
            state=view.state.value,
            output=view.output,
            progress=view.progress,
            started=view.started,
            completed=view.completed,
        )


class LivyStatementList(BaseModel):
    total_statements: int
    statements: list[LivyStatement]


class NativeSession(BaseModel):
    id: int
    name: str | None
    owner: str
    kind: str
    state: str
    backend: str
    app_id: str | None
    spark_ui_url: str | None
    connect_url: str | None = Field(description="Spark Connect URL with its token; shown to the session's owner only")
    native_state: str | None
    failure_reason: str | None
    message: str | None
    conf: dict[str, str]
    cluster_id: int | None
    credentials: list[str] = Field(description="Names of the stored credentials it was given")
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last_activity_at: dt.datetime

    @classmethod
    def of(cls, view: SessionView, connect_url: str | None = None) -> NativeSession:
        return cls(
            id=view.id,
            name=view.name,
            owner=view.owner,
            kind=view.kind,
            state=view.state.value,
            backend=view.backend,
            app_id=view.app_id,
            spark_ui_url=view.ui_url,
            connect_url=connect_url,
            native_state=view.native_state,
            failure_reason=view.failure_reason,
            message=view.message,
            conf=dict(view.request.get("conf") or {}),
            cluster_id=view.cluster_id,
            credentials=list(view.request.get("credentials") or []),
            submitted_at=view.submitted_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            last_activity_at=view.last_activity_at,
        )


class NativeSessionPage(BaseModel):
    offset: int
    total: int
    items: list[NativeSession]


class NativeStatement(LivyStatement):
    kind: str

    @classmethod
    def of(cls, view: StatementView) -> NativeStatement:
        return cls(
            id=view.id,
            code=view.code,
            kind=view.kind,
            state=view.state.value,
            output=view.output,
            progress=view.progress,
            started=view.started,
            completed=view.completed,
        )


class NativeStatementPage(BaseModel):
    offset: int
    total: int
    items: list[NativeStatement]
