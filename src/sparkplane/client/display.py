"""Rich renderables for the SDK's models: what the CLI prints, and what a notebook shows with `rich.print`.

Times are shown in the local time zone; durations as "42s", "3m05s" or "1h02m".
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group
from rich.table import Column, Table
from rich.text import Text

from sparkplane.client.models import Batch, Event, SessionInfo, StatementResult, Token, User

# Batch, session, statement and cluster states share one palette: green is good, red is broken, cyan is
# working. Clusters' states are Databricks' upper-case ones, so they never clash with Livy's.
_STATE_STYLE = {
    "success": "green",
    "dead": "red",
    "error": "red",
    "killed": "magenta",
    "running": "cyan",
    "busy": "cyan",
    "starting": "blue",
    "recovering": "yellow",
    "shutting_down": "yellow",
    "idle": "green",
    "available": "green",
    "cancelling": "magenta",
    "cancelled": "magenta",
    "PENDING": "blue",
    "RUNNING": "green",
    "RESIZING": "cyan",
    "RESTARTING": "yellow",
    "TERMINATING": "yellow",
    "TERMINATED": "dim",
    "ERROR": "red",
}


def state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, "dim"))


def when(at: dt.datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def duration(delta: dt.timedelta | None) -> str:
    if delta is None:
        return ""
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def elapsed_since(started: float) -> str:
    """The time since `started` (a time.monotonic() reading), for a spinner's text."""
    return duration(dt.timedelta(seconds=time.monotonic() - started))


def batches_table(batches: Iterable[Batch]) -> Table:
    table = Table("id", "name", "owner", "state", "app id", "submitted", "duration", box=None)
    for b in batches:
        table.add_row(
            str(b.id),
            b.name or "",
            b.owner,
            state_text(b.state),
            b.app_id or "",
            when(b.submitted_at),
            duration(b.duration()),
        )
    return table


def batch_details(batch: Batch, events: Sequence[Event] = ()) -> Group:
    """Every field that has a value, then the state timeline."""
    backend = f"{batch.backend} ({batch.native_state})" if batch.native_state else batch.backend
    fields: list[tuple[str, str | Text | None]] = [
        ("id", str(batch.id)),
        ("name", batch.name),
        ("owner", batch.owner),
        ("state", state_text(batch.state)),
        ("backend", backend),
        ("app id", batch.app_id),
        ("spark ui", batch.spark_ui_url),
        ("file", batch.file),
        ("args", " ".join(batch.args)),
        ("class", batch.class_name),
        ("conf", ", ".join(f"{k}={v}" for k, v in batch.conf.items())),
        ("submitted", when(batch.submitted_at)),
        ("started", when(batch.started_at)),
        ("finished", when(batch.finished_at)),
        ("duration", duration(batch.duration())),
        ("failure", batch.failure_reason),
        ("message", batch.message),
    ]
    return Group(fields_grid(fields), Text(""), _timeline(events))


def fields_grid(fields: Iterable[tuple[str, str | Text | None]]) -> Table:
    """A two-column grid of the fields that have a value."""
    grid = Table.grid(padding=(0, 2))
    for key, value in fields:
        if value:
            # Text(), not a str: a message or conf value with [brackets] must not be read as Rich markup.
            grid.add_row(Text(key, style="bold"), value if isinstance(value, Text) else Text(value))
    return grid


def _timeline(events: Iterable[Event]) -> Table:
    timeline = Table("at", "from", "to", "reason", "message", box=None, title="events", title_justify="left")
    for e in events:
        timeline.add_row(when(e.at), e.from_state or "", state_text(e.to_state), e.reason or "", Text(e.message or ""))
    return timeline


def finished_line(batch: Batch) -> Text:
    """E.g. "Batch 7 finished success in 1m02s", or the reason for a failure."""
    took = duration(batch.duration())
    text = Text.assemble(f"Batch {batch.id} finished ", state_text(batch.state), f" in {took}" if took else "")
    if not batch.succeeded and (batch.failure_reason or batch.message):
        text.append(": " + " ".join(p for p in (batch.failure_reason, batch.message) if p))
    return text


def users_table(users: Iterable[User]) -> Table:
    table = Table("id", "username", "role", "active", box=None)
    for u in users:
        table.add_row(str(u.id), u.username, u.role, "yes" if u.is_active else Text("no", style="red"))
    return table


def tokens_table(tokens: Iterable[Token]) -> Table:
    table = Table("id", "name", "prefix", "user", "created", "last used", "revoked", box=None)
    for t in tokens:
        revoked = Text("yes", style="red") if t.revoked else "no"
        table.add_row(str(t.id), t.name, t.prefix, str(t.user_id), when(t.created_at), when(t.last_used_at), revoked)
    return table


