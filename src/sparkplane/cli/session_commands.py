"""`sparkplane sessions …` and `sparkplane shell`: interactive Spark sessions from a terminal, through the SDK.

Results print as a person expects: text as it is, tables (sql, `%table`) as a table with their row count,
an image into a temporary PNG file whose path is printed, a failure as the session's traceback in red on
stderr with exit code 1. `--json` prints the raw Livy output for scripts. Options and errors work as in
client_commands (`--url`/`--token`, one red line and exit 1 for a client-side failure).
"""

from __future__ import annotations

import codeop
import contextlib
import functools
import json
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from sparkplane.cli import client_commands as base
from sparkplane.cli.client_commands import ClusterOpt, JsonOpt, TokenOpt, UrlOpt
from sparkplane.client import ApiError, Client, ClientError, Session, StatementResult, display

# Seconds between polls while a session starts (statements poll on the SDK's own fast schedule). Module-level
# so tests can set it to 0.
POLL_SECONDS = 1.0
_PYTHON_KINDS = frozenset({"pyspark", "python", "shared"})
_QUIT = frozenset({":quit", ":q", ":exit"})

sessions_app = typer.Typer(help="Start, use, inspect and stop interactive Spark sessions.", no_args_is_help=True)
SessionArg = Annotated[int, typer.Argument(metavar="SESSION", help="Session id")]


def _err() -> Console:
    return Console(stderr=True, highlight=False)


# ---- create, list, show, kill, logs -----------------------------------------------------------------------


