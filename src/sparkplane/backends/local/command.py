"""From a `BatchSpec` to the `spark-submit` command line and its environment.

Pure functions, so that every flag is unit-tested without starting Spark. Precedence, weakest first: our
defaults (event log, console progress) < the user's `conf` < the spec's typed fields. The typed fields win
because spark-submit itself lets `--driver-memory` beat `--conf spark.driver.memory`; we apply the same rule
to the fields that only exist as `--conf` (executor instances, YARN queue) and drop the user's duplicate, so
the command line never carries one key twice.

A user's secret confs (their stored credentials) never go on the command line, which every local user can
read: they travel in a 0600 properties file (secret_files.py) named by `--properties-file`, and a `--conf`
of the same key is dropped, since it would beat the file. Nor does the control plane's own environment reach
the run with its secrets: its cloud credentials and its settings are left out (`is_control_plane_secret`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sparkplane.domain.specs import BatchSpec

LOCAL_ANY_CORES = "local[*]"
EVENT_LOG_PREFIX = "spark.eventLog."
CONSOLE_PROGRESS = "spark.ui.showConsoleProgress"
EXECUTOR_INSTANCES = "spark.executor.instances"
YARN_QUEUE = "spark.yarn.queue"

# Variables that name a cloud identity's secrets, or where to find them; anything of these clouds that looks
# like a key, token, password, profile or role counts. Region and project settings pass.
_CLOUD_PREFIXES = ("AWS_", "AMAZON_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "GCP_", "AZURE_", "ARM_", "DATABRICKS_")
_CREDENTIAL_WORDS = (
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "CREDENTIAL",
    "PROFILE",
    "ROLE",
    "CERTIFICATE",
    "CONNECTION_STRING",
    "SAS",
)
# The rest of the control plane's own: its passwords, and an AWS config file (it may name a credential process).
_CONTROL_PLANE_VARIABLES = frozenset(
    {"PGSQL_PASSWORD", "RABBITMQ_PASSWORD", "AWS_CONFIG_FILE", "SPARK_CUSTOMER_IAM_ROLE"}
)

_LIST_FLAGS = (
    ("--jars", "jars"),
    ("--py-files", "py_files"),
    ("--files", "files"),
    ("--archives", "archives"),
)


def effective_master(master: str, driver_cores: int | None) -> str:
    """In local mode the driver *is* the executor, so driver cores size the local thread pool."""
    if master == LOCAL_ANY_CORES and driver_cores is not None:
        return f"local[{driver_cores}]"
    return master


def conf_entries(spec: BatchSpec, *, event_log_dir: str | None) -> dict[str, str]:
    """Every `--conf` the command carries, in order: our defaults, the user's conf, then the typed fields."""
    conf: dict[str, str] = {}
    # The event log is how we learn the application id in local mode; a user who configures their own
    # event log keeps it untouched (we then report no application id rather than fight over the setting).
    if event_log_dir is not None and not any(key.startswith(EVENT_LOG_PREFIX) for key in spec.conf):
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log_dir
    # The progress bar redraws with carriage returns and fills driver.log with noise.
    if CONSOLE_PROGRESS not in spec.conf:
        conf[CONSOLE_PROGRESS] = "false"
    conf.update((key, value) for key, value in spec.conf.items() if key not in spec.secret_conf)
    if spec.resources.num_executors is not None:
        conf[EXECUTOR_INSTANCES] = str(spec.resources.num_executors)
    if spec.queue:
        conf[YARN_QUEUE] = spec.queue
    return conf


