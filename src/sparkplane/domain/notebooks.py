"""Notebooks as data: cells, their kinds and run states, names, and how a statement's state becomes a cell's.

A cell's last output is kept in Livy's statement-output shape (`{"status": "ok", "execution_count": n,
"data": {mime: value}}` or `{"status": "error", "ename", "evalue", "traceback"}`), the one the agent
writes and the web UI renders; notebook_formats.py converts it to and from Jupyter's outputs.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.states import StatementState

MAX_NAME_CHARS = 255
MAX_SOURCE_BYTES = 1_000_000  # as a statement's code: a cell is run as one
MAX_CELLS = 1_000
# The agent already caps a statement's text at a million characters; a cell keeps at most this much JSON
# (an image is base64 in it), so one notebook row never grows without bound.
MAX_OUTPUT_BYTES = 4_000_000


class CellKind(enum.StrEnum):
    PYSPARK = "pyspark"
    SQL = "sql"
    MARKDOWN = "markdown"


CODE_KINDS = frozenset({CellKind.PYSPARK, CellKind.SQL})


class CellState(enum.StrEnum):
    IDLE = "idle"  # never run, or outputs cleared
    QUEUED = "queued"  # waiting: for its statement to start, or (run all) for the cells before it
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


ACTIVE_CELL = frozenset({CellState.QUEUED, CellState.RUNNING})


def cell_kind(value: str) -> CellKind:
    try:
        return CellKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in CellKind)
        raise InvalidInput(f"unknown cell kind '{value}': use one of {kinds}") from None


def check_name(name: str, what: str) -> str:
    """A folder or notebook name: shown in a tree and used as a file name on export."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise InvalidInput(f"a {what} name must be 1 to {MAX_NAME_CHARS} characters")
    if "/" in cleaned or "\\" in cleaned or any(ord(c) < 32 for c in cleaned):
        raise InvalidInput(f"a {what} name may not contain '/', '\\' or control characters: '{cleaned[:40]}'")
    return cleaned


def check_source(source: str) -> str:
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise InvalidInput(f"a cell's source must be at most {MAX_SOURCE_BYTES} bytes")
    return source


def cell_state_of(statement: StatementState, output: Mapping[str, Any] | None) -> CellState:
    """What a cell shows while its statement is in this state (cancelling still runs until the agent stops)."""
    if statement == StatementState.WAITING:
        return CellState.QUEUED
    if statement in (StatementState.RUNNING, StatementState.CANCELLING):
        return CellState.RUNNING
    if statement == StatementState.CANCELLED:
        return CellState.CANCELLED
    if output is not None and output.get("status") == "error":
        return CellState.ERROR
    return CellState.DONE


def capped_output(output: Mapping[str, Any] | None, execution_count: int | None) -> dict[str, Any] | None:
    """The output a cell keeps: the statement's, numbered like the cell, or a note when it is too large."""
    if output is None:
        return None
    kept = dict(output)
    if execution_count is not None:
        kept["execution_count"] = execution_count
    size = len(json.dumps(kept, default=str).encode())
    if size <= MAX_OUTPUT_BYTES:
        return kept
    note = (
        f"[this output is {size} bytes, more than the {MAX_OUTPUT_BYTES} bytes a notebook cell keeps; "
        "write large results to storage and show a sample]"
    )
    if kept.get("status") == "error":
        return {
            "status": "error",
            "execution_count": execution_count,
            "ename": str(kept.get("ename", "Error"))[:200],
            "evalue": note,
            "traceback": [],
        }
    return {"status": "ok", "execution_count": execution_count, "data": {"text/plain": note}}


def session_ended_output(execution_count: int | None) -> dict[str, Any]:
    return {
        "status": "error",
        "execution_count": execution_count,
        "ename": "SessionEnded",
        "evalue": "the session ended before this cell finished; attach the notebook again and rerun it",
        "traceback": [],
    }


@dataclass(frozen=True, slots=True)
class CellDoc:
    """A cell as files carry it: what import and export exchange."""

    kind: CellKind
    source: str
    output: dict[str, Any] | None = None
    execution_count: int | None = None


@dataclass(frozen=True, slots=True)
class NotebookDoc:
    name: str
    cells: Sequence[CellDoc] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.cells) > MAX_CELLS:
            raise InvalidInput(f"a notebook has at most {MAX_CELLS} cells; this one has {len(self.cells)}")
