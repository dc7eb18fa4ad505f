"""Rich renderables for the SDK's models: what the CLI prints, and what a notebook shows with `rich.print`.

Times are shown in the local time zone; durations as "42s", "3m05s" or "1h02m".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from sparkplane.client.models import Batch, Event, Token, User

_STATE_STYLE = {"success": "green", "dead": "red", "killed": "magenta", "running": "cyan", "starting": "blue"}


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
    details = Table.grid(padding=(0, 2))
    for key, value in fields:
        if value:
            # Text(), not a str: a message or conf value with [brackets] must not be read as Rich markup.
            details.add_row(Text(key, style="bold"), value if isinstance(value, Text) else Text(value))
    timeline = Table("at", "from", "to", "reason", "message", box=None, title="events", title_justify="left")
    for e in events:
        timeline.add_row(when(e.at), e.from_state or "", state_text(e.to_state), e.reason or "", Text(e.message or ""))
    return Group(details, Text(""), timeline)


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
        elapsed = duration(dt.timedelta(seconds=time.monotonic() - self._started))
        return Text.assemble(f"batch {self.batch.id} ", state_text(self.batch.state), f" · {elapsed}")
