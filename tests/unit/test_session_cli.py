"""`sparkplane sessions …` and `sparkplane shell` with typer's CliRunner against the FakeServer (no network),
through the shared harness (cli_harness.py)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sparkplane.cli import session_commands
from sparkplane.client import Client
from tests.unit.cli_harness import Harness, ok
from tests.unit.fake_server import CONNECT_URL, START_FAILS, error_output, sql_output, text_output

PNG = b"\x89PNG\r\n\x1a\nfake"
QUERY = "select id, name from people"
PEOPLE = sql_output([("id", "int"), ("name", "string")], [[1, "Ada"], [2, None]])


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Harness:
    harness = Harness.install(monkeypatch, tmp_path)
    harness.server.outputs[QUERY] = PEOPLE
    # Where images are written: tempfile reads TMPDIR once per process, so its cached folder is set too.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return harness


@pytest.fixture
def idle(cli: Harness) -> Harness:
    cli.server.session_script = []
    cli.server.add_session("idle")
    return cli


# ---- create, list, show, kill, logs -----------------------------------------------------------------------


def test_create_waits_until_idle_and_prints_how_to_attach(cli: Harness) -> None:
    result = ok(
        cli.run(
            "sessions", "create", "--name", "explore", "--conf", "spark.a=1", "--driver-memory", "2g",
            "--num-executors", "2", "--idle-timeout", "30m", "--ttl", "8h",
        )
    )  # fmt: skip
    out = result.stdout
    assert out.startswith("Session 1 is idle (pyspark)")
    assert "sparkplane sessions run 1" in out and "sparkplane shell --session 1" in out
    assert f'SparkSession.builder.remote("{CONNECT_URL}")' in out and "keep it to yourself" in out
    body = cli.server.created[0]
    assert (body["kind"], body["name"], body["conf"]) == ("pyspark", "explore", {"spark.a": "1"})
    assert (body["driverMemory"], body["numExecutors"], body["idleTimeout"], body["ttl"]) == ("2g", 2, "30m", "8h")


def test_create_no_wait_and_json(cli: Harness) -> None:
    out = ok(cli.run("sessions", "create", "--kind", "sql", "--no-wait")).stdout
    assert out.startswith("Created session 1 (not_started)")
    assert cli.paths() == ["POST /api/v1/sessions"]
    data = json.loads(ok(cli.run("sessions", "create", "--json")).stdout)
    assert (data["id"], data["state"], data["connect_url"]) == (2, "idle", CONNECT_URL)


def test_create_on_a_cluster_names_it_in_the_body(cli: Harness) -> None:
    ok(cli.run("sessions", "create", "--cluster", "3", "--no-wait"))
    ok(cli.run("sessions", "create", "--no-wait"))
    assert [body.get("cluster_id") for body in cli.server.created] == [3, None]
    assert "cluster_id" not in cli.server.created[1]


def test_create_that_ends_in_error_exits_1(cli: Harness) -> None:
    cli.server.session_script = list(START_FAILS)
    result = ok(cli.run("sessions", "create"), code=1)
    assert result.stderr == "error: session 1 ended error: BACKEND_FAILED driver exited with code 1\n"


def test_list_show_kill_and_logs(idle: Harness) -> None:
    idle.server.add_session("dead", name="old-one")
    idle.server.session_logs[1].extend(["a", "b", "c"])
    table = ok(idle.run("sessions", "list")).stdout
    assert "old-one" in table and "idle" in table
    assert [s["id"] for s in json.loads(ok(idle.run("sessions", "list", "--json", "--state", "dead")).stdout)] == [2]
    shown = ok(idle.run("sessions", "show", "1")).stdout
    assert "pyspark" in shown and CONNECT_URL in shown and "events" in shown
    assert ok(idle.run("sessions", "logs", "1")).stdout.splitlines() == ["a", "b", "c"]
    assert ok(idle.run("sessions", "logs", "1", "--tail", "1")).stdout.splitlines() == ["c"]
    assert "Stopping session 1" in ok(idle.run("sessions", "kill", "1")).stdout
    assert ok(idle.run("sessions", "logs", "1", "-f")).stdout.splitlines() == ["a", "b", "c"]  # ends once dead
    data = json.loads(ok(idle.run("sessions", "show", "1", "--json")).stdout)
    assert data["session"]["state"] == "dead" and data["events"][-1]["to"] == "dead"
    assert "Session 2 is dead" in ok(idle.run("sessions", "kill", "2")).stdout


def test_a_missing_session_is_one_red_line(cli: Harness) -> None:
    result = ok(cli.run("sessions", "show", "9"), code=1)
    assert result.stderr == "error: Session '9' not found. (HTTP 404)\n"


# ---- run --------------------------------------------------------------------------------------------------


def test_run_prints_text_as_it_is(idle: Harness) -> None:
    idle.server.outputs["print('[b]x[/b]')"] = {"status": "ok", "data": {"text/plain": "[b]x[/b]"}}
    assert ok(idle.run("sessions", "run", "1", "print('[b]x[/b]')")).stdout == "[b]x[/b]\n"  # not Rich markup
    assert idle.codes() == [("print('[b]x[/b]')", None)]


def test_run_sql_prints_a_table_with_the_row_count(idle: Harness) -> None:
    out = ok(idle.run("sessions", "run", "1", "--sql", QUERY)).stdout
    lines = out.splitlines()
    assert any("id" in line and "name" in line for line in lines[:3])
    assert any("Ada" in line for line in lines) and any("NULL" in line for line in lines)
    assert "2 rows" in out and "│ 2  │ NULL │" in out  # a drawn table, not text
    assert idle.codes() == [(QUERY, "sql")]


def test_run_a_file(idle: Harness, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("x = 1\nprint(x)\n")
    query = tmp_path / "q.sql"
    query.write_text(QUERY)
    assert ok(idle.run("sessions", "run", "1", "--file", str(script))).stdout == "ran: x = 1\nprint(x)\n\n"
    assert "2 rows" in ok(idle.run("sessions", "run", "1", "--file", str(query))).stdout
    assert idle.codes() == [("x = 1\nprint(x)\n", None), (QUERY, "sql")]  # a .sql file runs as sql
    assert "ran: from stdin" in ok(idle.run("sessions", "run", "1", "-f", "-", input="from stdin")).stdout


def test_run_error_prints_the_traceback_in_red_and_exits_1(idle: Harness) -> None:
    idle.server.outputs["1/0"] = error_output("ZeroDivisionError", "division by zero")
    result = ok(idle.run("sessions", "run", "1", "1/0"), code=1)
    assert result.stdout == ""
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_run_json_prints_the_raw_output(idle: Harness) -> None:
    raw = json.loads(ok(idle.run("sessions", "run", "1", "--sql", QUERY, "--json")).stdout)
    assert raw == PEOPLE | {"execution_count": 0}
    idle.server.outputs["boom"] = error_output("ValueError", "boom")
    failed = idle.run("sessions", "run", "1", "boom", "--json")
    assert failed.exit_code == 1 and json.loads(failed.stdout)["ename"] == "ValueError"


def test_run_json_result_and_image(idle: Harness) -> None:
    idle.server.outputs["%json d"] = {"status": "ok", "data": {"application/json": {"a": [1, 2]}}}
    idle.server.outputs["%matplot plt"] = {
        "status": "ok",
        "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": ""},
    }
    assert json.loads(ok(idle.run("sessions", "run", "1", "%json d")).stdout) == {"a": [1, 2]}
    out = ok(idle.run("sessions", "run", "1", "%matplot plt")).stdout
    assert out.startswith("image: ")
    assert Path(out.removeprefix("image: ").strip()).read_bytes() == PNG


@pytest.mark.parametrize("args", [[], ["code", "--sql", "select 1"], ["--sql", "select 1", "--kind", "pyspark"]])
def test_run_usage_errors_exit_2(idle: Harness, args: list[str]) -> None:
    ok(idle.run("sessions", "run", "1", *args), code=2)
    assert idle.codes() == []


def test_ctrl_c_while_running_cancels_the_statement(idle: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "wait_statement", interrupted)
    result = ok(idle.run("sessions", "run", "1", "while True: pass"), code=130)
    assert "Cancelled" in result.stderr
    assert idle.paths()[-1] == "POST /api/v1/sessions/1/statements/0/cancel"


# ---- shell ------------------------------------------------------------------------------------------------

SCRIPT = """x = 1
for i in range(2):
    print(i)

