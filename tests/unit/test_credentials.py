"""Credentials without a database: the cipher and its keys, the kinds' validation, the confs, masked specs."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from sparkplane.domain import credentials as kinds
from sparkplane.domain.errors import InvalidInput
from sparkplane.domain.specs import BatchSpec, SecretConf, SessionSpec
from sparkplane.services.encryption import Cipher, DecryptionFailed, cipher_for, generated_key, new_key, parse_key
from sparkplane.settings import load_settings

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCESS = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE+TOKEN/=="
# Spark's default spark.redaction.regex (core/.../internal/config/package.scala, 4.1): the UI, the event log
# and spark-submit --verbose mask the values of keys it matches.
SPARK_REDACTION_REGEX = re.compile(r"(?i)secret|password|token|access[.]?key")


# -- the cipher --------------------------------------------------------------------------------------------------


def test_seal_and_open_round_trip_and_the_token_hides_the_plaintext() -> None:
    cipher = Cipher([parse_key(new_key(), "K")])
    token = cipher.seal(SECRET.encode())
    assert SECRET not in token and cipher.open(token) == SECRET.encode()
    assert cipher.seal(SECRET.encode()) != token  # a fresh IV every time


def test_a_wrong_key_or_an_altered_value_fails_cleanly() -> None:
    token = Cipher([parse_key(new_key(), "K")]).seal(b"secret")
    other = Cipher([parse_key(new_key(), "K")])
    with pytest.raises(DecryptionFailed):
        other.open(token)
    with pytest.raises(DecryptionFailed):
        Cipher([parse_key(new_key(), "K")]).open(token[:-4] + "AAAA")
    with pytest.raises(DecryptionFailed):
        other.open("not a fernet token é")


def test_old_keys_still_open_and_reseal_moves_a_value_to_the_current_key() -> None:
    old, new = parse_key(new_key(), "K"), parse_key(new_key(), "K")
    token = Cipher([old]).seal(b"secret")
    rotated = Cipher([new, old])
    assert rotated.open(token) == b"secret"
    resealed = rotated.reseal(token)
    assert Cipher([new]).open(resealed) == b"secret"
    with pytest.raises(DecryptionFailed):
        Cipher([old]).open(resealed)


def test_a_bad_key_is_refused_naming_the_variable_never_the_value() -> None:
    with pytest.raises(ValueError, match="SPARKPLANE_ENCRYPTION_KEY is not a Fernet key") as caught:
        parse_key("my-secret-passphrase", "SPARKPLANE_ENCRYPTION_KEY")
    assert "my-secret-passphrase" not in str(caught.value)
    assert repr(Cipher([parse_key(new_key(), "K")])) == "Cipher(keys=1)"


def test_embedded_mode_generates_a_private_key_once_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "encryption.key"
    first = generated_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generated_key(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["encryption.key"]  # no temporary file left


def test_roles_starting_together_agree_on_one_generated_key(tmp_path: Path) -> None:
    path = tmp_path / "encryption.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(generated_key(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys) == 8


def test_cipher_from_settings_uses_the_key_then_the_old_keys(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    token = Cipher([parse_key(old, "K")]).seal(b"x")
    settings = load_settings(data_dir=tmp_path, encryption_key=new, encryption_old_keys=f" {old} ,")
    cipher = cipher_for(settings)
    assert cipher.open(token) == b"x"
    assert Cipher([parse_key(new, "K")]).open(cipher.seal(b"y")) == b"y"
    assert not settings.generated_key_file().exists()  # a configured key never writes one


def test_embedded_settings_without_a_key_use_the_generated_one(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    token = cipher_for(settings).seal(b"x")
    assert cipher_for(load_settings(data_dir=tmp_path)).open(token) == b"x"  # another role, same key
    assert settings.generated_key_file().exists()


# -- kinds and their validation -------------------------------------------------------------------------------


def test_s3_fields_are_checked_stripped_and_split_into_secret_and_public() -> None:
    values = kinds.S3.validate(
        {"access_key_id": f" {ACCESS} ", "secret_access_key": SECRET, "endpoint": "http://minio:9000", "region": "x"}
    )
    assert values["access_key_id"] == ACCESS
    assert kinds.S3.public(values) == {"endpoint": "http://minio:9000", "region": "x"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"secret_access_key": SECRET}, "fields.access_key_id is required for a s3 credential"),
        ({"access_key_id": ACCESS}, "fields.secret_access_key is required"),
        ({"access_key_id": ACCESS, "secret_access_key": SECRET, "password": "x"}, "fields.password is not a field"),
        ({"access_key_id": ACCESS, "secret_access_key": "   "}, "fields.secret_access_key must not be empty"),
        ({"access_key_id": ACCESS, "secret_access_key": 42}, "fields.secret_access_key must be a string"),
        ({"access_key_id": ACCESS, "secret_access_key": SECRET + "\nx=y"}, "fields.secret_access_key must not contain"),
        ({"access_key_id": ACCESS, "secret_access_key": "s" * 5000}, "fields.secret_access_key is longer than"),
        ({"access_key_id": ACCESS, "secret_access_key": SECRET, "endpoint": "ftp://x"}, "fields.endpoint 'ftp://x'"),
        ({"access_key_id": ACCESS, "secret_access_key": SECRET, "region": "eu west"}, "fields.region 'eu west'"),
        ({"access_key_id": ACCESS, "secret_access_key": SECRET, "bucket": "No_Such"}, "fields.bucket 'No_Such'"),
    ],
)
def test_bad_fields_name_the_field_and_never_quote_a_secret(fields: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        kinds.S3.validate(fields)
    assert expected in caught.value.message
    assert SECRET not in caught.value.message and ACCESS not in caught.value.message


def test_unknown_kinds_and_bad_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="kind 'gcs' is not a credential kind; use one of s3"):
        kinds.kind_named("gcs")
    for name in ("", "1lake", "lake/prod", "x" * 65, "a b"):
        with pytest.raises(InvalidInput, match="credential name"):
            kinds.check_name(name)
    assert kinds.check_name("lake-prod_2.eu") == "lake-prod_2.eu"


def test_requested_names_are_deduplicated_in_order_and_bounded() -> None:
    assert kinds.check_requested(["b", "a", "b"]) == ["b", "a"]
    with pytest.raises(InvalidInput, match="at most 20"):
        kinds.check_requested([f"c{i}" for i in range(21)])
    with pytest.raises(InvalidInput, match="credentials must be a list"):
        kinds.check_requested("lake")


# -- the confs ------------------------------------------------------------------------------------------------


def test_long_lived_keys_become_s3a_confs_with_the_simple_provider() -> None:
    conf = kinds.S3.spark_conf(kinds.S3.validate({"access_key_id": ACCESS, "secret_access_key": SECRET}))
    assert conf == {
        "spark.hadoop.fs.s3a.access.key": ACCESS,
        "spark.hadoop.fs.s3a.secret.key": SECRET,
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


def test_a_session_token_selects_the_temporary_provider_and_endpoint_and_region_follow() -> None:
    values = kinds.S3.validate(
        {
            "access_key_id": ACCESS,
            "secret_access_key": SECRET,
            "session_token": TOKEN,
            "endpoint": "https://s3.eu-west-1.amazonaws.com",
            "region": "eu-west-1",
        }
    )
    conf = kinds.S3.spark_conf(values)
    assert conf["spark.hadoop.fs.s3a.session.token"] == TOKEN
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == (
        "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    )
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"


def test_a_bucket_scopes_the_confs_to_it() -> None:
    values = kinds.S3.validate({"access_key_id": ACCESS, "secret_access_key": SECRET, "bucket": "lake.eu"})
    conf = kinds.S3.spark_conf(values)
    assert set(conf) == {
        "spark.hadoop.fs.s3a.bucket.lake.eu.access.key",
        "spark.hadoop.fs.s3a.bucket.lake.eu.secret.key",
        "spark.hadoop.fs.s3a.bucket.lake.eu.aws.credentials.provider",
    }
    assert kinds.S3.scope(kinds.S3.public(values)) == "the s3a bucket lake.eu"
    assert kinds.S3.scope({}) == "every s3a bucket"


@pytest.mark.parametrize("bucket", [None, "lake"])
def test_sparks_default_redaction_covers_every_secret_key(bucket: str | None) -> None:
    fields = {"access_key_id": ACCESS, "secret_access_key": SECRET, "session_token": TOKEN}
    conf = kinds.S3.spark_conf(kinds.S3.validate({**fields, **({"bucket": bucket} if bucket else {})}))
    secret_values = set(fields.values())
    for key, value in conf.items():
        if value in secret_values:
            assert SPARK_REDACTION_REGEX.search(key), f"Spark would show {key} in its UI"


# -- specs never show the values ------------------------------------------------------------------------------


def test_secret_conf_is_a_mapping_whose_repr_names_keys_only() -> None:
    conf = SecretConf({"spark.hadoop.fs.s3a.secret.key": SECRET})
    assert conf["spark.hadoop.fs.s3a.secret.key"] == SECRET and dict(conf) == {"spark.hadoop.fs.s3a.secret.key": SECRET}
    assert SECRET not in repr(conf) and SECRET not in str(conf) and SECRET not in f"{conf}"
    assert "spark.hadoop.fs.s3a.secret.key" in repr(conf)
    with pytest.raises(TypeError):
        json.dumps(conf)  # never serialised by accident


def test_specs_with_secret_confs_never_show_them_and_sessions_are_not_poolable() -> None:
    secret = SecretConf({"spark.hadoop.fs.s3a.secret.key": SECRET})
    batch = BatchSpec(file="app.py", secret_conf=secret)
    session = SessionSpec(kind="pyspark", secret_conf=secret)
    for spec in (batch, session):
        assert SECRET not in repr(spec) and SECRET not in str(spec)
    assert SessionSpec(kind="pyspark").poolable() and not session.poolable()


def test_generated_key_file_is_not_world_readable_even_with_a_loose_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        generated_key(tmp_path / "k")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