class WaitStatus:
    """A spinner's text while waiting for a batch. Rich re-renders it on every refresh, so the elapsed
    time ticks between polls; `update` is an `on_update` callback for wait_batch/follow_log."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self._started = time.monotonic()

    def update(self, batch: Batch) -> None:
        self.batch = batch

    def __rich__(self) -> Text:
        elapsed = elapsed_since(self._started)
        return Text.assemble(f"batch {self.batch.id} ", state_text(self.batch.state), f" · {elapsed}")


# ---- sessions and statements ----------------------------------------------------------------------------


def sessions_table(sessions: Iterable[SessionInfo]) -> Table:
    table = Table("id", "name", "owner", "kind", "state", "backend", "app id", "submitted", "up", box=None)
    for s in sessions:
        table.add_row(
            str(s.id),
            s.name or "",
            s.owner,
            s.kind,
            state_text(s.state),
            s.backend,
            s.app_id or "",
            when(s.submitted_at),
            duration(s.duration()),
        )
    return table


def session_details(session: SessionInfo, events: Sequence[Event] = ()) -> Group:
    """Every field that has a value, then the state timeline (as for a batch)."""
    backend = f"{session.backend} ({session.native_state})" if session.native_state else session.backend
    fields: list[tuple[str, str | Text | None]] = [
        ("id", str(session.id)),
        ("name", session.name),
        ("owner", session.owner),
        ("kind", session.kind),
        ("state", state_text(session.state)),
        ("backend", backend),
        ("app id", session.app_id),
        ("spark ui", session.spark_ui_url),
        ("spark connect", session.connect_url),  # only ever sent to the session's owner
        ("conf", ", ".join(f"{k}={v}" for k, v in session.conf.items())),
        ("submitted", when(session.submitted_at)),
        ("started", when(session.started_at)),
        ("last activity", when(session.last_activity_at)),
        ("finished", when(session.finished_at)),
        ("up", duration(session.duration())),
        ("failure", session.failure_reason),
        ("message", session.message),
    ]
    return Group(fields_grid(fields), Text(""), _timeline(events))


def result_table(result: StatementResult) -> Table | None:
    """A tabular result (sql, `%table`) as a Rich table captioned with its row count; None for other results."""
    columns, rows = result.columns, result.rows
    if columns is None or rows is None:
        return None
    count = f"{len(rows)} row" + ("" if len(rows) == 1 else "s")
    # Column(header=Text(…)): a column named like Rich markup ([bold]) must show as it is.
    table = Table(*(Column(header=Text(name)) for name, _ in columns), caption=count, caption_justify="left")
    for row in rows:
        table.add_row(*(cell_text(value) for value in row))
    return table


def cell_text(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def error_text(result: StatementResult) -> Text:
    """The session side's traceback in red, ending with "ename: evalue" as Python's own does."""
    head = f"{result.ename}: {result.evalue}" if result.evalue else str(result.ename)
    lines = "".join(line if line.endswith("\n") else line + "\n" for line in result.traceback).rstrip("\n")
    if head not in lines:
        lines = f"{lines}\n{head}" if lines else head
    return Text(lines, style="red")


class SessionStatus:
    """A spinner's text while a session starts: state and elapsed time. `update` is an `on_update` callback;
    before its first call (the create request is still out) the session has no id to show."""

    def __init__(self, session: SessionInfo | None = None) -> None:
        self.session = session
        self._started = time.monotonic()

    def update(self, session: SessionInfo) -> None:
        self.session = session

    def __rich__(self) -> Text:
        elapsed = elapsed_since(self._started)
        if self.session is None:
            return Text(f"creating a session · {elapsed}")
        return Text.assemble(f"session {self.session.id} ", state_text(self.session.state), f" · {elapsed}")


class StatementStatus:
    """A spinner's text while a statement runs: state, elapsed time and Spark's progress when it has some."""

    def __init__(self, statement: StatementResult | None = None) -> None:
        self.statement = statement
        self._started = time.monotonic()

    def update(self, statement: StatementResult) -> None:
        self.statement = statement

    def __rich__(self) -> Text:
        elapsed = elapsed_since(self._started)
        if self.statement is None:
            return Text(f"submitting · {elapsed}")
        progress = self.statement.progress
        done = f" · {progress:.0%}" if 0 < progress < 1 else ""
        return Text.assemble(f"statement {self.statement.id} ", state_text(self.statement.state), f" · {elapsed}{done}")
