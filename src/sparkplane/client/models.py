"""The API's answers as typed, immutable values.

Unknown fields are ignored rather than refused: a newer server that adds a field must not break an older
client. The state names are Livy's (Databricks' for clusters); they are repeated here because the SDK may not
import the domain. Clusters keep Databricks' field names (cluster_id, cluster_name, …), as the API sends them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ACTIVE_STATES = frozenset({"not_started", "starting", "running"})
FINAL_STATES = frozenset({"success", "dead", "killed"})
SESSION_FINAL_STATES = frozenset({"error", "dead", "killed", "success"})
SESSION_READY_STATES = frozenset({"idle", "busy"})  # a statement runs now (idle) or after the current one (busy)
STATEMENT_FINAL_STATES = frozenset({"available", "cancelled"})
CLUSTER_STATES = ("PENDING", "RUNNING", "RESIZING", "RESTARTING", "TERMINATING", "TERMINATED", "ERROR")
# A cluster in these stays there until someone starts, restarts or terminates it: the server moves it no further.
CLUSTER_FINAL_STATES = frozenset({"TERMINATED", "ERROR"})

# The mime types of Livy's statement output that the SDK reads; anything else stays in `output` as it came.
TEXT_MIME = "text/plain"
JSON_MIME = "application/json"
TABLE_MIME = "application/vnd.livy.table.v1+json"
PNG_MIME = "image/png"


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


class SessionInfo(_Model):
    """What the server says about an interactive session; `Session` (sessions.py) is the handle that acts on one."""

    id: int
    name: str | None = None
    owner: str
    kind: str
    state: str
    backend: str
    app_id: str | None = None
    spark_ui_url: str | None = None
    # The Spark Connect URL embeds a token: kept out of repr() so it never lands in a log or a traceback by accident.
    connect_url: str | None = Field(default=None, repr=False)
    native_state: str | None = None
    failure_reason: str | None = None
    message: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    submitted_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.state in SESSION_FINAL_STATES

    @property
    def is_ready(self) -> bool:
        """True when the session takes statements: idle, or busy with another one."""
        return self.state in SESSION_READY_STATES

    def duration(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """Up time so far (or in all, once finished); None while it has not started."""
        if self.started_at is None:
            return None
        end = self.finished_at or now or dt.datetime.now(self.started_at.tzinfo)
        return max(end - self.started_at, dt.timedelta(0))


class SessionPage(_Model):
    offset: int
    total: int
    items: tuple[SessionInfo, ...] = ()


class Autoscale(_Model):
    min_workers: int
    max_workers: int


class TerminationReason(_Model):
    """Why a cluster stopped, as Databricks says it: e.g. code USER_REQUEST or INACTIVITY, type SUCCESS."""

    code: str | None = None
    type: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class ClusterInfo(_Model):
    """A cluster as the server describes it: a fixed size (`num_workers`) or an `autoscale` range, and the
    size it is heading for now (`target_workers`)."""

    cluster_id: int
    cluster_name: str
    state: str
    state_message: str | None = None
    creator_user_name: str | None = None
    provider: str | None = None
    node_type_id: str | None = None
    num_workers: int | None = None
    autoscale: Autoscale | None = None
    target_workers: int = 0
    spark_conf: dict[str, str] = Field(default_factory=dict)
    spark_env_vars: dict[str, str] = Field(default_factory=dict)
    autotermination_minutes: float = 0.0  # 0: never
    custom_tags: dict[str, str] = Field(default_factory=dict)
    master_url: str | None = None
    spark_ui_url: str | None = None
    termination_reason: TerminationReason | None = None
    created_at: dt.datetime
    start_time: dt.datetime | None = None
    terminated_time: dt.datetime | None = None
    last_activity_time: dt.datetime | None = None

    @property
    def is_final(self) -> bool:
        """TERMINATED or ERROR: it stays so until someone starts, restarts or terminates it."""
        return self.state in CLUSTER_FINAL_STATES

    @property
    def is_running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def detail(self) -> str | None:
        """The state message, unless it only repeats the state (a TERMINATED cluster's "terminated")."""
        message = self.state_message
        return message if message and message.lower() != self.state.lower() else None


class ClusterPage(_Model):
    offset: int
    total: int
    items: tuple[ClusterInfo, ...] = ()


class ClusterEvent(_Model):
    """One entry of a cluster's timeline: e.g. type CREATING, RUNNING, RESIZING (details say to how many)."""

    cluster_id: int
    timestamp: dt.datetime
    type: str
    details: dict[str, Any] = Field(default_factory=dict)


class ClusterEventPage(_Model):
    offset: int
    total: int
    events: tuple[ClusterEvent, ...] = ()


class ClusterNode(_Model):
    """A machine (or process) of a cluster: its master or a worker; `registered` once the master lists it ALIVE."""

    key: str
    role: str
    state: str
    native_state: str | None = None
    host: str | None = None
    registered: bool = False
    cores: int | None = None
    cores_used: int | None = None
    memory_mb: int | None = None


class NodeType(_Model):
    node_type_id: str
    num_cores: int
    memory_mb: int
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class StatementResult:
    """A statement and, once it is final, its output in Livy's shape (`output`), with readers for each kind.

    A frozen dataclass rather than a _Model: pydantic's BaseModel already has a (deprecated) `json` method,
    and `.json` here is the statement's JSON result. The SDK validates it with pydantic all the same.
    """

    id: int
    code: str
    state: str
    kind: str | None = None  # the Livy face's statements have none; the native API's always do
    output: dict[str, Any] | None = None
    progress: float = 0.0
    started: int = 0  # epoch milliseconds, 0 until it starts (Livy's convention)
    completed: int = 0

    @property
    def is_final(self) -> bool:
        return self.state in STATEMENT_FINAL_STATES

    @property
    def failed(self) -> bool:
        """True when the code raised: the output's status is "error" (the statement itself is `available`)."""
        return self.output is not None and self.output.get("status") == "error"

    @property
    def data(self) -> dict[str, Any]:
        """The output's mime bundle; empty while running, after an error, or when cancelled."""
        data = (self.output or {}).get("data")
        return data if isinstance(data, dict) else {}

    @property
    def text(self) -> str | None:
        value = self.data.get(TEXT_MIME)
        return None if value is None else str(value)

    @property
    def json(self) -> Any:
        """The application/json result as it came (None when there is none): `%json`, or a sql statement's
        {"schema", "data"}, which `table` turns into rows."""
        return self.data.get(JSON_MIME)

    @property
    def image_png(self) -> bytes | None:
        encoded = self.data.get(PNG_MIME)
        if not isinstance(encoded, str):
            return None
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return None

    @property
    def columns(self) -> list[tuple[str, str]] | None:
        """(name, type) of each column of a tabular result, in order; None when the result is not a table."""
        tabular = _tabular(self.data)
        return None if tabular is None else tabular[0]

    @property
    def rows(self) -> list[list[Any]] | None:
        tabular = _tabular(self.data)
        return None if tabular is None else tabular[1]

    @property
    def table(self) -> list[dict[str, Any]] | None:
        """A tabular result (a `%table` or a sql statement) as one dict per row, keyed by column name;
        None when the result is not a table. Use `columns` and `rows` when two columns share a name."""
        tabular = _tabular(self.data)
        if tabular is None:
            return None
        names = [name for name, _ in tabular[0]]
        return [dict(zip(names, row, strict=False)) for row in tabular[1]]

    @property
    def ename(self) -> str | None:
        return str((self.output or {}).get("ename", "Error")) if self.failed else None

    @property
    def evalue(self) -> str | None:
        return str((self.output or {}).get("evalue", "")) if self.failed else None

    @property
    def traceback(self) -> list[str]:
        lines = (self.output or {}).get("traceback") if self.failed else None
        return [str(line) for line in lines] if isinstance(lines, list) else []


class StatementPage(_Model):
    offset: int
    total: int
    items: tuple[StatementResult, ...] = ()


class Candidates(_Model):
    candidates: tuple[str, ...] = ()


def _tabular(data: dict[str, Any]) -> tuple[list[tuple[str, str]], list[list[Any]]] | None:
    """Columns and rows of Livy's table (`%table`) or of a sql result ({"schema": struct, "data": rows})."""
    table = data.get(TABLE_MIME)
    if isinstance(table, dict) and isinstance(table.get("headers"), list):
        columns = [(str(h.get("name", "")), str(h.get("type", ""))) for h in table["headers"] if isinstance(h, dict)]
        return columns, _row_lists(table.get("data"))
    result = data.get(JSON_MIME)
    if isinstance(result, dict) and isinstance(result.get("schema"), dict) and "data" in result:
        fields = result["schema"].get("fields")
        columns = [(str(f.get("name", "")), _type_name(f.get("type"))) for f in fields or [] if isinstance(f, dict)]
        return columns, _row_lists(result.get("data"))
    return None


def _row_lists(rows: Any) -> list[list[Any]]:
    return [list(row) if isinstance(row, list) else [row] for row in rows] if isinstance(rows, list) else []


def _type_name(spark_type: Any) -> str:
    # Spark's JSON schema names simple types with a string and complex ones with an object: {"type": "array", …}.
    if isinstance(spark_type, dict):
        return str(spark_type.get("type", "struct"))
    return str(spark_type)
