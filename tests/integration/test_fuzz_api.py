"""The API fuzzed in process with schemathesis from its own /openapi.json, signed in as a plain user.

A small, deterministic budget that fits the suite; `scripts/fuzz` runs thousands of random cases against a
running server. Alice first makes a batch, an idle session with a statement and a token, so small generated
ids reach live things. The checks are in tests/fuzz/schemathesis.toml. Every operation gets valid (positive) and
invalid (negative) cases; all failures are collected and reported together, one per operation and mode.

The cases are drawn with Hypothesis from each operation's strategy rather than by schemathesis' pytest
plugin: its fixture-based loader, the one that fits a per-test app, does not run on pytest 9.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import hypothesis.configuration
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis import GenerationMode

from sparkplane.services.context import Context
from tests.fuzz import checks
from tests.integration.conftest import ALICE
from tests.integration.resources import make_owned

# About 50 operations x 2 modes x 5 = 500 cases at most. Hypothesis stops early where the schema allows fewer.
EXAMPLES = 5


@pytest.fixture(params=["sqlite"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """SQLite only: the answers under test come from the API layer; both databases run the rest of the suite."""
    return str(request.param)


@pytest.fixture
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis keeps caches (constants, Unicode tables) in ./.hypothesis even without a database."""
    hypothesis.configuration.set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    hypothesis.configuration.set_hypothesis_home_dir(None)


@pytest.mark.usefixtures("hypothesis_home")
def test_api_answers_every_generated_request_well(api: TestClient, ctx: Context) -> None:
    make_owned(api, ctx)
    config = schemathesis.Config.from_path(checks.CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app, config=config)
    settings = hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,  # a loaded CI machine is slow now and then; time is not what is under test
        database=None,  # no example database: each run draws its cases afresh from the fixed seed
        derandomize=True,  # the same cases on every run: a failure here is never a flake
        suppress_health_check=list(hypothesis.HealthCheck),  # slow or filtered generation is not a defect
    )
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=ALICE)

            try:
                run()
            except (Exception, schemathesis.errors.FailureGroup) as exc:  # collect them all, one per operation
                # Only negative cases can be impossible: the operation has no input that can be made invalid
                # on the wire (no parameters and no body, or only a path segment typed string).
                if isinstance(exc, hypothesis.errors.Unsatisfiable) and mode is GenerationMode.NEGATIVE:
                    continue
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, f"{len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)
