"""Fault points fire once per data folder, armed by the environment or by a file a test rewrites; and the
local backend launches batches with the spark-submit the settings name (the fault suite's stand-in)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sparkplane.backends.base import PermanentBackendError
from sparkplane.backends.local import LocalBackend
from sparkplane.domain.specs import BatchSpec, Resources
from sparkplane.services import faults
from sparkplane.services.context import default_backends
from sparkplane.settings import load_settings


def _kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))
    return sent


def test_a_point_armed_in_the_environment_fires_once_per_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _kills(monkeypatch)
    monkeypatch.setenv("SPARKPLANE_FAULTS", "worker.before_launch,api.batch_created")
    faults.point("worker.after_launch", tmp_path)  # not armed
    faults.point("worker.before_launch", tmp_path)
    faults.point("worker.before_launch", tmp_path)  # the restarted role passes it again: no second kill
    assert sent == [signal.SIGKILL]
    assert (tmp_path / "faults" / "worker.before_launch").exists()


def test_a_point_armed_in_the_file_is_read_at_every_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _kills(monkeypatch)
    armed = tmp_path / "armed"
    monkeypatch.delenv("SPARKPLANE_FAULTS", raising=False)
    monkeypatch.setenv("SPARKPLANE_FAULTS_FILE", str(armed))
    faults.point("relay.after_publish", tmp_path)  # no file yet: nothing armed
    armed.write_text("relay.after_publish\n")
    faults.point("relay.after_publish", tmp_path)
    assert sent == [signal.SIGKILL]


def test_the_local_backend_uses_the_spark_submit_of_the_settings(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-spark-submit"
    settings = load_settings(data_dir=tmp_path, spark_submit=missing)
    backend = default_backends(settings).get("local")
    assert isinstance(backend, LocalBackend)
    app = tmp_path / "app.py"
    app.write_text("print(1)\n")
    spec = BatchSpec(file=str(app), resources=Resources())
    with pytest.raises(PermanentBackendError, match=str(missing)):
        backend.submit_batch(spec, idempotency_key="k1")