def build_argv(
    spec: BatchSpec,
    *,
    spark_submit: str,
    master: str,
    default_name: str,
    event_log_dir: str | None,
    secret_conf_file: Path | None = None,
) -> list[str]:
    """The spark-submit command line for `spec`; `default_name` names the application if the spec does not.

    `secret_conf_file` holds the spec's secret confs (secret_files.write_secret_conf); a spec that has some
    and no file is refused, so that they are neither lost nor put on the command line.
    """
    if spec.secret_conf and secret_conf_file is None:
        raise ValueError("the spec's secret confs need a properties file; they never go on the command line")
    argv = [
        spark_submit,
        "--master",
        effective_master(master, spec.resources.driver_cores),
        "--name",
        spec.name or default_name,
    ]
    if spec.class_name:
        argv += ["--class", spec.class_name]
    for flag, attribute in _LIST_FLAGS:
        values: tuple[str, ...] = getattr(spec, attribute)
        if values:
            argv += [flag, ",".join(values)]
    resources = spec.resources
    for flag, value in (
        ("--driver-memory", resources.driver_memory),
        ("--executor-memory", resources.executor_memory),
        ("--executor-cores", resources.executor_cores),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if spec.proxy_user:
        argv += ["--proxy-user", spec.proxy_user]
    if secret_conf_file is not None:
        # --load-spark-defaults: spark-defaults.conf would otherwise be skipped whenever a properties file is given.
        argv += ["--properties-file", str(secret_conf_file), "--load-spark-defaults"]
    for key, value in conf_entries(spec, event_log_dir=event_log_dir).items():
        argv += ["--conf", f"{key}={value}"]
    argv.append(spec.file)
    argv.extend(spec.args)
    return argv


# A Spark Connect *client* in the launcher's process (or the shell that started sparkplane) sets these; a
# driver that inherits them believes it is a Connect client too and refuses to start a classic SparkContext
# (CONNECT_URL_NOT_SET). Drivers, agents and cluster daemons are classic Spark: they never inherit them.
CONNECT_CLIENT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "SPARK_CONNECT_MODE")


# Spark's launcher puts these before a driver's extraJavaOptions (a user's -D still wins): spark-submit's
# JVM reads the first, the daemons of a local cluster (master, workers) the second.
JVM_OPTIONS_ENV = ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS")


def build_env(
    base: Mapping[str, str],
    *,
    spark_home: Path,
    python: str,
    extra_env: Mapping[str, str] | None,
    scratch_dir: Path | None = None,
) -> dict[str, str]:
    """The environment of spark-submit: the caller's without the control plane's secrets, pointed at our Spark
    and Python, then `extra_env` (set on purpose by whoever built the backend, so it is kept as it is).

    `scratch_dir`: where the run's temporary files go (TMPDIR for Python, java.io.tmpdir for the JVM, and with
    it spark.local.dir's default: block manager, `spark-<uuid>` folders, the Connect model cache). Spark
    removes them in shutdown hooks, which a driver killed with -9 never runs: in the run folder they go with
    it instead of piling up in /tmp.
    """
    env = {
        name: value
        for name, value in base.items()
        if not is_control_plane_secret(name) and name not in CONNECT_CLIENT_ENV
    }
    env["SPARK_HOME"] = str(spark_home)
    env["PYSPARK_PYTHON"] = python
    env["PYSPARK_DRIVER_PYTHON"] = python
    # driver.log is a file, so Python would buffer print() until exit; a running batch's log should be live.
    env["PYTHONUNBUFFERED"] = "1"
    if scratch_dir is not None:
        env["TMPDIR"] = str(scratch_dir)
        option = shlex.quote(f"-Djava.io.tmpdir={scratch_dir}")  # the launcher splits options as a shell does
        for name in JVM_OPTIONS_ENV:
            env[name] = f"{env.get(name, '')} {option}".strip()
    env.update(extra_env or {})
    return env


def is_control_plane_secret(name: str) -> bool:
    """Whether an environment variable belongs to the control plane and must not reach a user's Spark run.

    A run on the local backend inherits the environment of the worker that launched it. Whatever cloud identity
    the control plane holds there is its own, and a run gets only the credentials its user asked for (as conf).
    SPARKPLANE_* are the control plane's settings, its encryption key among them.
    """
    upper = name.upper()
    if upper.startswith("SPARKPLANE_") or upper in _CONTROL_PLANE_VARIABLES:
        return True
    return upper.startswith(_CLOUD_PREFIXES) and any(word in upper for word in _CREDENTIAL_WORDS)


def local_path(uri: str) -> Path | None:
    """The file on this machine that `uri` names (a path, a file: or local: URI); None for remote URIs."""
    parts = urlsplit(uri)
    if parts.scheme == "":
        return Path(uri)
    if parts.scheme in ("file", "local"):
        return Path(unquote(parts.path))
    return None
