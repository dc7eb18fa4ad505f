"""The client commands of the CLI, run with typer's CliRunner against the SDK's FakeServer (no network).

`client_commands.make_client` is replaced by one that puts the FakeServer's MockTransport under a real
Client, so everything from option parsing to the HTTP wire shapes is exercised.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from sparkplane.cli import client_commands
from sparkplane.client import Client
from tests.unit.fake_server import DEAD, TOKEN, FakeServer

APP = typer.Typer()
APP.add_typer(client_commands.batches_app, name="batches")
APP.add_typer(client_commands.users_app, name="users")
APP.add_typer(client_commands.tokens_app, name="tokens")
APP.command("login")(client_commands.login)


class Harness:
    def __init__(self, server: FakeServer, config_dir: Path) -> None:
        self.server = server
        self.config_dir = config_dir
        self.made: list[dict[str, Any]] = []  # the arguments of every Client the CLI built

    def make_client(
        self, url: str, *, token: str | None = None, username: str | None = None, password: str | None = None
    ) -> Client:
        self.made.append({"url": url, "token": token, "username": username})
        transport = httpx.MockTransport(self.server.handle)
        return Client(url, token=token, username=username, password=password, transport=transport)

    def run(self, *args: str, input: str | None = None, token: str | None = TOKEN) -> Result:
        env = {"SPARKPLANE_TOKEN": token} if token else {}
        return CliRunner().invoke(APP, list(args), input=input, env=env)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Harness:
    harness = Harness(FakeServer(), tmp_path / "config")
    monkeypatch.setattr(client_commands, "make_client", harness.make_client)
    monkeypatch.setattr(client_commands, "POLL_SECONDS", 0.0)
    monkeypatch.setenv("SPARKPLANE_CONFIG_DIR", str(harness.config_dir))
    monkeypatch.delenv("SPARKPLANE_URL", raising=False)
    monkeypatch.delenv("SPARKPLANE_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables at a width that never wraps a cell
    return harness


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text("print('hi')\n")
    return path


def _ok(result: Result, code: int = 0) -> Result:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


# ---- submit -----------------------------------------------------------------------------------------------


def test_submit_uploads_and_passes_dash_args_after_file_to_the_app(cli: Harness, app_file: Path) -> None:
    result = _ok(
        cli.run(
            "batches", "submit", "--name", "etl", "--conf", "spark.a=1", "--conf", "spark.b=x=y",
            "--jars", "s3://b/x.jar, not/here.jar", "--num-executors", "3",
            str(app_file), "--foo", "1", "-x", "--wait",
        )
    )  # fmt: skip
    assert "Submitted batch 1" in result.stdout
    body = cli.server.submitted[0]
    assert body["file"] == "file:///blobs/uploads/1/1/app.py" and cli.server.uploads[0][0] == "app.py"
    assert body["args"] == ["--foo", "1", "-x", "--wait"]  # after FILE, even --wait belongs to the app
    assert body["conf"] == {"spark.a": "1", "spark.b": "x=y"}
    assert body["jars"] == ["s3://b/x.jar", "not/here.jar"]
    assert (body["name"], body["numExecutors"]) == ("etl", 3)
    assert cli.server.batches[1]["state"] == "not_started"  # no --wait: nothing polled


def test_submit_on_a_cluster_names_it_in_the_body(cli: Harness) -> None:
    _ok(cli.run("batches", "submit", "--cluster", "3", "s3://b/app.py", "--cluster", "x"))
    _ok(cli.run("batches", "submit", "s3://b/app.py"))
    first, second = cli.server.submitted
    assert (first["cluster_id"], first["args"]) == (3, ["--cluster", "x"])  # after FILE it is the app's
    assert "cluster_id" not in second


def test_submit_json_prints_the_batch(cli: Harness) -> None:
    result = _ok(cli.run("batches", "submit", "--json", "s3://b/app.py"))
    assert json.loads(result.stdout)["id"] == 1
    assert cli.server.uploads == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--conf", "novalue", "s3://b/a.py"], "not key=value"), (["--bogus", "s3://b/a.py"], "no such option")],
)
def test_submit_usage_errors_exit_2(cli: Harness, args: list[str], message: str) -> None:
    result = _ok(cli.run("batches", "submit", *args), code=2)
    assert message in result.output
    assert cli.server.submitted == []


def test_submit_wait_follows_the_log_and_exits_0_on_success(cli: Harness, app_file: Path) -> None:
    result = _ok(cli.run("batches", "submit", "--wait", str(app_file), "-v"))
    lines = result.stdout.splitlines()
    assert lines[0] == "Submitted batch 1 (not_started)"
    assert lines[1:5] == ["line 1", "line 2", "line 3", "bye"]
    assert lines[5] == "Batch 1 finished success in 1m05s"


def test_submit_wait_exits_1_when_the_batch_dies(cli: Harness) -> None:
    cli.server.script = list(DEAD)
    result = _ok(cli.run("batches", "submit", "--wait", "s3://b/app.py"), code=1)
    assert "Error: oops" in result.stdout  # the app's own log line, printed as it is
    assert "Batch 1 finished dead in 1m05s: BACKEND_FAILED" in result.stdout


def test_submit_wait_no_logs_shows_only_the_end(cli: Harness) -> None:
    result = _ok(cli.run("batches", "submit", "--wait", "--no-logs", "s3://b/app.py"))
    assert "line 1" not in result.stdout and "finished success" in result.stdout
    assert not any(r.url.path.endswith("/log") for r in cli.server.requests)


def test_ctrl_c_while_waiting_leaves_the_batch_running(cli: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Client, batch_id: int) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "get_batch", interrupted)
    result = _ok(cli.run("batches", "submit", "--wait", "s3://b/app.py"), code=130)
    assert "sparkplane batches kill 1" in result.stderr
    assert not any(r.method == "DELETE" for r in cli.server.requests)


# ---- list, show, logs, kill -------------------------------------------------------------------------------


def test_list_shows_the_newest_first(cli: Harness) -> None:
    for i in range(25):
        cli.server.add_batch("success" if i % 2 else "running", name=f"job-{i + 1}", app_id=f"app-{i + 1}")
    rows = json.loads(_ok(cli.run("batches", "list", "--limit", "3", "--json")).stdout)
    assert [b["id"] for b in rows] == [25, 24, 23]
    table = _ok(cli.run("batches", "list", "--state", "success")).stdout
    assert "job-24" in table and "app-24" in table and "job-25" not in table
    assert "1m05s" not in table  # the fake's finished batches never started, so they have no duration


def test_list_with_no_batches(cli: Harness) -> None:
    assert "No batches." in _ok(cli.run("batches", "list")).stdout


def test_show_has_details_and_the_events_timeline(cli: Harness) -> None:
    cli.server.add_batch("running", message="[red]not markup[/red]", conf={"spark.a": "1"})
    cli.server._advance(1, "dead", ())
    out = _ok(cli.run("batches", "show", "1")).stdout
    assert "BACKEND_FAILED" in out and "[red]not markup[/red]" in out and "spark.a=1" in out
    assert "events" in out and "running" in out and "dead" in out
    data = json.loads(_ok(cli.run("batches", "show", "1", "--json")).stdout)
    assert data["batch"]["state"] == "dead"
    assert [(e["from"], e["to"]) for e in data["events"]] == [(None, "running"), ("running", "dead")]


def test_logs_all_tail_and_follow(cli: Harness) -> None:
    cli.server.add_batch("running")
    cli.server.logs[1].extend(["a", "b", "c"])
    assert _ok(cli.run("batches", "logs", "1")).stdout.splitlines() == ["a", "b", "c"]
    assert _ok(cli.run("batches", "logs", "1", "--tail", "2")).stdout.splitlines() == ["b", "c"]
    followed = _ok(cli.run("batches", "logs", "1", "-f", "--tail", "1")).stdout.splitlines()
    assert followed == ["c", "line 1", "line 2", "line 3", "bye"]


def test_kill(cli: Harness) -> None:
    cli.server.add_batch("running")
    assert "Batch 1 is killed" in _ok(cli.run("batches", "kill", "1")).stdout
    assert cli.server.requests[-1].method == "DELETE"


# ---- errors -----------------------------------------------------------------------------------------------


def test_api_error_is_one_red_line_and_exit_1(cli: Harness) -> None:
    result = _ok(cli.run("batches", "show", "9"), code=1)
    assert result.stderr == "error: batch 9 not found (HTTP 404)\n"
    assert result.stdout == ""


def test_missing_credentials_point_to_login(cli: Harness) -> None:
    result = _ok(cli.run("batches", "list", token=None), code=1)
    assert result.stderr.startswith("error: not logged in to http://127.0.0.1:8998: run `sparkplane login`")
    assert cli.server.requests == []


def test_a_rejected_token_shows_the_servers_reason(cli: Harness) -> None:
    result = _ok(cli.run("batches", "list", token="revoked"), code=1)
    assert result.stderr == "error: not authenticated (HTTP 401)\n"


def test_unreachable_server(cli: Harness) -> None:
    cli.server.failures.append(httpx.ConnectError("[Errno 111] Connection refused"))
    result = _ok(cli.run("batches", "list", "--url", "http://nowhere:8998"), code=1)
    assert result.stderr == (
        "error: cannot reach sparkplane at http://nowhere:8998: is it running? (`sparkplane up`)\n"
    )


def test_url_and_token_from_the_environment(cli: Harness) -> None:
    result = CliRunner().invoke(
        APP, ["users", "list"], env={"SPARKPLANE_URL": "http://env:1", "SPARKPLANE_TOKEN": TOKEN}
    )
    _ok(result)
    assert cli.made[-1] == {"url": "http://env:1", "token": TOKEN, "username": None}


# ---- login ------------------------------------------------------------------------------------------------


def test_login_with_a_password_saves_a_new_token(cli: Harness) -> None:
    result = _ok(
        cli.run("login", "--url", "http://sp:8998", "--username", "alice", input="alice-password\n", token=None)
    )
    profile = cli.config_dir / "profile.json"
    saved = json.loads(profile.read_text())
    assert saved == {"url": "http://sp:8998", "token": "spk_1_" + "s" * 30}
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert cli.server.api_tokens[1]["name"].startswith("cli@")
    assert f"token saved in {profile}" in result.stdout
    # Later commands use the profile: its URL, and its token since the URL is the same.
    _ok(cli.run("batches", "list", token=None))
    assert cli.made[-1] == {"url": "http://sp:8998", "token": saved["token"], "username": None}
    assert cli.server.requests[-1].headers["authorization"] == f"Bearer {saved['token']}"


def test_login_with_a_token_checks_it_first(cli: Harness) -> None:
    _ok(cli.run("login", "--token", "wrong", token=None), code=1)
    assert not (cli.config_dir / "profile.json").exists()
    result = _ok(cli.run("login", "--token", TOKEN, token=None))
    assert "as alice" in result.stdout
    assert json.loads((cli.config_dir / "profile.json").read_text()) == {"url": "http://127.0.0.1:8998", "token": TOKEN}


def test_login_with_a_wrong_password(cli: Harness) -> None:
    result = _ok(cli.run("login", "-u", "alice", "--password", "nope", token=None), code=1)
    assert "HTTP 401" in result.stderr and not (cli.config_dir / "profile.json").exists()


# ---- users and tokens -------------------------------------------------------------------------------------


def test_users_commands(cli: Harness) -> None:
    assert "bob" in _ok(cli.run("users", "list")).stdout
    assert [u["username"] for u in json.loads(_ok(cli.run("users", "list", "--json")).stdout)] == ["alice", "bob"]
    _ok(cli.run("users", "create", "carol", "--admin", input="carol-password\ncarol-password\n"))
    assert cli.server.users[3] == {"id": 3, "username": "carol", "role": "admin", "is_active": True}
    assert "now disabled" in _ok(cli.run("users", "disable", "bob")).stdout
    assert json.loads(cli.server.requests[-1].content) == {"is_active": False}
    _ok(cli.run("users", "enable", "2"))
    _ok(cli.run("users", "make-admin", "bob"))
    assert cli.server.users[2] == {"id": 2, "username": "bob", "role": "admin", "is_active": True}
    assert _ok(cli.run("users", "disable", "zed"), code=1).stderr == "error: no user named 'zed'\n"


def test_tokens_commands(cli: Harness) -> None:
    out = _ok(cli.run("tokens", "create", "ci")).stdout.splitlines()
    assert "not shown again" in out[0]
    assert out[1] == "spk_1_" + "s" * 30  # the secret alone on its line, easy to copy
    created = json.loads(_ok(cli.run("tokens", "create", "ci-2", "--json")).stdout)
    assert created["token"].startswith("spk_2_") and created["name"] == "ci-2"
    assert "ci-2" in _ok(cli.run("tokens", "list")).stdout
    assert "Revoked token ci" in _ok(cli.run("tokens", "revoke", "1")).stdout
    assert cli.server.api_tokens[1]["revoked"]
