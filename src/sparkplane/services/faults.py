"""Fault points for the fault-injection tests: a named place where a role kills itself with SIGKILL.

`SPARKPLANE_FAULTS=worker.before_launch,...` arms points; each fires once per data folder (a marker file
records it), so the role restarted after the kill runs normally. Unarmed points cost one dict lookup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def point(name: str, data_dir: Path) -> None:
    armed = os.environ.get("SPARKPLANE_FAULTS")
    if not armed or name not in armed.split(","):
        return
    marker = data_dir / "faults" / name
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
