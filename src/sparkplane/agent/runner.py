"""One statement in, one Livy output object out: the REPL semantics of a session (livy-contract.md §1.4).

`pyspark` code runs with `exec` in one persistent namespace. As in Livy's fake_shell.py, the code is first
parsed whole; only when that fails is it split into Python chunks and `%magic` lines. The last statement is
compiled in "single" mode, so an expression's repr is printed as at a REPL. What was printed (stdout, then
stderr, interleaved as written) becomes `text/plain`, right-stripped as Livy does. `sql` runs `spark.sql`.

Nothing here knows about threads, HTTP or cancelling: `in_user_code` tells the statement queue when an
interrupt may land, and every exception of user code (SystemExit and KeyboardInterrupt included) becomes an
error output. That keeps this module testable with a plain dict as the namespace.
"""

from __future__ import annotations

import ast
import contextlib
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

from sparkplane.agent.capture import CappedText, OutputCapture
from sparkplane.agent.magics import JSON_MIME, UnknownMagic, json_safe, run_magic

SOURCE_NAME = "<stdin>"  # Livy's name for statement code in tracebacks
DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
DEFAULT_SQL_MAX_ROWS = 1000  # Livy's livy.rsc.sql.num-rows
PYTHON_KINDS = ("pyspark", "python")
_UNSUPPORTED = {"spark": "Scala", "scala": "Scala", "sparkr": "R", "r": "R"}
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True, slots=True)
class Result:
    output: dict[str, Any]
    exit_requested: bool = False  # the code raised SystemExit: the session ends after this statement


class _Code:
    def __init__(self, source: str) -> None:
        tree = ast.parse(source, SOURCE_NAME, "exec")
        body = tree.body
        self._head: CodeType | None = None
        self._last: CodeType | None = None
        if body[:-1]:
            self._head = compile(ast.Module(body[:-1], type_ignores=[]), SOURCE_NAME, "exec", dont_inherit=True)
        if body:
            # "single" prints the value of an expression statement through sys.displayhook, as a REPL does.
            self._last = compile(ast.Interactive(body[-1:]), SOURCE_NAME, "single", dont_inherit=True)

    def run(self, namespace: dict[str, Any], before_last: Callable[[], None]) -> None:
        if self._head is not None:
            exec(self._head, namespace)
        if self._last is not None:
            before_last()
            exec(self._last, namespace)


class _Magic:
    def __init__(self, line: str) -> None:
        self.line = line


def parse(code: str) -> list[_Code | _Magic]:
    """The code as Python, or, when that is not valid, as chunks of Python and `%magic` lines (Livy's rule)."""
    try:
        return [_Code(code)]
    except SyntaxError:
        pass
    nodes: list[_Code | _Magic] = []
    plain: list[str] = []
    for line in code.rstrip().split("\n"):
        if line.startswith("%"):
            if plain:
                nodes.append(_Code("\n".join(plain)))
                plain = []
            nodes.append(_Magic(line))
        else:
            plain.append(line)
    if plain:
        nodes.append(_Code("\n".join(plain)))
    return nodes


def error_output(execution_count: int, exc: BaseException, *, with_frames: bool = True) -> dict[str, Any]:
    """Livy's error output; the traceback keeps the user's frames only (not the agent's, not `<module>`)."""
    lines: list[str] = []
    tb = exc.__traceback__ if with_frames else None
    if tb is not None:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(_user_frames(tb)))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return {
        "status": "error",
        "execution_count": execution_count,
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": lines,
    }


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _AGENT_DIR:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code.co_filename == SOURCE_NAME and tb.tb_frame.f_code.co_name == "<module>":
        tb = tb.tb_next  # the statement's own top level, which Livy leaves out too
    return tb


def simple_error(execution_count: int, ename: str, evalue: str) -> dict[str, Any]:
    return {"status": "error", "execution_count": execution_count, "ename": ename, "evalue": evalue, "traceback": []}


class Runner:
    """Runs statements in one namespace; `execution_count` counts every statement given to `run`."""

    def __init__(
        self,
        namespace: dict[str, Any],
        *,
        capture: OutputCapture | None = None,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        sql_max_rows: int = DEFAULT_SQL_MAX_ROWS,
    ) -> None:
        self.namespace = namespace
        # Code defined in statements belongs to __main__, so cloudpickle ships UDFs by value, as in a shell.
        namespace.setdefault("__name__", "__main__")
        self.execution_count = 0
        self._capture = capture or OutputCapture()
        self._max_output_chars = max_output_chars
        self._sql_max_rows = sql_max_rows
        # True only while the statement's own code (or a magic, or spark.sql) runs: the stretch a cancel may cut.
        self.in_user_code = False

    def run(self, code: str, kind: str) -> Result:
        count = self.execution_count
        self.execution_count += 1
        if kind in PYTHON_KINDS:
            return self._python(code, count)
        if kind == "sql":
            return self._sql(code, count)
        language = _UNSUPPORTED.get(kind)
        if language is not None:
            message = f"sparkplane sessions run pyspark and sql statements; {language} ('{kind}') is not supported"
            return Result(simple_error(count, "NotSupported", message))
        return Result(simple_error(count, "NotSupported", f"unknown statement kind '{kind}'"))

    @contextlib.contextmanager
    def _user_code(self) -> Iterator[None]:
        self.in_user_code = True
        try:
            yield
        finally:
            self.in_user_code = False

    def _python(self, code: str, count: int) -> Result:
        try:
            nodes = parse(code)
        except SyntaxError as exc:
            return Result(error_output(count, exc, with_frames=False))
        buffer = CappedText(self._max_output_chars)
        data: dict[str, Any] | None = None
        in_magic = False
        try:
            with self._capture.capturing(buffer), self._user_code():
                for node in nodes:
                    in_magic = isinstance(node, _Magic)
                    if isinstance(node, _Magic):
                        data = run_magic(node.line, self.namespace)
                    else:
                        node.run(self.namespace, self._capture.sync)
                        data = None
        except UnknownMagic as exc:
            return Result(error_output(count, exc, with_frames=False))
        except BaseException as exc:  # noqa: B036 - the user's SystemExit and KeyboardInterrupt are outputs too
            output = error_output(count, exc, with_frames=not in_magic)
            return Result(output, exit_requested=isinstance(exc, SystemExit))
        return Result(_ok(count, data, buffer.value()))

    def _sql(self, code: str, count: int) -> Result:
        spark = self.namespace.get("spark")
        if spark is None:
            return Result(simple_error(count, "NotSupported", "this session has no Spark session for sql"))
        buffer = CappedText(self._max_output_chars)
        try:
            with self._capture.capturing(buffer), self._user_code():
                frame = spark.sql(code)
                rows = frame.take(self._sql_max_rows)
                schema = frame.schema.jsonValue()
        except BaseException as exc:  # noqa: B036 - same as for Python code
            return Result(error_output(count, exc), exit_requested=isinstance(exc, SystemExit))
        table = {"schema": schema, "data": [[json_safe(value) for value in row] for row in rows]}
        return Result({"status": "ok", "execution_count": count, "data": {JSON_MIME: table}})


def _ok(count: int, bundle: Mapping[str, Any] | None, printed: str) -> dict[str, Any]:
    data = dict(bundle or {})
    had_text = "text/plain" in data
    text = (str(data.pop("text/plain", "")) + printed).rstrip()
    # Livy adds text/plain when something was printed or nothing else was produced; %matplot keeps its "".
    if text or not data or had_text:
        data["text/plain"] = text
    return {"status": "ok", "execution_count": count, "data": data}
