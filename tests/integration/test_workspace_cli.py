"""`sparkplane workspace ls|export|import` with typer's CliRunner, through the SDK, against the real app in
process (each request of a real Client replayed through it): the CLI's wire shapes are the API's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sparkplane.cli import client_commands
from sparkplane.cli.main import app
from sparkplane.client import Client
from tests.integration.conftest import ALICE

URL = "http://testserver"


@pytest.fixture
def run(api: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    def forward(request: httpx.Request) -> httpx.Response:
        # The SDK's httpx request, replayed through the app's own test client (a different httpx build).
        path = request.url.raw_path.decode()
        answer = api.request(request.method, path, headers=dict(request.headers), content=request.read())
        return httpx.Response(answer.status_code, headers=list(answer.headers.multi_items()), content=answer.content)

    def make_client(url: str, *, token: str | None = None, **_: Any) -> Client:
        return Client(url, token=token, transport=httpx.MockTransport(forward))

    monkeypatch.setattr(client_commands, "make_client", make_client)
    monkeypatch.setenv("SPARKPLANE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    token = api.post("/api/v1/tokens", headers=ALICE, json={"name": "cli"}).json()["token"]
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [*args, "--url", URL, "--token", token])

    return invoke


def test_import_list_and_export_round_trip(api: TestClient, run: Any, tmp_path: Path) -> None:
    folder = api.post("/api/v1/workspace/folders", headers=ALICE, json={"name": "reports"}).json()
    source = tmp_path / "daily.py"
    source.write_text("# %% [markdown]\n# # Daily\n\n# %%\nprint(1)\n\n# %%\n# %%sql\nSELECT 1\n")

    made = run("workspace", "import", str(source), "--folder", str(folder["id"]))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("Notebook ") and "(daily) with 3 cells" in made.stdout

    listed = run("workspace", "ls")
    assert listed.exit_code == 0 and "/reports/daily" in listed.stdout

    notebook_id = api.get("/api/v1/workspace", headers=ALICE).json()["notebooks"][0]["id"]
    exported = run("workspace", "export", str(notebook_id))
    assert exported.exit_code == 0 and "Wrote daily.ipynb" in exported.stdout, exported.output
    data = json.loads((tmp_path / "daily.ipynb").read_text())
    assert [c["cell_type"] for c in data["cells"]] == ["markdown", "code", "code"]

    as_py = run("workspace", "export", str(notebook_id), "--format", "py", "-o", "-")
    assert as_py.stdout.startswith("# Databricks notebook source") and "# MAGIC %sql" in as_py.stdout

    back = run("workspace", "import", "daily.ipynb", "--json")
    assert back.exit_code == 0 and json.loads(back.stdout)["name"] == "daily"  # at the top: not taken there


def test_errors_are_one_line(run: Any, tmp_path: Path) -> None:
    missing = run("workspace", "export", "999")
    assert missing.exit_code == 1 and "Notebook 999 not found. (HTTP 404)" in missing.output
    (tmp_path / "bad.ipynb").write_text("{oops")
    bad = run("workspace", "import", "bad.ipynb")
    assert bad.exit_code == 1 and "not valid JSON" in bad.output
    assert run("workspace", "export", "1", "--format", "pdf").exit_code == 2
