"""From a `SessionSpec` to the agent's command line, and the secrets it reads at start.

Pure functions, unit-tested without a process. The agent is started directly with the driver's Python (not
through spark-submit): PySpark launches the driver JVM itself, so everything spark-submit would take as a flag
travels as a Spark conf (spark.driver.memory works this way too, because PySpark passes the confs to the
spark-submit that starts the JVM). That makes every conf here part of the JVM's command line, so the user's
secret confs are not among them: they travel in a 0600 properties file (secret_files.py), which the agent gives
that spark-submit with `--properties-file`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sparkplane.backends.local.command import effective_master
from sparkplane.backends.local.secret_files import write_private
from sparkplane.domain.specs import SessionSpec

AGENT_MODULE = "sparkplane.agent"
AGENT_TOKEN = "agent.token"
CONNECT_TOKEN = "connect.token"
AGENT_JSON = "agent.json"

_LIST_CONFS = (
    ("spark.jars", "jars"),
    ("spark.submit.pyFiles", "py_files"),
    ("spark.files", "files"),
    ("spark.archives", "archives"),
)


def session_confs(spec: SessionSpec) -> dict[str, str]:
    """The user's conf, then the spec's typed fields, which win (the batch side's rule, see command.py).

    A key the secret confs set is left out: a --conf would beat the properties file, and the credential the
    user asked for by name should win over a stray conf of the same key.
    """
    conf = {key: value for key, value in spec.conf.items() if key not in spec.secret_conf}
    for key, attribute in _LIST_CONFS:
        values: tuple[str, ...] = getattr(spec, attribute)
        if values:
            conf[key] = ",".join(values)
    resources = spec.resources
    for key, value in (
        ("spark.driver.memory", resources.driver_memory),
        ("spark.driver.cores", resources.driver_cores),
        ("spark.executor.memory", resources.executor_memory),
        ("spark.executor.cores", resources.executor_cores),
        ("spark.executor.instances", resources.num_executors),
    ):
        if value is not None:
            conf[key] = str(value)
    if spec.queue:
        conf["spark.yarn.queue"] = spec.queue
    return conf


def agent_argv(
    *,
    python: str,
    run_dir: Path,
    master: str,
    name: str,
    orphan_after: float,
    conf: dict[str, str],
    claimed_by: str | None,
    driver_cores: int | None = None,
    secret_conf_file: Path | None = None,
) -> list[str]:
    argv = [python, "-m", AGENT_MODULE, "--run-dir", str(run_dir)]
    argv += ["--master", effective_master(master, driver_cores), "--name", name, "--orphan-after", str(orphan_after)]
    if claimed_by is not None:
        argv += ["--claimed-by", claimed_by]
    if secret_conf_file is not None:
        argv += ["--properties-file", str(secret_conf_file)]  # its path only: the values stay in the file
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


def write_secrets(run_dir: Path) -> None:
    """Fresh tokens for the agent's API and for Spark Connect, readable by this user only."""
    for name in (AGENT_TOKEN, CONNECT_TOKEN):
        write_private(run_dir / name, secrets.token_urlsafe(32))


def read_secret(run_dir: Path, name: str) -> str | None:
    try:
        return (run_dir / name).read_text().strip() or None
    except OSError:
        return None
