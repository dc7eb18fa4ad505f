"""The statement runner's REPL semantics and Livy output shapes, on a namespace without Spark."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import json
from typing import Any

import pytest

from sparkplane.agent.capture import CappedText
from sparkplane.agent.magics import TABLE_MIME, json_safe, table_cell
from sparkplane.agent.runner import Runner


@pytest.fixture
def runner() -> Runner:
    return Runner({})


def ok_text(runner: Runner, code: str) -> str:
    output = runner.run(code, "pyspark").output
    assert output["status"] == "ok", output
    return str(output["data"]["text/plain"])


def test_the_last_expression_is_shown_like_a_repl(runner: Runner) -> None:
    assert runner.run("1+1", "pyspark").output == {"status": "ok", "execution_count": 0, "data": {"text/plain": "2"}}
    assert ok_text(runner, "x = 'a'\nx") == "'a'"
    assert ok_text(runner, "x = 5") == ""  # an assignment shows nothing
    assert ok_text(runner, "None") == ""  # as at a REPL


def test_namespace_persists_and_execution_count_increments(runner: Runner) -> None:
    runner.run("def f(n):\n    return n * 2", "pyspark")
    output = runner.run("f(21)", "pyspark").output
    assert output["data"]["text/plain"] == "42"
    assert output["execution_count"] == 1
    assert runner.run("__name__", "pyspark").output["execution_count"] == 2
    assert ok_text(runner, "__name__") == "'__main__'"  # so cloudpickle ships statement code by value


def test_stdout_and_stderr_are_captured_in_order_and_right_stripped(runner: Runner) -> None:
    code = "import sys\nprint('one')\nsys.stderr.write('two\\n')\nprint('three')\n7"
    assert ok_text(runner, code) == "one\ntwo\nthree\n7"


def test_loops_print_each_expression_as_a_repl_does(runner: Runner) -> None:
    assert ok_text(runner, "for i in range(3):\n    i") == "0\n1\n2"


def test_name_error_has_livys_exact_shape(runner: Runner) -> None:
    assert runner.run("x", "pyspark").output == {
        "status": "error",
        "execution_count": 0,
        "ename": "NameError",
        "evalue": "name 'x' is not defined",
        "traceback": ["Traceback (most recent call last):\n", "NameError: name 'x' is not defined\n"],
    }


def test_traceback_keeps_user_frames_but_not_the_agents(runner: Runner) -> None:
    runner.run("def boom():\n    raise ValueError('bad')", "pyspark")
    output = runner.run("y = 1\nboom()", "pyspark").output
    assert (output["ename"], output["evalue"]) == ("ValueError", "bad")
    traceback = output["traceback"]
    assert traceback[0] == "Traceback (most recent call last):\n"
    assert traceback[-1] == "ValueError: bad\n"
    assert any('File "<stdin>", line 2, in boom' in line for line in traceback)
    assert not any("sparkplane" in line for line in traceback)


def test_syntax_error_is_an_error_output_without_frames(runner: Runner) -> None:
    output = runner.run("1 +", "pyspark").output
    assert (output["status"], output["ename"]) == ("error", "SyntaxError")
    assert output["traceback"][-1].startswith("SyntaxError")
    assert "Traceback (most recent call last):\n" not in output["traceback"]


def test_printed_text_is_dropped_on_error(runner: Runner) -> None:
    output = runner.run("print('before')\n1/0", "pyspark").output
    assert output["ename"] == "ZeroDivisionError"
    assert "data" not in output


def test_system_exit_is_an_error_output_that_asks_the_session_to_end(runner: Runner) -> None:
    result = runner.run("import sys\nsys.exit(3)", "pyspark")
    assert result.exit_requested
    assert (result.output["status"], result.output["ename"], result.output["evalue"]) == ("error", "SystemExit", "3")
    assert not runner.run("raise KeyboardInterrupt", "pyspark").exit_requested


def test_huge_output_is_truncated_with_a_marker() -> None:
    runner = Runner({}, max_output_chars=1000)
    text = ok_text(runner, "print('x' * 5000)")
    assert text.startswith("x" * 1000)
    assert text.endswith("\n[output truncated: 4001 more characters]")  # 4000 x's and print's newline


def test_huge_repr_is_truncated_too() -> None:
    runner = Runner({}, max_output_chars=50)
    assert "[output truncated:" in ok_text(runner, "list(range(1000))")


def test_capped_text_counts_what_it_drops() -> None:
    text = CappedText(5)
    text.write("abc")
    text.write("defgh")
    assert text.value() == "abcde\n[output truncated: 3 more characters]"
    assert text.truncated


@pytest.mark.parametrize(("kind", "language"), [("spark", "Scala"), ("sparkr", "R")])
def test_scala_and_r_are_not_supported_but_do_not_crash(runner: Runner, kind: str, language: str) -> None:
    output = runner.run("1", kind).output
    assert (output["status"], output["ename"]) == ("error", "NotSupported")
    assert language in output["evalue"] and "pyspark and sql" in output["evalue"]
    assert output["traceback"] == []


# -- magics --------------------------------------------------------------------------------------------


def test_json_magic(runner: Runner) -> None:
    output = runner.run("value = {'a': [1, 2], 'b': None}\n%json value", "pyspark").output
    assert output == {"status": "ok", "execution_count": 0, "data": {"application/json": {"a": [1, 2], "b": None}}}


def test_json_magic_keeps_printed_text(runner: Runner) -> None:
    output = runner.run("v = 1\nprint('hi')\n%json v", "pyspark").output
    assert output["data"] == {"application/json": 1, "text/plain": "hi"}


def test_json_magic_of_something_not_json_is_an_error(runner: Runner) -> None:
    output = runner.run("v = object()\n%json v", "pyspark").output
    assert (output["status"], output["ename"]) == ("error", "TypeError")


def test_magic_of_a_missing_variable_is_a_key_error(runner: Runner) -> None:
    output = runner.run("%json nothing", "pyspark").output
    assert (output["status"], output["ename"], output["evalue"]) == ("error", "KeyError", "'nothing'")
    assert output["traceback"] == ["KeyError: 'nothing'\n"]


def test_unknown_magic(runner: Runner) -> None:
    output = runner.run("%plot x", "pyspark").output
    assert (output["ename"], output["evalue"]) == ("UnknownMagic", "unknown magic command 'plot'")


def test_percent_inside_a_string_is_python_not_a_magic(runner: Runner) -> None:
    assert ok_text(runner, 's = """\n%json x\n"""\nlen(s)') == "9"


def test_table_magic_from_dicts(runner: Runner) -> None:
    code = "rows = [{'name': 'a', 'n': 1, 'x': 0.5}, {'name': 'b', 'n': None, 'x': 1.5}]\n%table rows"
    table = runner.run(code, "pyspark").output["data"][TABLE_MIME]
    assert table["headers"] == [
        {"name": "n", "type": "INT_TYPE"},
        {"name": "name", "type": "STRING_TYPE"},
        {"name": "x", "type": "DOUBLE_TYPE"},
    ]
    assert table["data"] == [[1, "a", 0.5], [None, "b", 1.5]]


def test_table_magic_from_tuples_and_a_column_that_starts_with_null(runner: Runner) -> None:
    code = "rows = [(None, True), (2, False)]\n%table rows"
    table = runner.run(code, "pyspark").output["data"][TABLE_MIME]
    assert table["headers"] == [{"name": "0", "type": "INT_TYPE"}, {"name": "1", "type": "BOOLEAN_TYPE"}]
    assert table["data"] == [[None, True], [2, False]]


def test_table_magic_rejects_mixed_types(runner: Runner) -> None:
    output = runner.run("rows = [[1], ['a']]\n%table rows", "pyspark").output
    assert (output["status"], output["ename"]) == ("error", "ValueError")


def test_table_magic_from_a_pandas_frame(runner: Runner) -> None:
    code = "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\n%table frame"
    table = runner.run(code, "pyspark").output["data"][TABLE_MIME]
    assert table["headers"] == [{"name": "a", "type": "INT_TYPE"}, {"name": "b", "type": "STRING_TYPE"}]
    assert table["data"] == [[1, "x"], [2, "y"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("NULL_TYPE", None)),
        (True, ("BOOLEAN_TYPE", True)),
        (3, ("INT_TYPE", 3)),
        (1.5, ("DOUBLE_TYPE", 1.5)),
        ("s", ("STRING_TYPE", "s")),
        (dt.date(2024, 1, 2), ("DATE_TYPE", "2024-01-02")),
        (dt.datetime(2024, 1, 2, 3, 4, 5), ("TIMESTAMP_TYPE", "2024-01-02 03:04:05")),
        (decimal.Decimal("1.10"), ("DECIMAL_TYPE", "1.10")),
        ([1, 2], ("ARRAY_TYPE", [1, 2])),
        ({"k": 1}, ("MAP_TYPE", {"k": 1})),
        (b"ab", ("STRING_TYPE", "b'ab'")),
    ],
)
def test_livy_table_types(value: Any, expected: tuple[str, Any]) -> None:
    assert table_cell(value) == expected


def test_matplot(runner: Runner) -> None:
    output = runner.run("%matplot plt", "pyspark").output
    if importlib.util.find_spec("matplotlib") is None:
        assert (output["status"], output["ename"]) == ("error", "ImportError")
        assert "matplotlib" in output["evalue"] and "not installed" in output["evalue"]
        return
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\n%matplot plt"
    data = runner.run(code, "pyspark").output["data"]
    assert data["text/plain"] == ""
    assert data["image/png"].startswith("iVBOR")  # base64 of the PNG signature


# -- sql without Spark ----------------------------------------------------------------------------------


class _FakeFrame:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows
        self.schema = self

    def take(self, n: int) -> list[tuple[Any, ...]]:
        return self._rows[:n]

    def jsonValue(self) -> dict[str, Any]:  # noqa: N802 - Spark's name
        return {"type": "struct", "fields": [{"name": "a", "type": "long", "nullable": True, "metadata": {}}]}


class _FakeSpark:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def sql(self, query: str) -> _FakeFrame:
        self.queries.append(query)
        if "bad" in query:
            raise RuntimeError("[PARSE_SYNTAX_ERROR] bad")
        return _FakeFrame([(i, dt.date(2024, 1, 1), float("nan")) for i in range(5)])


def test_sql_gives_schema_and_json_safe_rows_capped() -> None:
    spark = _FakeSpark()
    output = Runner({"spark": spark}, sql_max_rows=2).run("select a from t", "sql").output
    assert output["status"] == "ok"
    result = output["data"]["application/json"]
    assert result["schema"]["type"] == "struct"
    assert result["data"] == [[0, "2024-01-01", "NaN"], [1, "2024-01-01", "NaN"]]
    json.dumps(output, allow_nan=False)  # strict JSON
    assert spark.queries == ["select a from t"]


def test_sql_error_is_an_error_output() -> None:
    output = Runner({"spark": _FakeSpark()}).run("bad", "sql").output
    assert (output["status"], output["ename"], output["evalue"]) == (
        "error",
        "RuntimeError",
        "[PARSE_SYNTAX_ERROR] bad",
    )
    assert not any("sparkplane" in line for line in output["traceback"])


def test_sql_without_spark(runner: Runner) -> None:
    assert runner.run("select 1", "sql").output["ename"] == "NotSupported"


def test_json_safe() -> None:
    value = [float("inf"), decimal.Decimal("2.5"), dt.datetime(2024, 1, 1, 12), b"\x00", {1: (1, 2)}, dt.timedelta(1)]
    assert json_safe(value) == ["Infinity", 2.5, "2024-01-01T12:00:00", "AA==", {"1": [1, 2]}, 86400.0]