:sql
select id, name from people
:nope
:sql
:quit
never(run)
"""


def test_shell_runs_blocks_toggles_sql_and_stops_its_session(cli: Harness) -> None:
    result = ok(cli.run("shell", input=SCRIPT))
    assert cli.codes() == [
        ("x = 1", None),
        ("for i in range(2):\n    print(i)", None),  # continued after ':', ended by the blank line
        (QUERY, "sql"),
    ]
    out = result.stdout
    assert "pyspark> " in result.stderr and "sql> " in result.stderr  # piped: prompts kept out of stdout
    assert "pyspark> " not in out
    assert "ran: x = 1" in out and "Ada" in out and "2 rows" in out
    assert "SQL mode on" in result.stderr and "SQL mode off" in result.stderr
    assert "unknown command :nope" in result.stderr and "Stopped session 1." in result.stderr
    assert cli.paths()[-1] == "DELETE /api/v1/sessions/1"


def test_shell_on_an_existing_session_leaves_it_running(idle: Harness) -> None:
    idle.server.outputs["oops()"] = error_output("NameError", "name 'oops' is not defined")
    result = ok(idle.run("shell", "--session", "1", "--sql", input="select 1 \\\n  as one\n\n:sql\noops()\n"))
    assert idle.codes() == [("select 1 \n  as one", "sql"), ("oops()", None)]  # EOF (Ctrl-D) leaves
    assert "NameError: name 'oops' is not defined" in result.stderr  # an error does not end the shell
    assert not any(p.startswith("DELETE") for p in idle.paths())


def test_shell_keep_leaves_the_new_session_running(cli: Harness) -> None:
    said = ok(cli.run("shell", "--keep", "--kind", "sql", input="show tables\n")).stderr
    assert "sql> " in said  # an sql session starts in SQL mode
    assert cli.server.created[0]["kind"] == "sql" and cli.codes() == [("show tables", "sql")]
    assert "Session 1 keeps running" in said and not any(p.startswith("DELETE") for p in cli.paths())


def test_shell_ends_when_its_session_has_ended(idle: Harness) -> None:
    def last_words(code: str) -> dict[str, Any]:
        idle.server._move(1, "dead")  # the driver dies right after the first statement
        return text_output(f"ran: {code}")

    idle.server.default_output = last_words
    result = ok(idle.run("shell", "--session", "1", input="1\n2\n3\n"), code=1)
    assert "ran: 1" in result.stdout
    assert "Session 1 has ended (dead)" in result.stderr and "HTTP 409" in result.stderr
    assert idle.codes() == [("1", None), ("2", None)]  # "3" is never sent


def test_shell_ctrl_c_cancels_the_running_statement_and_goes_on(idle: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Client.wait_statement
    calls: list[int] = []

    def first_interrupted(self: Client, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Client, "wait_statement", first_interrupted)
    result = ok(idle.run("shell", "--session", "1", input="slow()\nfast()\n"))
    assert "Cancelled" in result.stderr and "ran: fast()" in result.stdout
    assert "POST /api/v1/sessions/1/statements/0/cancel" in idle.paths()


def test_completer_asks_the_session_for_the_word_before_the_cursor() -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    asked: list[tuple[str, int]] = []

    def complete(code: str, cursor: int) -> list[str]:
        asked.append((code, cursor))
        return ["spark", "spark.range("]

    completer = session_commands.completer(complete)
    found = list(completer.get_completions(Document("df = spark.ra"), CompleteEvent(completion_requested=True)))
    assert [(c.text, c.start_position) for c in found] == [("spark", -8), ("spark.range(", -8)]
    assert asked == [("df = spark.ra", 13)]
