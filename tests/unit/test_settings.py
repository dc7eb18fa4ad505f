"""Settings: the seed's names, URLs built from parts, secrets from files, nothing secret printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkplane.cli.main import app
from sparkplane.services.encryption import Cipher, cipher_for, new_key, parse_key
from sparkplane.settings import load_settings, masked


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("SPARKPLANE_", "PGSQL_", "RABBITMQ_", "SPARK_", "AWS_", "GCP_", "AZURE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPARKPLANE_DATA_DIR", str(tmp_path))


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.port == 8998 and settings.host == "127.0.0.1"
    assert settings.sqlalchemy_url() == f"sqlite:///{tmp_path / 'sparkplane.sqlite'}"
    assert settings.celery_broker_url() == f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    assert settings.blob_root() == (tmp_path / "blob").as_uri()


def test_postgres_and_rabbitmq_from_the_seeds_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PGSQL_HOST": "db.internal",
        "PGSQL_PORT": "6432",
        "PGSQL_USER": "spark",
        "PGSQL_DATABASE": "compute",
        "PGSQL_CONNECTION_OPTIONS": "?sslmode=require",
        "PGSQL_PASSWORD": "p@ss/word",
        "RABBITMQ_HOST": "mq.internal",
        "RABBITMQ_SCHEME": "amqps",
        "RABBITMQ_PORT": "5671",
        "RABBITMQ_USER": "spark",
        "RABBITMQ_VHOST": "compute",
        "RABBITMQ_PASSWORD": "r@bbit",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (
        settings.sqlalchemy_url() == "postgresql+psycopg://spark:p%40ss%2Fword@db.internal:6432/compute?sslmode=require"
    )
    assert settings.celery_broker_url() == "amqps://spark:r%40bbit@mq.internal:5671/compute"


def test_urls_override_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSQL_HOST", "ignored")
    monkeypatch.setenv("SPARKPLANE_DATABASE_URL", "postgresql+psycopg://u@h/d")
    assert load_settings().sqlalchemy_url() == "postgresql+psycopg://u@h/d"


def test_secrets_from_a_mounted_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PGSQL_PASSWORD").write_text("from-a-file\n")
    monkeypatch.setenv("SPARKPLANE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("PGSQL_HOST", "db")
    assert load_settings().sqlalchemy_url().startswith("postgresql+psycopg://postgres:from-a-file@db:5432/")


def test_seed_list_variables_accept_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_NETWORK_AWS_SUBNET_IDS", '["subnet-1","subnet-2"]')
    monkeypatch.setenv("SPARK_NETWORK_AWS_SECURITY_GROUPS", "sg-1, sg-2")
    settings = load_settings()
    assert settings.spark_network_aws_subnet_ids == ["subnet-1", "subnet-2"]
    assert settings.spark_network_aws_security_groups == ["sg-1", "sg-2"]


def test_production_refuses_embedded_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="PostgreSQL"):
        load_settings()


def test_production_refuses_to_run_without_an_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_ENVIRONMENT", "production")
    monkeypatch.setenv("PGSQL_HOST", "db")
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert str(refused.value) == (
        "SPARKPLANE_ENVIRONMENT=production needs an encryption key for users' credentials "
        "(SPARKPLANE_ENCRYPTION_KEY, or a file of that name in SPARKPLANE_SECRETS_DIR)"
    )
    monkeypatch.setenv("SPARKPLANE_ENCRYPTION_KEY", new_key())
    assert load_settings().encryption_key is not None


def test_the_encryption_keys_come_from_the_secrets_folder_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key, old = new_key(), new_key()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SPARKPLANE_ENCRYPTION_KEY").write_text(key + "\n")
    (secrets / "SPARKPLANE_ENCRYPTION_OLD_KEYS").write_text(old)
    monkeypatch.setenv("SPARKPLANE_SECRETS_DIR", str(secrets))
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.encryption_key is not None and settings.encryption_key.get_secret_value().strip() == key
    token = Cipher([parse_key(old, "K")]).seal(b"sealed with the old key")
    assert cipher_for(settings).open(token) == b"sealed with the old key"
    assert key not in json.dumps(masked(settings), default=str)


def test_config_command_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "PGSQL_PASSWORD": "pg-secret-value",
        "RABBITMQ_PASSWORD": "mq-secret-value",
        "SPARKPLANE_ADMIN_PASSWORD": "admin-secret-value",
        "SPARKPLANE_ENCRYPTION_KEY": new_key(),
        "SPARKPLANE_ENCRYPTION_OLD_KEYS": new_key(),
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PGSQL_HOST", "db")
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    for value in secrets.values():
        assert value not in result.output
    shown = json.loads(result.output)
    assert shown["pgsql_password"] == "**********"
    assert shown["effective_database_url"] == "postgresql+psycopg://postgres:***@db:5432/sparkplane"
    assert shown["pgsql_host"] == "db"


def test_masked_shows_unset_secrets_as_empty() -> None:
    assert masked(load_settings())["pgsql_password"] is None
