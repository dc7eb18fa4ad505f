"""What the session and cluster CLI tests share: the real `sparkplane` app (cli/main.py) run with typer's
CliRunner against a FakeServer, no network.

`client_commands.make_client` is replaced by one that puts the FakeServer's MockTransport under a real
Client with its waits skipped, so everything from option parsing to the HTTP wire shapes is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from sparkplane.cli import client_commands, cluster_commands, session_commands
from sparkplane.cli.main import app
from sparkplane.client import Client
from tests.unit.fake_server import TOKEN, FakeServer


class Harness:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Harness:
        harness = cls(FakeServer())
        monkeypatch.setattr(client_commands, "make_client", harness.make_client)
        for module in (client_commands, session_commands, cluster_commands):
            monkeypatch.setattr(module, "POLL_SECONDS", 0.0)
        monkeypatch.setenv("SPARKPLANE_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.delenv("SPARKPLANE_URL", raising=False)
        monkeypatch.setenv("COLUMNS", "200")  # Rich tables at a width that never wraps a cell
        return harness

    def make_client(self, url: str, *, token: str | None = None, **_: Any) -> Client:
        client = Client(url, token=token, transport=httpx.MockTransport(self.server.handle))
        client._sleep = lambda seconds: None
        return client

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, env={"SPARKPLANE_TOKEN": TOKEN})

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.server.requests]

    def codes(self) -> list[tuple[str, str | None]]:
        """(code, kind) of every statement posted, in order."""
        posted = [r for r in self.server.requests if r.method == "POST" and r.url.path.endswith("/statements")]
        return [(body["code"], body.get("kind")) for body in (json.loads(r.content) for r in posted)]


def ok(result: Result, code: int = 0) -> Result:
    """The result, once it is sure the command exited with `code` and printed no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback (most recent call last)" not in result.stdout
    return result
