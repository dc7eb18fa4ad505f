from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sparkplane.api.app import create_app
from sparkplane.services.context import Context
from tests.conftest import ADMIN_PASSWORD
from tests.integration.aws import MotoServer, moto_server


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", ADMIN_PASSWORD)
ALICE = basic("alice", "alice-password")
BOB = basic("bob", "bob-password-1")


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for every test that asks (starting one costs seconds), stopped at the end."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def uploaded(api: TestClient) -> str:
    """The URI of an application file alice uploaded."""
    response = api.post("/api/v1/files", headers=ALICE, files={"file": ("app.py", b"print('hi')\n")})
    assert response.status_code == 201, response.text
    return str(response.json()["uri"])
