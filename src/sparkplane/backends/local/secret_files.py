"""Secrets a local run needs, written to private files in its run folder rather than onto a command line.

Every local user can read any process's command line (`ps`, /proc/<pid>/cmdline), and the supervisor logs the
one it starts; a file of mode 0600 is readable by this user only. A user's secret Spark confs (their stored
credentials) travel as a Java properties file, which spark-submit reads with `--properties-file`: the agent's
PySpark hands the same flag to the spark-submit that starts its driver (agent/spark.py). The supervisor removes
the file when the run ends (supervisor.write_exit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sparkplane.backends.local.supervisor import SECRET_CONF

# java.util.Properties.store's escapes: these would otherwise end a key, start a comment or a new line.
_ESCAPES = {
    "\\": "\\\\",
    "\t": "\\t",
    "\n": "\\n",
    "\r": "\\r",
    "\f": "\\f",
    "=": "\\=",
    ":": "\\:",
    "#": "\\#",
    "!": "\\!",
}


def write_private(path: Path, text: str) -> None:
    # Created 0600 from the start (and fixed if an earlier, unlaunched attempt left the file): never readable
    # by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_secret_conf(run_dir: Path, conf: Mapping[str, str]) -> Path | None:
    """The run's secret confs as run_dir/spark-secrets.properties (0600); None, and no file, when it has none."""
    path = run_dir / SECRET_CONF
    if not conf:
        path.unlink(missing_ok=True)  # a relaunch in place must not pick up an earlier attempt's secrets
        return None
    write_private(path, properties_text(conf))
    return path


def properties_text(conf: Mapping[str, str]) -> str:
    """`conf` in the Java properties format, one `key=value` line each, escaped so each stays one entry."""
    return "".join(f"{_escape(key, key=True)}={_escape(value, key=False)}\n" for key, value in conf.items())


def _escape(text: str, *, key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " and (key or index == 0):
            out.append("\\ ")  # a space ends a key, and leading spaces of a value are dropped
        elif not " " <= char <= "~":
            # \\uXXXX keeps the file ASCII whatever reader decodes it; beyond the BMP, as a surrogate pair.
            data = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(data[i : i + 2], 'big'):04x}" for i in range(0, len(data), 2))
        else:
            out.append(char)
    return "".join(out)
