"""Notebook files: .ipynb and .py both ways, and notebooks made by Jupyter, VS Code and Databricks."""

from __future__ import annotations

import json

import pytest

from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.notebook_formats import from_ipynb, from_py, to_ipynb, to_py
from sparkplane.domain.notebooks import (
    MAX_OUTPUT_BYTES,
    CellDoc,
    CellKind,
    CellState,
    NotebookDoc,
    capped_output,
    cell_kind,
    cell_state_of,
    check_name,
)
from sparkplane.domain.states import StatementState

TABLE = {
    "schema": {"type": "struct", "fields": [{"name": "id", "type": "long", "nullable": False, "metadata": {}}]},
    "data": [[0], [1]],
}
DOC = NotebookDoc(
    name="Sales report",
    cells=(
        CellDoc(CellKind.MARKDOWN, "# Sales\n\nBy *region*."),
        CellDoc(
            CellKind.PYSPARK,
            "df = spark.range(3)\nprint(df.count())",
            {"status": "ok", "execution_count": 1, "data": {"text/plain": "3\nmore"}},
            1,
        ),
        CellDoc(
            CellKind.SQL,
            "SELECT id FROM range(2)",
            {"status": "ok", "execution_count": 2, "data": {"application/json": TABLE}},
            2,
        ),
        CellDoc(
            CellKind.PYSPARK,
            "%matplot plt",
            {"status": "ok", "execution_count": 3, "data": {"image/png": "iVBORw0KGgo=", "text/plain": ""}},
            3,
        ),
        CellDoc(
            CellKind.PYSPARK,
            "1/0",
            {
                "status": "error",
                "execution_count": 4,
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": ["Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"],
            },
            4,
        ),
        CellDoc(CellKind.SQL, "SELECT 1"),
        CellDoc(CellKind.PYSPARK, ""),
    ),
)


def test_ipynb_round_trip_is_the_same_notebook() -> None:
    exported = to_ipynb(DOC)
    again = from_ipynb(json.loads(json.dumps(exported)), default_name="ignored")
    assert again == DOC


def test_ipynb_export_is_nbformat_4_that_jupyter_reads() -> None:
    exported = to_ipynb(DOC)
    assert exported["nbformat"] == 4 and exported["nbformat_minor"] == 5
    markdown, code, sql, image, error, _, _ = exported["cells"]
    assert markdown == {
        "cell_type": "markdown",
        "id": "cell-0",
        "metadata": {},
        "source": ["# Sales\n", "\n", "By *region*."],
    }
    assert code["cell_type"] == "code" and code["execution_count"] == 1
    assert code["outputs"] == [
        {"output_type": "execute_result", "execution_count": 1, "data": {"text/plain": ["3\n", "more"]}, "metadata": {}}
    ]
    assert sql["source"] == ["%%sql\n", "SELECT id FROM range(2)"]
    assert sql["outputs"][0]["data"]["application/json"] == TABLE
    assert image["outputs"][0]["data"]["image/png"] == "iVBORw0KGgo="
    assert error["outputs"] == [
        {
            "output_type": "error",
            "ename": "ZeroDivisionError",
            "evalue": "division by zero",
            "traceback": ["Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"],
        }
    ]
    assert len({cell["id"] for cell in exported["cells"]}) == len(DOC.cells)


