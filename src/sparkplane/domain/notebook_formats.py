"""Notebooks to and from files: Jupyter's .ipynb (nbformat 4) and .py source. Pure functions.

.ipynb: a sparkplane notebook exported and imported back is the same notebook (cells, kinds, sources, last
outputs and execution counts). A SQL cell is a code cell whose first line is `%%sql`, as sparkmagic writes
it, so the file also opens in Jupyter. A notebook made by Jupyter imports: code cells become pyspark cells
(sql when they start with `%%sql`), markdown cells markdown, raw cells markdown (their text kept); its
outputs are merged into one output per cell (printed text and results joined, the first of each other
type kept, an error wins) and ANSI colours are taken out of tracebacks.

.py: written in Databricks' source format (a `# Databricks notebook source` header, cells separated by
`# COMMAND ----------`, markdown and SQL cells as `# MAGIC %md` / `# MAGIC %sql` lines), which Databricks
imports as is. Import also reads the `# %%` cell markers of VS Code, Spyder and jupytext (`# %% [markdown]`
cells commented with `# `, SQL as a `# %%sql` or `%%sql` first line); a file with no marker is one cell.
A .py file carries no outputs, and blank lines around a cell's source are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.notebooks import CellDoc, CellKind, NotebookDoc

SQL_MAGIC = "%%sql"
DATABRICKS_HEADER = "# Databricks notebook source"
DATABRICKS_SEPARATOR = "# COMMAND ----------"
_MAGIC = "# MAGIC"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PERCENT_MARKER = re.compile(r"^# %%(?:\s(.*))?$")


# ---------------------------------------------------------------------------------------------- ipynb


def to_ipynb(doc: NotebookDoc) -> dict[str, Any]:
    return {
        "cells": [_ipynb_cell(i, cell) for i, cell in enumerate(doc.cells)],
        "metadata": {
            "kernelspec": {"display_name": "PySpark (sparkplane)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "sparkplane": {"name": doc.name},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _ipynb_cell(index: int, cell: CellDoc) -> dict[str, Any]:
    base: dict[str, Any] = {"id": f"cell-{index}", "metadata": {}}
    if cell.kind == CellKind.MARKDOWN:
        return {"cell_type": "markdown", **base, "source": _lines(cell.source)}
    source = f"{SQL_MAGIC}\n{cell.source}" if cell.kind == CellKind.SQL else cell.source
    outputs = [] if cell.output is None else [_jupyter_output(cell.output, cell.execution_count)]
    return {
        "cell_type": "code",
        "execution_count": cell.execution_count,
        **base,
        "outputs": outputs,
        "source": _lines(source),
    }


def _jupyter_output(output: Mapping[str, Any], execution_count: int | None) -> dict[str, Any]:
    if output.get("status") == "error":
        return {
            "output_type": "error",
            "ename": str(output.get("ename", "Error")),
            "evalue": str(output.get("evalue", "")),
            "traceback": [str(line) for line in output.get("traceback") or []],
        }
    data = {
        mime: _lines(value) if isinstance(value, str) and mime.startswith("text/") else value
        for mime, value in dict(output.get("data") or {}).items()
    }
    return {"output_type": "execute_result", "execution_count": execution_count, "data": data, "metadata": {}}


def from_ipynb(data: Any, *, default_name: str) -> NotebookDoc:
    """A notebook from parsed .ipynb JSON; InvalidInput naming what is wrong when it is not nbformat 4."""
    if not isinstance(data, dict):
        raise InvalidInput("not a Jupyter notebook: the file's JSON must be an object with 'cells' and 'nbformat'")
    version = data.get("nbformat")
    if version != 4:
        raise InvalidInput(
            f"nbformat {version!r} is not supported: only nbformat 4 notebooks import "
            "(convert older ones with `jupyter nbconvert --to notebook`)"
        )
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise InvalidInput("not a Jupyter notebook: 'cells' must be a list")
    metadata = data.get("metadata")
    ours = metadata.get("sparkplane") if isinstance(metadata, dict) else None
    stored = ours.get("name") if isinstance(ours, dict) else None
    name = stored if isinstance(stored, str) and stored.strip() else default_name
    return NotebookDoc(name=name, cells=tuple(_doc_cell(i, cell) for i, cell in enumerate(cells)))


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    raise InvalidInput(f"{where} must be a string or a list of strings")


def _doc_cell(index: int, cell: Any) -> CellDoc:
    where = f"cell {index}"
    if not isinstance(cell, dict):
        raise InvalidInput(f"{where} is not an object")
    cell_type = cell.get("cell_type")
    source = _text(cell.get("source", ""), f"{where}: 'source'")
    if cell_type in ("markdown", "raw"):
        return CellDoc(CellKind.MARKDOWN, source)
    if cell_type != "code":
        raise InvalidInput(f"{where}: cell_type {cell_type!r} is unknown (code, markdown or raw)")
    kind = CellKind.PYSPARK
    first, newline, rest = source.partition("\n")
    if first.strip() == SQL_MAGIC:
        kind, source = CellKind.SQL, rest if newline else ""
    count = cell.get("execution_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise InvalidInput(f"{where}: 'execution_count' must be an integer or null")
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        raise InvalidInput(f"{where}: 'outputs' must be a list")
    return CellDoc(kind, source, _merged_output(outputs, count, where), count)


def _merged_output(outputs: Sequence[Any], count: int | None, where: str) -> dict[str, Any] | None:
    """Jupyter's outputs of one cell as one Livy-shaped output (an error, if any, wins)."""
    text: list[str] = []
    data: dict[str, Any] = {}
    for i, output in enumerate(outputs):
        at = f"{where} output {i}"
        if not isinstance(output, dict):
            raise InvalidInput(f"{at} is not an object")
        kind = output.get("output_type")
        if kind == "error":
            return {
                "status": "error",
                "execution_count": count,
                "ename": str(output.get("ename", "Error")),
                "evalue": _ANSI.sub("", str(output.get("evalue", ""))),
                "traceback": [_ANSI.sub("", line) for line in _strings(output.get("traceback", []), at)],
            }
        if kind == "stream":
            text.append(_text(output.get("text", ""), f"{at}: 'text'"))
        elif kind in ("execute_result", "display_data"):
            bundle = output.get("data", {})
            if not isinstance(bundle, dict):
                raise InvalidInput(f"{at}: 'data' must be an object of mime types")
            for mime, value in bundle.items():
                value = value if mime.endswith("json") else _text(value, f"{at}: data '{mime}'")
                if mime == "text/plain":
                    text.append(value)
                else:
                    data.setdefault(mime, value)
        else:
            raise InvalidInput(f"{at}: output_type {kind!r} is unknown (stream, execute_result, display_data, error)")
    if not outputs:
        return None
    if text or not data:
        data["text/plain"] = "".join(text)
    return {"status": "ok", "execution_count": count, "data": data}


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise InvalidInput(f"{where}: 'traceback' must be a list of strings")
    return value


