"""The user data of a node: bootstrap.sh with this node's values, each shell-quoted, filled in at its top.

The script itself is static and readable on its own; only the block of `NAME=value` lines between its
markers changes per node. That block holds no secret but the report token (see the script's header).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from importlib import resources

from sparkplane.backends.clusters import NodeRole

_PLACEHOLDER = "@SPARKPLANE_VALUES@"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_KEY = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_VERSION = re.compile(r"^[\w.+-]{1,64}$")
MAX_USER_DATA = 16 * 1024  # EC2's limit, before base64


@dataclass(frozen=True, slots=True)
class BootstrapValues:
    key: str
    role: NodeRole
    spark_home: str
    report_url: str
    report_token: str = field(repr=False)
    report_interval_seconds: int
    worker_cores: int
    worker_memory_mb: int
    master_url: str = ""
    spark_env: tuple[tuple[str, str], ...] = ()
    run_as: str = "spark"
    sparkplane_version: str = "unknown"


def template() -> str:
    return resources.files("sparkplane.backends.ec2").joinpath("bootstrap.sh").read_text(encoding="utf-8")


def render(values: BootstrapValues) -> str:
    """The bash user data for one node. ValueError for a value that cannot be placed in it safely."""
    if not _NODE_KEY.match(values.key):
        raise ValueError(f"node key {values.key!r} is not letters, digits and dashes")
    if values.role is NodeRole.WORKER and not values.master_url.startswith("spark://"):
        raise ValueError(f"a worker needs the master's spark:// URL, not {values.master_url!r}")
    env_lines = []
    for name, value in values.spark_env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"spark_env_vars name {name!r} is not an environment variable name")
        if "\x00" in value:
            raise ValueError(f"spark_env_vars value of {name} holds a NUL character")
        # Quoted twice: once for spark-env.sh (which Spark sources), once for this script's array.
        env_lines.append(shlex.quote(f"export {name}={shlex.quote(value)}"))
    assignments = {
        "SP_KEY": values.key,
        "SP_ROLE": values.role.value,
        "SP_SPARK_HOME": values.spark_home,
        "SP_RUN_AS": values.run_as,
        "SP_MASTER_URL": values.master_url,
        "SP_WORKER_CORES": str(values.worker_cores),
        "SP_WORKER_MEMORY_MB": str(values.worker_memory_mb),
        "SP_REPORT_URL": values.report_url,
        "SP_REPORT_TOKEN": values.report_token,
        "SP_REPORT_INTERVAL": str(values.report_interval_seconds),
    }
    version = values.sparkplane_version if _VERSION.match(values.sparkplane_version) else "unknown"
    lines = [f"# sparkplane {version}, node {values.key}"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in assignments.items()]
    lines.append("SP_SPARK_ENV=(" + " ".join(env_lines) + ")")
    script = template().replace(_PLACEHOLDER, "\n".join(lines), 1)
    if len(script.encode()) > MAX_USER_DATA:
        raise ValueError(
            f"the node's user data would be {len(script.encode())} bytes, over EC2's {MAX_USER_DATA}: "
            "make the cluster's spark_env_vars shorter"
        )
    return script
