"""Ids and offsets as the database holds them: signed 64-bit integers, on SQLite and on PostgreSQL.

A larger id names no row and a larger offset is past every row, so the repositories answer that without
asking the database: handed 2**70, SQLite's driver raises OverflowError and PostgreSQL refuses a numeric
OFFSET, and either would be a 500 for what is a request for nothing.
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1


def storable(value: int) -> bool:
    return -INT64_MAX - 1 <= value <= INT64_MAX


def offset(value: int) -> int:
    return min(value, INT64_MAX)


def id_in_ref(ref: str) -> int | None:
    """The id a Livy path segment names when it is all ASCII digits (else it is a name), -1 if no row can have it.

    ASCII only: str.isdigit() is also true of '²', which int() refuses. And no int() of more digits than a
    64-bit number has: Python refuses to convert a string of over 4300 digits (a ValueError, so a 500)."""
    if not (ref.isascii() and ref.isdigit()):
        return None
    if len(ref.lstrip("0")) > len(str(INT64_MAX)):
        return -1
    value = int(ref)
    return value if storable(value) else -1