# ------------------------------------------------------------------------------------------------- .py


def to_py(doc: NotebookDoc) -> str:
    """Databricks' notebook source format."""
    return DATABRICKS_HEADER + "\n" + f"\n\n{DATABRICKS_SEPARATOR}\n\n".join(_py_cell(c) for c in doc.cells) + "\n"


def _py_cell(cell: CellDoc) -> str:
    if cell.kind == CellKind.PYSPARK:
        return cell.source
    magic = "%md" if cell.kind == CellKind.MARKDOWN else "%sql"
    lines = [magic, *cell.source.split("\n")] if cell.source else [magic]
    return "\n".join(f"{_MAGIC} {line}" if line else _MAGIC for line in lines)


def from_py(text: str, *, default_name: str) -> NotebookDoc:
    lines = text.replace("\r\n", "\n").split("\n")
    if any(line.rstrip() == DATABRICKS_SEPARATOR for line in lines) or (lines and lines[0] == DATABRICKS_HEADER):
        cells = _databricks_cells(lines)
    elif any(_PERCENT_MARKER.match(line) for line in lines):
        cells = _percent_cells(lines)
    else:
        body = "\n".join(lines).strip("\n")
        cells = [CellDoc(CellKind.PYSPARK, body)] if body else []
    return NotebookDoc(name=default_name, cells=tuple(cells))


def _databricks_cells(lines: list[str]) -> list[CellDoc]:
    if lines and lines[0].strip() == DATABRICKS_HEADER:
        lines = lines[1:]
    chunks: list[list[str]] = [[]]
    for line in lines:
        if line.rstrip() == DATABRICKS_SEPARATOR:
            chunks.append([])
        else:
            chunks[-1].append(line)
    return [_databricks_cell(i, chunk) for i, chunk in enumerate(chunks)]


def _databricks_cell(index: int, chunk: list[str]) -> CellDoc:
    body = "\n".join(chunk).strip("\n")
    body_lines = body.split("\n")
    if not body_lines[0].startswith(_MAGIC):
        return CellDoc(CellKind.PYSPARK, body)
    unmagicked = []
    for line in body_lines:
        if not line.startswith(_MAGIC):
            raise InvalidInput(f"cell {index}: every line of a '# MAGIC' cell must start with '# MAGIC'")
        unmagicked.append(line[len(_MAGIC) + 1 :] if line.startswith(_MAGIC + " ") else line[len(_MAGIC) :])
    magic, _, first_rest = unmagicked[0].partition(" ")
    rest = ([first_rest] if first_rest.strip() else []) + unmagicked[1:]
    kinds = {"%md": CellKind.MARKDOWN, "%md-sandbox": CellKind.MARKDOWN, "%sql": CellKind.SQL}
    if magic == "%python":
        return CellDoc(CellKind.PYSPARK, "\n".join(rest))
    if magic not in kinds:
        raise InvalidInput(
            f"cell {index} is a '{magic}' cell; sparkplane notebooks have pyspark, sql and markdown cells"
        )
    return CellDoc(kinds[magic], "\n".join(rest))


def _percent_cells(lines: list[str]) -> list[CellDoc]:
    cells: list[CellDoc] = []
    header: list[str] = []
    current: tuple[str, list[str]] | None = None
    for line in _without_jupytext_header(lines):
        marker = _PERCENT_MARKER.match(line)
        if marker:
            if current is not None:
                cells.append(_percent_cell(*current))
            current = (marker.group(1) or "", [])
        elif current is None:
            header.append(line)
        else:
            current[1].append(line)
    if current is not None:
        cells.append(_percent_cell(*current))
    preamble = "\n".join(header).strip("\n")
    return ([CellDoc(CellKind.PYSPARK, preamble)] if preamble else []) + cells


def _without_jupytext_header(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == "# ---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "# ---":
                return lines[i + 1 :]
    return lines


def _percent_cell(title: str, body: list[str]) -> CellDoc:
    if re.search(r"\[(markdown|md)\]", title):
        text = "\n".join(line[2:] if line.startswith("# ") else line.removeprefix("#") for line in body)
        return CellDoc(CellKind.MARKDOWN, text.strip("\n"))
    source = "\n".join(body).strip("\n")
    first, newline, rest = source.partition("\n")
    if first.strip() in (SQL_MAGIC, f"# {SQL_MAGIC}"):
        return CellDoc(CellKind.SQL, rest.strip("\n") if newline else "")
    return CellDoc(CellKind.PYSPARK, source)
