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
            "expired_web_logins": 0,
        }


def test_db_reencrypt_moves_credentials_to_a_new_key(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from sparkplane.services import credentials, users
    from sparkplane.services.context import build_context
    from sparkplane.services.encryption import Cipher, new_key, parse_key
    from sparkplane.services.principal import Principal
    from sparkplane.settings import load_settings

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--data-dir", str(data_dir)]).exit_code == 0
    ctx = build_context(load_settings(data_dir=data_dir))  # embedded mode: a generated key
    try:
        alice = users.create_user(ctx, None, "alice", "alice-password", "user")
        fields = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cret"}
        credentials.create(ctx, Principal(alice.id, alice.username, False), "lake", "s3", fields)
        generated = ctx.settings.generated_key_file().read_text().strip()
    finally:
        ctx.close()
    key = new_key()
    monkeypatch.setenv("SPARKPLANE_ENCRYPTION_KEY", key)
    refused = runner.invoke(app, ["db", "reencrypt", "--data-dir", str(data_dir)])
    assert refused.exit_code == 1 and "SPARKPLANE_ENCRYPTION_OLD_KEYS" in refused.output
    monkeypatch.setenv("SPARKPLANE_ENCRYPTION_OLD_KEYS", generated)
    result = runner.invoke(app, ["db", "reencrypt", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "1 credentials encrypted with the current key"
    ctx = build_context(load_settings(data_dir=data_dir))
    try:
        with ctx.db.engine.connect() as conn:
            token = conn.execute(text("SELECT ciphertext FROM credentials")).scalar_one()
    finally:
        ctx.close()
    assert b"s3cret" in Cipher([parse_key(key, "K")]).open(token)
