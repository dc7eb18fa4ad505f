"""How the local backends keep secrets off command lines and out of runs' environments (pure functions, files)."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from sparkplane.agent.main import parse_args
from sparkplane.agent.spark import submit_args
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.agent_command import agent_argv, session_confs
from sparkplane.backends.local.command import build_argv, build_env, is_control_plane_secret
from sparkplane.backends.local.secret_files import properties_text, write_secret_conf
from sparkplane.domain.specs import BatchSpec, SecretConf, SessionSpec

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRET_CONF = SecretConf({"spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE", "spark.hadoop.fs.s3a.secret.key": SECRET})
FILE = Path("/runs/k/spark-secrets.properties")


def batch_argv(spec: BatchSpec, secret_conf_file: Path | None = FILE) -> list[str]:
    return build_argv(
        spec,
        spark_submit="/spark/bin/spark-submit",
        master="local[*]",
        default_name="k",
        event_log_dir=None,
        secret_conf_file=secret_conf_file,
    )


# -- spark-submit's command line --------------------------------------------------------------------------------


def test_secret_confs_reach_spark_submit_as_a_properties_file_never_as_flags() -> None:
    spec = BatchSpec(file="/apps/job.py", conf={"spark.sql.shuffle.partitions": "4"}, secret_conf=SECRET_CONF)
    argv = batch_argv(spec)
    joined = shlex.join(argv)
    assert SECRET not in joined and "AKIAEXAMPLE" not in joined and "s3a" not in joined
    at = argv.index("--properties-file")
    assert argv[at : at + 3] == ["--properties-file", str(FILE), "--load-spark-defaults"]
    assert at < argv.index("/apps/job.py")  # a spark-submit option, not an application argument
    assert "spark.sql.shuffle.partitions=4" in argv


def test_a_users_conf_of_a_credential_key_is_dropped_so_the_credential_wins() -> None:
    spec = BatchSpec(file="a.py", conf={"spark.hadoop.fs.s3a.secret.key": "typed-by-hand"}, secret_conf=SECRET_CONF)
    assert not any("fs.s3a.secret.key" in arg for arg in batch_argv(spec))


def test_a_spec_with_secrets_and_no_file_is_refused_rather_than_losing_or_exposing_them() -> None:
    with pytest.raises(ValueError, match="never go on the command line"):
        batch_argv(BatchSpec(file="a.py", secret_conf=SECRET_CONF), secret_conf_file=None)
    assert "--properties-file" not in batch_argv(BatchSpec(file="a.py"), secret_conf_file=None)


# -- the agent's command line -------------------------------------------------------------------------------


def test_the_agent_gets_the_files_path_and_its_confs_leave_the_secret_keys_out() -> None:
    spec = SessionSpec(
        kind="pyspark", conf={"spark.hadoop.fs.s3a.access.key": "by-hand", "spark.x": "1"}, secret_conf=SECRET_CONF
    )
    conf = session_confs(spec)
    assert conf == {"spark.x": "1"}
    argv = agent_argv(
        python="/py",
        run_dir=Path("/runs/s1"),
        master="local[*]",
        name="nb",
        orphan_after=60.0,
        conf=conf,
        claimed_by="s1",
        secret_conf_file=Path("/runs/s1/spark-secrets.properties"),
    )
    assert SECRET not in shlex.join(argv) and "AKIAEXAMPLE" not in shlex.join(argv)
    assert argv[argv.index("--properties-file") + 1] == "/runs/s1/spark-secrets.properties"
    assert parse_args(argv[3:]).properties_file == Path("/runs/s1/spark-secrets.properties")
    assert parse_args(["--run-dir", "/r"]).properties_file is None


def test_the_agent_hands_the_file_to_its_drivers_spark_submit() -> None:
    path = Path("/runs/my session/spark-secrets.properties")
    args = submit_args(None, path)
    assert shlex.split(args) == [
        "--properties-file",
        "/runs/my session/spark-secrets.properties",
        "--load-spark-defaults",
        "pyspark-shell",
    ]
    assert submit_args("--packages x:y:1 pyspark-shell", path).endswith(" --packages x:y:1 pyspark-shell")


# -- the file -------------------------------------------------------------------------------------------------


def test_properties_text_escapes_what_would_break_an_entry() -> None:
    text = properties_text({"spark.a": "p=q:r#s!t\\u", "spark.b": " lead", "spark.c": "zé😀"})
    assert text.splitlines() == [
        "spark.a=p\\=q\\:r\\#s\\!t\\\\u",
        "spark.b=\\ lead",
        "spark.c=z\\u00e9\\ud83d\\ude00",
    ]
    assert properties_text({"spark.d": "a\nspark.e=injected"}) == "spark.d=a\\nspark.e\\=injected\n"


def test_the_secret_file_is_private_and_an_empty_conf_leaves_none(tmp_path: Path) -> None:
    path = write_secret_conf(tmp_path, SECRET_CONF)
    assert path == tmp_path / sup.SECRET_CONF
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"spark.hadoop.fs.s3a.secret.key={SECRET}" in path.read_text()
    assert write_secret_conf(tmp_path, SecretConf()) is None
    assert not path.exists()  # a relaunch without secrets does not inherit an earlier attempt's


def test_the_secret_file_goes_when_the_run_ends(tmp_path: Path) -> None:
    write_secret_conf(tmp_path, SECRET_CONF)
    sup.write_exit(tmp_path, exit_code=0, cancelled=False)
    assert not (tmp_path / sup.SECRET_CONF).exists() and (tmp_path / sup.EXIT_FILE).exists()


# -- the environment ----------------------------------------------------------------------------------------


CONTROL_PLANE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIA-CONTROL-PLANE",
    "AWS_SECRET_ACCESS_KEY": "control-plane-secret",
    "AWS_SESSION_TOKEN": "t",
    "AWS_SECURITY_TOKEN": "t",
    "AWS_PROFILE": "ops",
    "AWS_DEFAULT_PROFILE": "ops",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token",
    "AWS_ROLE_ARN": "arn:aws:iam::1:role/control-plane",
    "AWS_SHARED_CREDENTIALS_FILE": "/etc/aws/credentials",
    "AWS_CONFIG_FILE": "/etc/aws/config",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/sa.json",
    "GOOGLE_API_KEY": "k",
    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": "/t",
    "AZURE_CLIENT_SECRET": "s",
    "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem",
    "AZURE_FEDERATED_TOKEN_FILE": "/t",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountKey=k",
    "ARM_CLIENT_SECRET": "s",
    "DATABRICKS_TOKEN": "dapi",
    "PGSQL_PASSWORD": "pg",
    "RABBITMQ_PASSWORD": "mq",
    "SPARKPLANE_ENCRYPTION_KEY": "key",
    "SPARKPLANE_DATABASE_URL": "postgresql://u:p@h/d",
    "SPARKPLANE_TOKEN": "spk_x",
}
HARMLESS_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home/u",
    "JAVA_HOME": "/jvm",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AZURE_CLIENT_ID": "id",
    "GOOGLE_CLOUD_PROJECT": "p",
    "SPARK_LOCAL_IP": "127.0.0.1",
}


def test_the_control_planes_own_credentials_never_reach_a_run() -> None:
    env = build_env(
        {**CONTROL_PLANE_ENV, **HARMLESS_ENV}, spark_home=Path("/spark"), python="/py", extra_env={"EXTRA": "1"}
    )
    assert not set(CONTROL_PLANE_ENV) & set(env), sorted(set(CONTROL_PLANE_ENV) & set(env))
    assert {name: env[name] for name in HARMLESS_ENV} == HARMLESS_ENV
    assert env["EXTRA"] == "1" and env["SPARK_HOME"] == "/spark"


@pytest.mark.parametrize("name", sorted(CONTROL_PLANE_ENV))
def test_each_credential_variable_is_recognised(name: str) -> None:
    assert is_control_plane_secret(name)


@pytest.mark.parametrize("name", sorted(HARMLESS_ENV))
def test_ordinary_variables_pass(name: str) -> None:
    assert not is_control_plane_secret(name)
