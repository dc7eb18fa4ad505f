"""The spark-submit command line and environment built from a BatchSpec, flag by flag."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from sparkplane.backends.local.command import build_argv, build_env, effective_master, local_path
from sparkplane.domain.specs import BatchSpec, Resources

SUBMIT = "/spark/bin/spark-submit"
KEY = "key-1"
EVENTS = "file:///runs/k/events"
OUR_DEFAULTS = [
    "--conf",
    "spark.eventLog.enabled=true",
    "--conf",
    f"spark.eventLog.dir={EVENTS}",
    "--conf",
    "spark.ui.showConsoleProgress=false",
]


def argv(spec: BatchSpec, *, master: str = "local[*]", event_log_dir: str | None = EVENTS) -> list[str]:
    return build_argv(spec, spark_submit=SUBMIT, master=master, default_name=KEY, event_log_dir=event_log_dir)


def confs(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]


def test_minimal_spec() -> None:
    assert argv(BatchSpec(file="/apps/pi.py")) == [
        SUBMIT,
        "--master",
        "local[*]",
        "--name",
        KEY,
        *OUR_DEFAULTS,
        "/apps/pi.py",
    ]


def test_every_field() -> None:
    spec = BatchSpec(
        file="/apps/job.jar",
        args=("in", "--out", "x y"),
        class_name="com.example.Main",
        name="nightly",
        jars=("a.jar", "b.jar"),
        py_files=("lib.zip", "util.py"),
        files=("conf.json",),
        archives=("env.tar.gz#env",),
        conf={"spark.sql.shuffle.partitions": "8"},
        resources=Resources(
            driver_memory="1g", driver_cores=2, executor_memory="512m", executor_cores=3, num_executors=4
        ),
        queue="etl",
        proxy_user="alice",
    )
    assert argv(spec) == [
        SUBMIT,
        "--master",
        "local[2]",
        "--name",
        "nightly",
        "--class",
        "com.example.Main",
        "--jars",
        "a.jar,b.jar",
        "--py-files",
        "lib.zip,util.py",
        "--files",
        "conf.json",
        "--archives",
        "env.tar.gz#env",
        "--driver-memory",
        "1g",
        "--executor-memory",
        "512m",
        "--executor-cores",
        "3",
        "--proxy-user",
        "alice",
        *OUR_DEFAULTS,
        "--conf",
        "spark.sql.shuffle.partitions=8",
        "--conf",
        "spark.executor.instances=4",
        "--conf",
        "spark.yarn.queue=etl",
        "/apps/job.jar",
        "in",
        "--out",
        "x y",
    ]


@pytest.mark.parametrize(
    ("master", "cores", "expected"),
    [
        ("local[*]", None, "local[*]"),
        ("local[*]", 3, "local[3]"),
        ("local[2]", 3, "local[2]"),  # an explicit size set by the operator stays
        ("spark://master:7077", 3, "spark://master:7077"),
    ],
)
def test_master(master: str, cores: int | None, expected: str) -> None:
    assert effective_master(master, cores) == expected
    spec = BatchSpec(file="a.py", resources=Resources(driver_cores=cores))
    assert argv(spec, master=master)[1:3] == ["--master", expected]


def test_user_event_log_settings_replace_ours() -> None:
    spec = BatchSpec(file="a.py", conf={"spark.eventLog.enabled": "false"})
    assert confs(argv(spec)) == ["spark.ui.showConsoleProgress=false", "spark.eventLog.enabled=false"]


def test_user_console_progress_setting_wins() -> None:
    spec = BatchSpec(file="a.py", conf={"spark.ui.showConsoleProgress": "true"})
    assert confs(argv(spec)) == [
        "spark.eventLog.enabled=true",
        f"spark.eventLog.dir={EVENTS}",
        "spark.ui.showConsoleProgress=true",
    ]


def test_typed_fields_beat_the_same_key_in_conf_without_duplicates() -> None:
    spec = BatchSpec(
        file="a.py",
        conf={"spark.executor.instances": "9", "spark.yarn.queue": "default", "spark.foo": "bar"},
        resources=Resources(num_executors=2),
        queue="etl",
    )
    assert confs(argv(spec, event_log_dir=None)) == [
        "spark.ui.showConsoleProgress=false",
        "spark.executor.instances=2",
        "spark.yarn.queue=etl",
        "spark.foo=bar",
    ]


def test_no_event_log_when_no_folder_is_given() -> None:
    assert confs(argv(BatchSpec(file="a.py"), event_log_dir=None)) == ["spark.ui.showConsoleProgress=false"]


def test_conf_values_keep_equals_signs_and_spaces() -> None:
    spec = BatchSpec(file="a.py", conf={"spark.driver.extraJavaOptions": "-Da=b -Dc=d"})
    assert "spark.driver.extraJavaOptions=-Da=b -Dc=d" in confs(argv(spec))


def test_env_points_spark_and_python_then_applies_extra_env() -> None:
    env = build_env(
        {"PATH": "/bin", "SPARK_HOME": "/old", "KEEP": "1"},
        spark_home=Path("/spark"),
        python="/venv/bin/python",
        extra_env={"PYSPARK_PYTHON": "/other/python", "EXTRA": "x"},
    )
    assert env == {
        "PATH": "/bin",
        "KEEP": "1",
        "SPARK_HOME": "/spark",
        "PYSPARK_PYTHON": "/other/python",
        "PYSPARK_DRIVER_PYTHON": "/venv/bin/python",
        "PYTHONUNBUFFERED": "1",
        "EXTRA": "x",
    }


def test_env_puts_the_runs_temporary_files_in_its_scratch_folder() -> None:
    scratch = Path("/data/runs/a run/tmp")
    env = build_env(
        {"SPARK_SUBMIT_OPTS": "-Dfoo=1"}, spark_home=Path("/spark"), python="/p", extra_env=None, scratch_dir=scratch
    )
    assert env["TMPDIR"] == str(scratch)
    # Quoted for Spark's launcher, which splits the options as a shell does; options already there stay first.
    assert shlex.split(env["SPARK_SUBMIT_OPTS"]) == ["-Dfoo=1", f"-Djava.io.tmpdir={scratch}"]
    assert shlex.split(env["SPARK_DAEMON_JAVA_OPTS"]) == [f"-Djava.io.tmpdir={scratch}"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/apps/pi.py", Path("/apps/pi.py")),
        ("apps/pi.py", Path("apps/pi.py")),
        ("file:///apps/my%20pi.py", Path("/apps/my pi.py")),
        ("local:///opt/app.jar", Path("/opt/app.jar")),
        ("s3a://bucket/pi.py", None),
        ("hdfs://nn:8020/apps/pi.py", None),
        ("https://example.com/pi.py", None),
    ],
)
def test_local_path(uri: str, expected: Path | None) -> None:
    assert local_path(uri) == expected


def test_launched_processes_never_inherit_a_spark_connect_clients_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Connect client in the launcher's process sets SPARK_CONNECT_MODE_ENABLED; a driver inheriting it
    refuses to start a classic SparkContext (found when a test's Connect client broke every later batch)."""
    import subprocess

    from sparkplane.backends.local.batch import LocalBackend
    from sparkplane.backends.local.command import CONNECT_CLIENT_ENV

    seen: dict[str, str] = {}

    class Spawned:
        def wait(self, timeout: float) -> int:
            return 0

    def fake_popen(command: list[str], **kwargs: object) -> Spawned:
        seen.update(kwargs["env"])  # type: ignore[arg-type]
        return Spawned()

    for name in CONNECT_CLIENT_ENV:
        monkeypatch.setenv(name, "sc://elsewhere:15002")
    monkeypatch.setenv("KEEP_ME", "1")
    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    backend = LocalBackend(tmp_path, spark_home=tmp_path / "spark")
    run_dir = tmp_path / "k"
    run_dir.mkdir()
    assert backend._spawn(run_dir, ["true"], {"EXTRA": "x"})
    assert not set(CONNECT_CLIENT_ENV) & set(seen)
    assert seen["KEEP_ME"] == "1" and seen["EXTRA"] == "x" and seen["SPARK_HOME"] == str(tmp_path / "spark")