@sessions_app.command("create")
@base._cli_errors
def create(
    kind: Annotated[str, typer.Option("--kind", help="pyspark, sql, spark, sparkr or shared")] = "pyspark",
    name: Annotated[str | None, typer.Option("--name", help="A name for the session")] = None,
    conf: Annotated[list[str] | None, typer.Option("--conf", help="Spark configuration key=value; repeatable")] = None,
    driver_memory: Annotated[str | None, typer.Option("--driver-memory", help="e.g. 2g")] = None,
    executor_memory: Annotated[str | None, typer.Option("--executor-memory", help="e.g. 4g")] = None,
    num_executors: Annotated[int | None, typer.Option("--num-executors")] = None,
    py_files: Annotated[str | None, typer.Option("--py-files", help="Comma-separated .py/.zip/.egg files")] = None,
    idle_timeout: Annotated[
        str | None, typer.Option("--idle-timeout", help="Stop after this idle time, e.g. 30m")
    ] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Stop after this long in all, e.g. 8h")] = None,
    cluster: ClusterOpt = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the session is idle")] = True,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Start a session and wait until it is idle; print its id and how to attach to it."""
    options: dict[str, Any] = {
        "name": name,
        "conf": base._conf(conf or []),
        "driver_memory": driver_memory,
        "executor_memory": executor_memory,
        "num_executors": num_executors,
        "py_files": base._csv(py_files),
        "idle_timeout": idle_timeout,
        "ttl": ttl,
        "cluster_id": cluster,
        "wait": wait,
    }
    with base._client(url, token) as sp:
        session = _start(sp, kind, options)
    info = session.last
    if json_out:
        base._print_json(info.model_dump(mode="json"))
        return
    out = base._out()
    if not info.is_ready:
        out.print(f"Created session [bold]{info.id}[/] ({info.state}); `sparkplane sessions show {info.id}` shows it")
        return
    out.print(Text.assemble(f"Session {info.id} is ", display.state_text(info.state), f" ({info.kind})"))
    out.print(f"  run code:      sparkplane sessions run {info.id} 'spark.range(10).count()'")
    out.print(f"  shell:         sparkplane shell --session {info.id}")
    if info.connect_url:
        # Printed because its owner just asked for this session; the URL carries the session's own token.
        remote = Text(f'  spark connect: attach with SparkSession.builder.remote("{info.connect_url}")')
        out.print(remote, soft_wrap=True)
        out.print("                 (the URL holds a token for this session: keep it to yourself)", style="dim")
    out.print(f"  stop:          sparkplane sessions kill {info.id}")


def _start(sp: Client, kind: str, options: dict[str, Any]) -> Session:
    """Create a session behind a spinner. A Ctrl-C stops it (the SDK does): nobody would have its id."""
    status = display.SessionStatus()
    try:
        with base._out().status(status):
            return sp.create_session(kind, on_update=status.update, poll=POLL_SECONDS, **options)
    except KeyboardInterrupt:
        which = f"session {status.session.id}" if status.session is not None else "the new session"
        _err().print(f"Interrupted: {which} was stopped.")
        raise typer.Exit(130) from None


@sessions_app.command("list")
@base._cli_errors
def list_sessions(
    state: Annotated[str | None, typer.Option("--state", help="Only sessions in this state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many of the newest")] = 20,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The newest sessions, newest first."""
    with base._client(url, token) as sp:
        page = functools.partial(sp.list_sessions, state)
        base._print_newest(page, limit, display.sessions_table, json_out=json_out, none="No sessions.")


@sessions_app.command("show")
@base._cli_errors
def show(session_id: SessionArg, json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """A session's details and the timeline of its states."""
    with base._client(url, token) as sp:
        info = sp.get_session(session_id)
        events = sp.session_events(session_id)
    if json_out:
        dumped = [e.model_dump(mode="json", by_alias=True) for e in events]
        base._print_json({"session": info.model_dump(mode="json"), "events": dumped})
        return
    base._out().print(display.session_details(info, events))


@sessions_app.command("kill")
@base._cli_errors
def kill(session_id: SessionArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Stop a session. Stopping a finished session changes nothing and is not an error."""
    with base._client(url, token) as sp:
        info = sp.stop_session(session_id)
    if info.is_final:
        base._out().print(Text.assemble(f"Session {info.id} is ", display.state_text(info.state)))
    else:
        base._out().print(f"Stopping session {info.id}; `sparkplane sessions show {info.id}` shows when it ends")


@sessions_app.command("logs")
@base._cli_errors
def logs(
    session_id: SessionArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until it ends")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines (default: all)")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The driver log of a session."""
    out = base._out()
    with base._client(url, token) as sp:
        offset = 0
        if tail is not None:
            page = sp.session_log(session_id, limit=tail)  # no offset: the server answers with the tail
            base._print_lines(out, page.lines)
            offset = page.end
        elif not follow:
            base._print_lines(out, sp.session(session_id).logs())
        if follow:
            try:
                base._print_lines(out, sp.session(session_id).follow_log(poll=POLL_SECONDS, offset=offset))
            except KeyboardInterrupt:
                raise typer.Exit(130) from None


# ---- run --------------------------------------------------------------------------------------------------


@sessions_app.command("run")
@base._cli_errors
def run(
    session_id: SessionArg,
    code: Annotated[str | None, typer.Argument(metavar="CODE", help="The code to run")] = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Run this file ('-': standard input)")] = None,
    sql: Annotated[str | None, typer.Option("--sql", help="Run this SQL query")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Statement kind (default: the session's)")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Cancel it after this many seconds")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the raw output (Livy's JSON)")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Run CODE, a --file or a --sql query in a session and print its result; exit 1 if it fails."""
    if sum(x is not None for x in (code, file, sql)) != 1:
        raise typer.BadParameter("give exactly one of CODE, --file or --sql")
    if sql is not None:
        if kind not in (None, "sql"):
            raise typer.BadParameter("--sql runs kind sql", param_hint="--kind")
        code, kind = sql, "sql"
    elif file is not None:
        code = sys.stdin.read() if file == "-" else _read(file)
        kind = kind or ("sql" if file.endswith(".sql") else None)
    assert code is not None
    with base._client(url, token) as sp:
        result = _execute(sp.session(session_id), code, kind, timeout=timeout)
    if result is None:
        raise typer.Exit(130)
    if not show_result(result, json_out=json_out):
        raise typer.Exit(1)


def _read(path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--file") from exc


def _execute(session: Session, code: str, kind: str | None, *, timeout: float | None = None) -> StatementResult | None:
    """Run code behind a spinner; None when Ctrl-C cancelled it (the SDK sends the cancel)."""
    status = display.StatementStatus()
    try:
        with base._out().status(status):
            return session.run(code, kind, timeout=timeout, raise_on_error=False, on_update=status.update)
    except KeyboardInterrupt:
        which = f"statement {status.statement.id}" if status.statement is not None else "the statement"
        _err().print(Text(f"Cancelled {which}.", style="magenta"))
        return None


def show_result(result: StatementResult, *, json_out: bool = False) -> bool:
    """Print a final statement's result; False when it failed or was cancelled."""
    ok = result.state == "available" and not result.failed
    if json_out:
        base._print_json(result.output)
        return ok
    if result.failed:
        _err().print(display.error_text(result), soft_wrap=True)
        return False
    if not ok:
        _err().print(Text(f"Statement {result.id} was {result.state}.", style="magenta"))
        return False
    out = base._out()
    if result.text:
        out.out(result.text, highlight=False)
    table = display.result_table(result)
    if table is not None:
        out.print(table)
    elif result.json is not None:
        out.out(json.dumps(result.json, indent=2, ensure_ascii=False), highlight=False)
    image = result.image_png
    if image is not None:
        with tempfile.NamedTemporaryFile(prefix="sparkplane-", suffix=".png", delete=False) as fh:
            fh.write(image)
        out.print(Text(f"image: {fh.name}"), soft_wrap=True)
    return True


# ---- shell ------------------------------------------------------------------------------------------------


@base._cli_errors
def shell(
    session_id: Annotated[int | None, typer.Option("--session", help="Use this session instead of a new one")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Kind of the new session (default: pyspark)")] = None,
    sql: Annotated[bool, typer.Option("--sql", help="Start in SQL mode")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the new session running on exit")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """An interactive prompt on a session: a new one (stopped on exit unless --keep) or --session ID."""
    if session_id is not None and kind is not None:
        raise typer.BadParameter("--kind is for a new session; --session uses an existing one", param_hint="--kind")
    with base._client(url, token) as sp:
        if session_id is None:
            session = _start(sp, kind or "pyspark", {"keep": keep})
        else:
            session = sp.session(session_id, keep=True)  # not ours: never stopped here
            if not session.last.is_ready:
                status = display.SessionStatus(session.last)
                with base._out().status(status):
                    session.wait(poll=POLL_SECONDS, on_update=status.update)
        repl = Shell(session, sql=sql or session.kind == "sql")
        try:
            left = repl.loop()
        finally:
            if not session.keep:
                session.stop()
                _err().print(f"Stopped session {session.id}.")
            elif session_id is None:
                _err().print(f"Session {session.id} keeps running: sparkplane sessions kill {session.id}")
    if not left:
        raise typer.Exit(1)


class Shell:
    """Reads blocks of code, runs each in the session and prints its result.

    A block is one line unless it needs more: Python asks `codeop`, as Python's own prompt does (an open
    bracket, a line ending with ':' or '\\'); other kinds continue after a line ending with ':' or '\\'. Once
    continued, a blank line ends the block. `:sql` toggles SQL mode, `:quit` or end of input leaves."""

    def __init__(self, session: Session, *, sql: bool, read_line: Callable[[str], str] | None = None) -> None:
        self.session = session
        self.sql = sql
        self._read_line = read_line or line_reader(self.complete)
        # Only results go to stdout; the shell's own words go to stderr (as Python's banner does), so a script
        # piped through the shell leaves stdout as clean as `sessions run` would.
        self._say = _err()

    @property
    def kind(self) -> str | None:
        """The statement kind to send: sql in SQL mode, else the session's (a shared one needs it named)."""
        if self.sql:
            return "sql"
        return "pyspark" if self.session.kind == "shared" else None

    def loop(self) -> bool:
        """Read and run blocks until the user leaves (True) or the session has ended (False)."""
        self._say.print(
            f"Session {self.session.id} ({self.session.kind}). End a block with a blank line; "
            ":sql toggles SQL mode; :quit or Ctrl-D leaves; Ctrl-C cancels a running statement.",
            style="dim",
            highlight=False,
        )
        while True:
            try:
                block = self.read_block()
            except EOFError:
                self._say.print()
                return True
            except KeyboardInterrupt:
                self._say.print()  # drop the half-typed block, as Python's prompt does
                continue
            if block is None:
                continue
            if block in _QUIT:
                return True
            if block == ":sql":
                self.sql = not self.sql
                self._say.print(f"SQL mode {'on' if self.sql else 'off'}", style="dim")
            elif block.startswith(":") and "\n" not in block:
                self._say.print(f"unknown command {block}: :sql, :quit", style="dim", markup=False)
            elif not self.execute(block):
                return False

    def read_block(self) -> str | None:
        """The next block of code or `:command`; None for a blank line. EOFError at the end of the input."""
        prompt = "sql> " if self.sql else f"{self.session.kind}> "
        lines: list[str] = []
        while True:
            line = self._read_line(prompt if not lines else "...".rjust(len(prompt) - 1) + " ")
            if not lines and not line.strip():
                return None
            if not lines and line.strip().startswith(":"):
                return line.strip()
            lines.append(line)
            if not self._needs_more(lines):
                break
        if self.kind == "sql":  # a continuation backslash means nothing to Spark SQL
            lines = [re.sub(r"\\\s*$", "", line) for line in lines]
        return "\n".join(lines).rstrip()

    def _needs_more(self, lines: list[str]) -> bool:
        if len(lines) > 1 and not lines[-1].strip():
            return False
        if not self.sql and self.session.kind in _PYTHON_KINDS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a SyntaxWarning is the session's to report, not the prompt's
                try:
                    return codeop.compile_command("\n".join(lines), "<shell>", "single") is None
                except (SyntaxError, ValueError, OverflowError):
                    return False  # sent as it is: the session answers with the error (or runs a %magic)
        return len(lines) > 1 or lines[0].rstrip().endswith((":", "\\"))

    def complete(self, code: str, cursor: int) -> list[str]:
        return self.session.complete(code, cursor, self.kind)

    def execute(self, code: str) -> bool:
        """Run a block and print its result; False when the session is gone and the shell should end."""
        try:
            result = _execute(self.session, code, self.kind)
        except ClientError as exc:
            _err().print(Text(f"error: {exc}", style="red"), soft_wrap=True)
            if isinstance(exc, ApiError) and exc.status == 409 and self.session.info().is_final:
                _err().print(f"Session {self.session.id} has ended ({self.session.last.state}).")
                return False
            return True
        if result is not None:
            show_result(result)
        return True


def line_reader(complete: Callable[[str, int], list[str]]) -> Callable[[str], str]:
    """On a terminal: prompt_toolkit when it is installed (history, editing, Tab completion from the session),
    else input() with readline. Piped input (a script): prompts go to stderr, so stdout holds only results."""
    if not sys.stdin.isatty():
        return _piped_line
    if sys.stdout.isatty():
        try:
            from prompt_toolkit import PromptSession
        except ImportError:
            pass
        else:
            prompt_session: PromptSession[str] = PromptSession(completer=completer(complete))
            return lambda prompt: prompt_session.prompt(prompt)
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - imported for its side effect: line editing and history in input()
    return input


def _piped_line(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def completer(complete: Callable[[str, int], list[str]]) -> Any:
    """A prompt_toolkit Completer over `complete(code, cursor)` (the session's); needs prompt_toolkit."""
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

    class SessionCompleter(Completer):
        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
            # Candidates replace the word before the cursor as the agent finds it: letters, digits, '_', '.'.
            word = re.search(r"[\w.]*$", document.text_before_cursor)
            start = -len(word.group(0)) if word else 0
            try:
                candidates = complete(document.text, document.cursor_position)
            except ClientError:
                return  # completion is a convenience: never break the prompt over it
            for candidate in candidates:
                yield Completion(candidate, start_position=start)

    return SessionCompleter()
