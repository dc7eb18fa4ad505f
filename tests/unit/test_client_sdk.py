"""The SDK against a small in-memory fake of the REST API (httpx.MockTransport): no network, milliseconds.

`FakeServer` (fake_server.py) is shared with the CLI tests; the `server` fixture is in conftest.py. Each GET
of a batch moves it one step along a script of (state, new log lines), the way a real batch advances between
polls.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import httpx
import pytest

from sparkplane.client import (
    ApiError,
    Client,
    ConfigError,
    RequestFailed,
    ServerUnreachable,
    UnexpectedResponse,
    WaitTimeout,
    config,
)
from tests.unit.fake_server import TOKEN, URL, FakeServer
from tests.unit.fake_server import error as _error

# ---- configuration ------------------------------------------------------------------------------------


def test_resolution_order_argument_env_profile_default(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    assert config.resolve(env={}, path=path) == config.Resolved(config.DEFAULT_URL, None, "default", None)
    config.save_profile("http://saved:8998", "saved-token", path)
    resolved = config.resolve(env={}, path=path)
    assert (resolved.url, resolved.token, resolved.url_source, resolved.token_source) == (
        "http://saved:8998", "saved-token", "profile", "profile",
    )  # fmt: skip
    env = {"SPARKPLANE_URL": "http://env:1", "SPARKPLANE_TOKEN": "env-token"}
    from_env = config.resolve(env=env, path=path)
    assert (from_env.url, from_env.token, from_env.url_source) == ("http://env:1", "env-token", "environment")
    explicit = config.resolve("http://arg:2", "arg-token", env=env, path=path)
    assert (explicit.url, explicit.token, explicit.url_source, explicit.token_source) == (
        "http://arg:2", "arg-token", "argument", "argument",
    )  # fmt: skip


def test_profile_token_is_never_sent_to_another_server(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    config.save_profile("http://saved:8998/", "saved-token", path)
    assert config.resolve("http://elsewhere:8998", env={}, path=path).token is None
    assert config.resolve("http://saved:8998", env={}, path=path).token == "saved-token"  # trailing slash ignored
    # An empty exported variable counts as unset.
    assert config.resolve(env={"SPARKPLANE_URL": "", "SPARKPLANE_TOKEN": ""}, path=path).token == "saved-token"


def test_profile_location_follows_config_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.profile_path({"SPARKPLANE_CONFIG_DIR": str(tmp_path)}) == tmp_path / "profile.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.profile_path({}) == tmp_path / "home" / ".config" / "sparkplane" / "profile.json"


def test_profile_is_written_owner_only_even_over_a_wider_file(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "profile.json"
    config.save_profile("http://a:1", "t1", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    config.save_profile("http://b:2", "t2", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": "http://b:2", "token": "t2"}
    assert config.load_profile(path) == config.Profile("http://b:2", "t2")
    assert [p.name for p in path.parent.iterdir()] == ["profile.json"]  # no temp file left behind


def test_a_broken_profile_is_a_clear_error_but_only_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="sparkplane login"):
        config.resolve(env={}, path=path)
    assert config.resolve("http://x:1", "t", env={}, path=path).token == "t"
    path.write_text('{"url": 1}')
    with pytest.raises(ConfigError, match='"url" and "token"'):
        config.load_profile(path)


# ---- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "status", "message"),
    [
        (_error(404, "batch 7 not found"), 404, "batch 7 not found"),
        (_error(400, "Session '9' not found.", key="msg"), 400, "Session '9' not found."),
        (
            httpx.Response(422, json={"detail": [{"loc": ["body", "file"], "msg": "Field required"}]}),
            422,
            "Field required",
        ),
        (httpx.Response(502, html="<html>bad gateway</html>"), 502, "Bad Gateway"),
        (httpx.Response(500, text="upstream died", headers={"content-type": "text/plain"}), 500, "upstream died"),
    ],
)
def test_api_errors_carry_the_servers_message(
    server: FakeServer, response: httpx.Response, status: int, message: str
) -> None:
    server.failures.append(response)
    with server.client() as sp, pytest.raises(ApiError) as info:
        sp.get_batch(7)
    assert (info.value.status, info.value.message) == (status, message)
    assert str(info.value) == f"{message} (HTTP {status})"


def test_livy_face_errors_use_msg(server: FakeServer) -> None:
    with server.client() as sp, pytest.raises(ApiError, match="Session '9' not found"):
        sp._request("GET", "/livy/sessions/9")


def test_wrong_token_is_a_401(server: FakeServer) -> None:
    with server.client(token="wrong") as sp, pytest.raises(ApiError) as info:
        sp.me()
    assert info.value.status == 401


def test_unreachable_server_has_a_friendly_message(server: FakeServer) -> None:
    server.failures.append(httpx.ConnectError("[Errno 111] Connection refused"))
    with server.client() as sp, pytest.raises(ServerUnreachable) as info:
        sp.me()
    assert str(info.value) == f"cannot reach sparkplane at {URL}: is it running? (`sparkplane up`)"
    assert isinstance(info.value, ConnectionError)


def test_a_read_timeout_is_a_failed_request(server: FakeServer) -> None:
    server.failures.append(httpx.ReadTimeout("timed out"))
    with server.client() as sp, pytest.raises(RequestFailed, match="did not answer within 30s"):
        sp.me()


def test_a_non_sparkplane_answer_is_unexpected(server: FakeServer) -> None:
    server.failures.append(httpx.Response(200, html="<html>welcome to nginx</html>"))
    with server.client() as sp, pytest.raises(UnexpectedResponse, match="compatible version"):
        sp.me()


def test_url_needs_a_scheme_and_credentials_are_one_kind() -> None:
    with pytest.raises(ConfigError, match="http://"):
        Client("localhost:8998")
    with pytest.raises(ValueError, match="not both"):
        Client(URL, token="t", username="u", password="p")


# ---- auth, files, submit ----------------------------------------------------------------------------------


def test_bearer_and_basic_auth(server: FakeServer) -> None:
    with server.client() as sp:
        assert sp.me().username == "alice"
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    with server.client(token=None, username="alice", password="alice-password") as sp:
        assert sp.me().is_admin


def test_local_files_are_uploaded_then_submitted(server: FakeServer, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("print('hi')\n")
    dep = tmp_path / "dep.zip"
    dep.write_bytes(b"PK\x03\x04")
    with server.client() as sp:
        batch = sp.submit_batch(
            str(app),
            ["--day", "-1"],
            py_files=[str(dep), "s3://bucket/lib.zip"],
            files=[dep],  # a Path works too, and the same file is uploaded once
            jars=["not/here.jar"],
            conf={"spark.executor.instances": "2"},
            driver_memory="1g",
            name="etl",
        )
    assert [name for name, _ in server.uploads] == ["app.py", "dep.zip"]
    assert server.uploads[0][1] == b"print('hi')\n"
    body = server.submitted[0]
    assert body["file"] == "file:///blobs/uploads/1/1/app.py"
    assert body["args"] == ["--day", "-1"]
    assert body["pyFiles"] == ["file:///blobs/uploads/1/2/dep.zip", "s3://bucket/lib.zip"]
    assert body["files"] == ["file:///blobs/uploads/1/2/dep.zip"]
    assert body["jars"] == ["not/here.jar"]  # not a local file: passed through for the server to resolve
    assert body["conf"] == {"spark.executor.instances": "2"}
    assert (body["driverMemory"], body["name"]) == ("1g", "etl")
    assert "className" not in body and "numExecutors" not in body  # unset options keep the server's defaults
    assert (batch.id, batch.state, batch.args) == (1, "not_started", ("--day", "-1"))
    assert [r.url.path for r in server.requests] == ["/api/v1/files", "/api/v1/files", "/api/v1/batches"]


def test_uris_are_never_uploaded(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s3:").mkdir()
    (Path("s3:") / "x.py").write_text("")  # even if a local path happens to look like the URI
    with server.client() as sp:
        sp.submit_batch("s3://x.py")
    assert server.uploads == [] and server.submitted[0]["file"] == "s3://x.py"


def test_list_get_kill_events_and_log_pages(server: FakeServer) -> None:
    server.add_batch("running")
    server.add_batch("success")
    server.logs[1].extend(f"l{i}" for i in range(150))
    with server.client() as sp:
        page = sp.list_batches(state="success")
        assert (page.total, [b.id for b in page.items]) == (1, [2])
        assert sp.batch_log(1).lines == tuple(f"l{i}" for i in range(50, 150))  # the server's default: tail 100
        assert sp.batch_log(1, offset=0, limit=2).lines == ("l0", "l1")
        assert list(sp.read_log(1)) == [f"l{i}" for i in range(150)]
        killed = sp.kill_batch(1)
        assert killed.state == "killed" and killed.is_final
        assert [(e.from_state, e.to_state) for e in sp.batch_events(1)] == [(None, "running"), ("running", "killed")]


# ---- waiting and following --------------------------------------------------------------------------------


def test_wait_batch_polls_until_final(server: FakeServer) -> None:
    server.add_batch()
    seen: list[str] = []
    with server.client() as sp:
        final = sp.wait_batch(1, poll=0, on_update=lambda b: seen.append(b.state))
    assert seen == ["starting", "running", "running", "success"]
    assert final.succeeded and final.duration() == dt.timedelta(seconds=65)


def test_wait_batch_times_out(server: FakeServer) -> None:
    server.add_batch()
    with server.client() as sp, pytest.raises(WaitTimeout, match="batch 1 is still starting after 0s"):
        sp.wait_batch(1, poll=0, timeout=0)


def test_follow_log_yields_each_line_once_until_final(server: FakeServer) -> None:
    server.add_batch()
    states: list[str] = []
    with server.client() as sp:
        lines = list(sp.follow_log(1, poll=0, on_update=lambda b: states.append(b.state)))
    assert lines == ["line 1", "line 2", "line 3", "bye"]
    assert states[-1] == "success"


def test_follow_log_pages_through_a_long_log(server: FakeServer) -> None:
    server.script = [("success", [f"x{i}" for i in range(2500)])]
    server.add_batch()
    with server.client() as sp:
        assert list(sp.follow_log(1, poll=0, offset=2)) == [f"x{i}" for i in range(2, 2500)]
    assert [r.url.params.get("offset") for r in server.requests if r.url.path.endswith("/log")] == [
        "2", "1002", "2002",
    ]  # fmt: skip


def test_follow_log_resyncs_when_the_log_gets_shorter(server: FakeServer) -> None:
    server.add_batch("running")
    server.logs[1].extend(["a", "b", "c"])
    with server.client() as sp:
        follow = sp.follow_log(1, poll=0, offset=0)
        assert [next(follow), next(follow), next(follow)] == ["a", "b", "c"]
        server.logs[1][:] = ["c"]  # the backend now serves only a recent window
        server.script.clear()
        server.steps[1] = [("running", ["d"]), ("success", ["e"])]
        assert list(follow) == ["e"]  # "d" landed at an offset already read; nothing is repeated


def test_waiting_rides_out_a_short_outage(server: FakeServer) -> None:
    server.add_batch()
    server.failures += [_error(503, "the database is unavailable"), httpx.ConnectError("refused")]
    with server.client() as sp:
        assert list(sp.follow_log(1, poll=0)) == ["line 1", "line 2", "line 3", "bye"]
        server.failures.append(_error(503, "the database is unavailable"))
        assert sp.wait_batch(1, poll=0).succeeded


def test_waiting_gives_up_after_the_grace_and_at_once_on_a_real_error(server: FakeServer) -> None:
    server.add_batch()
    with server.client() as sp:
        sp.outage_grace = 0
        server.failures.append(_error(503, "the database is unavailable"))
        with pytest.raises(ApiError, match="database"):
            sp.wait_batch(1, poll=0)
        sp.outage_grace = 60
        with pytest.raises(ApiError, match="batch 9 not found"):
            list(sp.follow_log(9, poll=0))


# ---- users and tokens -------------------------------------------------------------------------------------


def test_users_and_tokens(server: FakeServer) -> None:
    with server.client() as sp:
        assert [u.username for u in sp.list_users()] == ["alice", "bob"]
        carol = sp.create_user("carol", "carol-password", role="admin")
        assert (carol.id, carol.role) == (3, "admin")
        assert not sp.update_user(2, is_active=False).is_active
        assert json.loads(server.requests[-1].content) == {"is_active": False}
        token, secret = sp.create_token("ci")
        assert (token.name, secret) == ("ci", "spk_1_" + "s" * 30)
        assert secret not in repr(token) and not hasattr(token, "token")
        assert [t.id for t in sp.list_tokens()] == [1]
        assert sp.revoke_token(1).revoked