# A notebook as Jupyter 7 saves it: sources as line lists, printed text as streams, a coloured traceback.
JUPYTER_MADE = {
    "cells": [
        {"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["# Title\n", "text"]},
        {
            "cell_type": "code",
            "execution_count": 3,
            "id": "b2",
            "metadata": {"scrolled": True},
            "outputs": [
                {"name": "stdout", "output_type": "stream", "text": ["hello\n"]},
                {"data": {"text/plain": ["42"]}, "execution_count": 3, "metadata": {}, "output_type": "execute_result"},
                {
                    "data": {"image/png": "iVBOR\n", "text/plain": ["<Figure>"]},
                    "metadata": {},
                    "output_type": "display_data",
                },
            ],
            "source": ["x = 42\n", "print('hello')\n", "x"],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "c3",
            "metadata": {},
            "outputs": [],
            "source": "%%sql\nSELECT *\nFROM t",
        },
        {
            "cell_type": "code",
            "execution_count": 5,
            "id": "d4",
            "metadata": {},
            "outputs": [
                {
                    "ename": "NameError",
                    "evalue": "name 'y' is not defined",
                    "output_type": "error",
                    "traceback": ["\x1b[0;31mNameError\x1b[0m: name 'y' is not defined"],
                }
            ],
            "source": "y",
        },
        {"cell_type": "raw", "id": "e5", "metadata": {}, "source": "raw text"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_a_notebook_made_by_jupyter_imports() -> None:
    doc = from_ipynb(JUPYTER_MADE, default_name="analysis")
    assert doc.name == "analysis"
    assert [c.kind for c in doc.cells] == [
        CellKind.MARKDOWN,
        CellKind.PYSPARK,
        CellKind.SQL,
        CellKind.PYSPARK,
        CellKind.MARKDOWN,
    ]
    markdown, code, sql, failed, raw = doc.cells
    assert markdown.source == "# Title\ntext" and raw.source == "raw text"
    assert code.source == "x = 42\nprint('hello')\nx" and code.execution_count == 3
    assert code.output == {
        "status": "ok",
        "execution_count": 3,
        "data": {"text/plain": "hello\n42<Figure>", "image/png": "iVBOR\n"},
    }
    assert sql.source == "SELECT *\nFROM t" and sql.output is None and sql.execution_count is None
    assert failed.output is not None and failed.output["status"] == "error"
    assert failed.output["traceback"] == ["NameError: name 'y' is not defined"]  # colours gone


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"nbformat": 3, "worksheets": []}, "nbformat 3 is not supported"),
        ({"nbformat": 4}, "'cells' must be a list"),
        ({"nbformat": 4, "cells": [{"cell_type": "heading", "source": ""}]}, "cell 0: cell_type 'heading' is unknown"),
        ({"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}, "cell 0: 'source' must be a string"),
        (
            {"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "outputs": [{"output_type": "x"}]}]},
            "cell 0 output 0: output_type 'x' is unknown",
        ),
        ({"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "execution_count": "1"}]}, "execution_count"),
    ],
)
def test_a_bad_ipynb_says_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        from_ipynb(data, default_name="x")


def test_py_round_trip_keeps_cells_without_outputs() -> None:
    text = to_py(DOC)
    assert text.startswith("# Databricks notebook source\n")
    assert "\n\n# COMMAND ----------\n\n# MAGIC %md\n" not in text  # the first cell follows the header
    assert "# MAGIC %sql\n# MAGIC SELECT id FROM range(2)" in text
    again = from_py(text, default_name="Sales report")
    assert again == NotebookDoc(DOC.name, tuple(CellDoc(c.kind, c.source) for c in DOC.cells))


def test_py_with_percent_markers_imports() -> None:
    text = (
        "# ---\n# jupyter:\n#   kernelspec: {}\n# ---\n\n"
        "import os\n\n"
        "# %% [markdown]\n# # Heading\n#\n# words\n\n"
        "# %%\nx = 1\nprint(x)\n\n"
        "# %% load\n# %%sql\nSELECT 2\n"
    )
    doc = from_py(text, default_name="script")
    assert [(c.kind, c.source) for c in doc.cells] == [
        (CellKind.PYSPARK, "import os"),
        (CellKind.MARKDOWN, "# Heading\n\nwords"),
        (CellKind.PYSPARK, "x = 1\nprint(x)"),
        (CellKind.SQL, "SELECT 2"),
    ]


def test_py_without_markers_is_one_cell_and_databricks_magic_is_read() -> None:
    assert from_py("print(1)\n", default_name="s").cells == (CellDoc(CellKind.PYSPARK, "print(1)"),)
    assert from_py("", default_name="s").cells == ()
    databricks = (
        "# Databricks notebook source\n# MAGIC %md # Hi\n\n# COMMAND ----------\n\n# MAGIC %python\n# MAGIC x = 1\n"
    )
    assert [(c.kind, c.source) for c in from_py(databricks, default_name="s").cells] == [
        (CellKind.MARKDOWN, "# Hi"),
        (CellKind.PYSPARK, "x = 1"),
    ]
    with pytest.raises(InvalidInput, match="'%scala' cell"):
        from_py("# Databricks notebook source\n# MAGIC %scala\n# MAGIC val x = 1\n", default_name="s")


def test_cell_states_follow_the_statement() -> None:
    assert cell_state_of(StatementState.WAITING, None) == CellState.QUEUED
    assert cell_state_of(StatementState.CANCELLING, None) == CellState.RUNNING
    assert cell_state_of(StatementState.CANCELLED, None) == CellState.CANCELLED
    assert cell_state_of(StatementState.AVAILABLE, {"status": "ok"}) == CellState.DONE
    assert cell_state_of(StatementState.AVAILABLE, {"status": "error"}) == CellState.ERROR


def test_kinds_names_and_the_output_cap() -> None:
    assert cell_kind("sql") == CellKind.SQL
    with pytest.raises(InvalidInput, match="unknown cell kind 'scala': use one of pyspark, sql, markdown"):
        cell_kind("scala")
    assert check_name("  reports ", "folder") == "reports"
    for bad in ("", "a/b", "x" * 256, "tab\there"):
        with pytest.raises(InvalidInput):
            check_name(bad, "folder")
    small = {"status": "ok", "execution_count": 0, "data": {"text/plain": "hi"}}
    assert capped_output(small, 7) == {"status": "ok", "execution_count": 7, "data": {"text/plain": "hi"}}
    huge = capped_output({"status": "ok", "data": {"image/png": "A" * (MAX_OUTPUT_BYTES + 1)}}, 2)
    assert huge is not None and "more than the" in huge["data"]["text/plain"] and "image/png" not in huge["data"]
