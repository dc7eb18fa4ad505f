"""The server roles' commands: schema check, cleanup and db commands on a fresh embedded data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkplane.cli.main import app
from sparkplane.db import migrate


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SPARKPLANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("PGSQL_HOST", raising=False)
    return tmp_path


def test_roles_refuse_an_unmigrated_database_with_a_clear_message(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["cleanup", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "run `sparkplane db upgrade` first" in result.output


def test_db_upgrade_then_cleanup_twice(data_dir: Path) -> None:
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade", "--data-dir", str(data_dir)])
    assert upgraded.exit_code == 0 and "database at revision" in upgraded.output
    current = runner.invoke(app, ["db", "current", "--data-dir", str(data_dir)])
    head = migrate.head_revision()
    assert current.output.strip() == f"current: {head}  head: {head}"
    for _ in range(2):  # idempotent
        result = runner.invoke(app, ["cleanup", "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.strip().splitlines()[-1]) == {
            "deleted_batches": 0,
            "orphans_killed": 0,
            "orphan_clusters_stopped": 0,
            "sessions_timed_out": 0,
            "deleted_sessions": 0,
        }
