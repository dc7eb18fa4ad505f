"""Livy's magics (`%json`, `%table`, `%matplot`) and the JSON conversion of result rows.

Each magic takes the statement namespace and the rest of its line, and returns the output's mime bundle or
raises; the runner turns an exception into Livy's error output. Shapes follow Livy's fake_shell.py:
`%table` gives `application/vnd.livy.table.v1+json` with Livy's type names, `%matplot` a base64 PNG.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import importlib.util
import io
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

TABLE_MIME = "application/vnd.livy.table.v1+json"
JSON_MIME = "application/json"
PNG_MIME = "image/png"
TABLE_MAX_ROWS = 1000  # of a Spark DataFrame given to %table: the same cap as a sql statement's result


class UnknownMagic(Exception):
    """Livy's name for a `%word` it does not know."""


def run_magic(line: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    name, _, rest = line[1:].partition(" ")
    if not name:
        raise UnknownMagic("magic command not specified")
    handler = _MAGICS.get(name)
    if handler is None:
        raise UnknownMagic(f"unknown magic command '{name}'")
    return handler(namespace, rest.strip())


def _lookup(namespace: Mapping[str, Any], name: str) -> Any:
    if not name:
        raise KeyError("a variable name is needed after the magic, e.g. %json result")
    return namespace[name]  # KeyError, as in Livy


def magic_json(namespace: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = _lookup(namespace, name)
    json.dumps(value, allow_nan=False)  # fail here, as a statement error, rather than when the output is sent
    return {JSON_MIME: value}


def magic_matplot(namespace: Mapping[str, Any], name: str) -> dict[str, Any]:
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(
            "%matplot needs matplotlib, which is not installed in this session's Python; "
            "ask the administrator to add it to the driver's environment"
        )
    value = _lookup(namespace, name)
    # Livy takes pyplot (`plt`, so gcf()); a Figure itself is accepted too.
    figure = value if hasattr(value, "savefig") else value.gcf()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    return {PNG_MIME: base64.b64encode(image.getvalue()).decode("ascii"), "text/plain": ""}


def magic_table(namespace: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = _lookup(namespace, name)
    rows = _table_rows(value)
    headers: dict[Any, dict[str, str]] = {}
    data: list[list[Any]] = []
    for row in rows:
        cells: list[Any] = []
        data.append(cells)
        if type(row).__name__ == "Row" and hasattr(row, "asDict"):
            row = row.asDict()
        if not isinstance(row, list | tuple | dict):
            row = [row]
        items = enumerate(row) if isinstance(row, list | tuple) else sorted(row.items())
        for key, cell in items:
            cell_type, converted = table_cell(cell)
            header = headers.setdefault(key, {"name": str(key), "type": cell_type})
            # A column keeps one type; None fits any (Livy's rule), and fixes a column that began with None.
            if cell_type != "NULL_TYPE" and header["type"] != cell_type:
                if header["type"] != "NULL_TYPE":
                    raise ValueError(f"table rows have different types in column '{key}'")
                header["type"] = cell_type
            cells.append(converted)
    return {TABLE_MIME: {"headers": [headers[key] for key in sorted(headers, key=_sort_key)], "data": data}}


def _sort_key(key: Any) -> tuple[str, Any]:
    # Positions (ints) and names (strs) never mix in one table, but sorting must not raise if they do.
    return (type(key).__name__, key)


def _table_rows(value: Any) -> list[Any]:
    """A list of rows from a list/tuple, a pandas DataFrame or a Spark DataFrame (first 1,000 rows)."""
    if isinstance(value, list | tuple):
        return list(value)
    if hasattr(value, "to_dict") and hasattr(value, "columns") and hasattr(value, "iloc"):  # pandas
        records: list[Any] = value.to_dict(orient="records")
        return records
    if hasattr(value, "take") and hasattr(value, "schema"):  # a Spark DataFrame: Rows become dicts
        return [row.asDict() for row in value.take(TABLE_MAX_ROWS)]
    return [value]


def table_cell(value: Any) -> tuple[str, Any]:
    """Livy's type name for a cell and its JSON form (fake_shell's magic_table_types; others as strings)."""
    if value is None:
        return "NULL_TYPE", None
    if isinstance(value, bool):
        return "BOOLEAN_TYPE", value
    if isinstance(value, int):
        return "INT_TYPE", value
    if isinstance(value, float):
        return "DOUBLE_TYPE", json_safe(value)
    if isinstance(value, str):
        return "STRING_TYPE", value
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return "TIMESTAMP_TYPE", str(value)
    if isinstance(value, dt.date):
        return "DATE_TYPE", str(value)
    if isinstance(value, decimal.Decimal):
        return "DECIMAL_TYPE", str(value)
    if isinstance(value, list | tuple):
        types = {table_cell(item)[0] for item in value}
        if len(types) > 1:
            raise ValueError("value has inconsistent types")
        return "ARRAY_TYPE", [table_cell(item)[1] for item in value]
    if isinstance(value, dict):
        return "MAP_TYPE", {str(key): table_cell(item)[1] for key, item in value.items()}
    return "STRING_TYPE", str(value)


def json_safe(value: Any) -> Any:
    """A Spark row value as strict JSON: dates as ISO text, decimals as numbers, NaN and infinities as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "asDict"):  # a struct (pyspark Row)
        return {key: json_safe(item) for key, item in value.asDict().items()}
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return str(value)


_MAGICS: Mapping[str, Callable[[Mapping[str, Any], str], dict[str, Any]]] = {
    "json": magic_json,
    "table": magic_table,
    "matplot": magic_matplot,
}
