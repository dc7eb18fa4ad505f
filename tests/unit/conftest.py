"""Fixtures of the SDK tests (test_client_*.py): a FakeServer (fake_server.py) and a Client over it whose
waits are recorded instead of slept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sparkplane.client import Client
from tests.unit.fake_server import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def sp(server: FakeServer, sleeps: list[float]) -> Iterator[Client]:
    with server.client() as client:
        client._sleep = sleeps.append  # the SDK's waits, recorded instead of slept
        yield client
