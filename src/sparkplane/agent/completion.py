"""Completion candidates for the word before the cursor (Livy's POST /sessions/{id}/completion).

Python: `rlcompleter` over the statement namespace, so names defined by earlier statements complete, and
`df.` lists a DataFrame's attributes. SQL: keywords, then tables and views of the current database.
"""

from __future__ import annotations

import re
import rlcompleter
from collections.abc import Callable, Mapping
from typing import Any

MAX_CANDIDATES = 500  # `dir()` of a module can be long; a completion popup needs far fewer
_PYTHON_WORD = re.compile(r"[A-Za-z_][\w.]*$")
_SQL_WORD = re.compile(r"[\w.]*$")

SQL_KEYWORDS = (
    "ALTER", "AND", "AS", "ASC", "BETWEEN", "BY", "CACHE", "CASE", "CAST", "CREATE", "CROSS", "DATABASE",
    "DELETE", "DESC", "DESCRIBE", "DISTINCT", "DROP", "ELSE", "END", "EXISTS", "EXPLAIN", "FALSE", "FROM",
    "FULL", "FUNCTION", "GROUP", "HAVING", "IF", "IN", "INNER", "INSERT", "INTO", "IS", "JOIN", "LEFT", "LIKE",
    "LIMIT", "MERGE", "NOT", "NULL", "ON", "OR", "ORDER", "OUTER", "OVER", "PARTITION", "REPLACE", "RIGHT",
    "SELECT", "SET", "SHOW", "TABLE", "TABLES", "TEMPORARY", "THEN", "TRUE", "UNION", "UPDATE", "USING",
    "VALUES", "VIEW", "WHEN", "WHERE", "WITH",
)  # fmt: skip


def complete(
    namespace: Mapping[str, Any],
    code: str,
    kind: str,
    cursor: int,
    *,
    tables: Callable[[], list[str]] | None = None,
) -> list[str]:
    before = code[: max(0, min(cursor, len(code)))]
    if kind == "sql":
        return _sql(before, tables)
    match = _PYTHON_WORD.search(before)
    if match is None:
        return []
    return _python(dict(namespace), match.group(0))


def _python(namespace: dict[str, Any], word: str) -> list[str]:
    completer = rlcompleter.Completer(namespace)
    candidates: list[str] = []
    for state in range(MAX_CANDIDATES):
        try:
            candidate = completer.complete(word, state)
        except Exception:  # evaluating `a.b.` may raise anything the object raises
            break
        if candidate is None:
            break
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def _sql(before: str, tables: Callable[[], list[str]] | None) -> list[str]:
    match = _SQL_WORD.search(before)
    word = match.group(0) if match else ""
    if not word:
        return []
    keywords = [k.lower() for k in SQL_KEYWORDS] if word.islower() else list(SQL_KEYWORDS)
    names: list[str] = []
    if tables is not None:
        try:
            names = tables()
        except Exception:  # a broken catalog must not break typing
            names = []
    folded = word.lower()
    found = [k for k in keywords if k.lower().startswith(folded)]
    found += sorted(n for n in names if n.lower().startswith(folded))
    return found[:MAX_CANDIDATES]
