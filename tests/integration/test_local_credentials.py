"""The local backends with real supervisors and a stand-in for spark-submit (and for the agent's Python) that
records what it was given: the secrets reach it through the file only, never its command line, its
environment or the supervisor's log, and the file is gone once the run ends. No Spark runs here."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkplane.backends.local import LocalBackend, LocalSessionBackend
from sparkplane.backends.local import supervisor as sup
from sparkplane.domain.specs import BatchSpec, SecretConf, SessionSpec

SECRET = "run/Secret+Key/EXAMPLE0123456789"
SECRET_CONF = SecretConf({"spark.hadoop.fs.s3a.access.key": "AKIARUNEXAMPLE", "spark.hadoop.fs.s3a.secret.key": SECRET})
CONTROL_PLANE_SECRET = "control-plane-aws-secret"
# Records its arguments, its environment and the properties file it was pointed at, from its run folder.
RECORDER = """#!/bin/sh
printf '%s\\n' "$@" > argv.txt
env > env.txt
while [ $# -gt 0 ]; do
  if [ "$1" = "--properties-file" ]; then
    cp "$2" seen.properties
    stat -c %a "$2" > seen.mode
  fi
  shift
done
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    path = tmp_path / "spark" / "bin" / "spark-submit"
    path.parent.mkdir(parents=True)
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def control_plane_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CONTROL_PLANE_SECRET)
    monkeypatch.setenv("SPARKPLANE_ENCRYPTION_KEY", "the-control-planes-key")
    yield


def finished(run_dir: Path) -> Path:
    assert sup.wait_until(lambda: (run_dir / sup.EXIT_FILE).exists(), 30.0), "the run did not finish"
    return run_dir


def assert_secret_stayed_in_the_file(run_dir: Path) -> None:
    argv = (run_dir / "argv.txt").read_text()
    assert SECRET not in argv and "AKIARUNEXAMPLE" not in argv
    assert f"{run_dir / sup.SECRET_CONF}\n" in argv
    env = (run_dir / "env.txt").read_text()
    assert SECRET not in env and CONTROL_PLANE_SECRET not in env and "the-control-planes-key" not in env
    assert SECRET not in (run_dir / sup.SUPERVISOR_LOG).read_text()  # it logs the command it starts
    assert f"spark.hadoop.fs.s3a.secret.key={SECRET}" in (run_dir / "seen.properties").read_text()
    assert (run_dir / "seen.mode").read_text().strip() == "600"
    assert not (run_dir / sup.SECRET_CONF).exists()  # removed when the run ended


def test_a_batch_reads_its_secrets_from_a_private_file(tmp_path: Path, recorder: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("print('hi')\n")
    backend = LocalBackend(tmp_path / "runs", spark_home=recorder.parent.parent)
    spec = BatchSpec(file=str(app), conf={"spark.x": "1"}, secret_conf=SECRET_CONF)
    handle = backend.submit_batch(spec, idempotency_key="b1")
    run_dir = finished(Path(handle.extra["run_dir"]))
    assert_secret_stayed_in_the_file(run_dir)
    argv = (run_dir / "argv.txt").read_text().splitlines()
    assert "--load-spark-defaults" in argv and "spark.x=1" in argv


def test_a_session_agent_reads_its_secrets_from_a_private_file(tmp_path: Path, recorder: Path) -> None:
    backend = LocalSessionBackend(tmp_path / "sessions", spark_home=tmp_path / "spark", python=str(recorder))
    try:
        handle = backend.start_session(SessionSpec(kind="pyspark", secret_conf=SECRET_CONF), idempotency_key="s1")
        run_dir = finished(Path(handle.extra["run_dir"]))
    finally:
        backend.close()
    assert handle.extra["pooled"] == "false"
    assert_secret_stayed_in_the_file(run_dir)
    for token in ("agent.token", "connect.token"):  # the launcher's own secrets sit beside it, as private
        assert stat.S_IMODE((run_dir / token).stat().st_mode) == 0o600
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == CONTROL_PLANE_SECRET  # the launcher's environment is untouched


def test_a_launch_that_could_not_start_leaves_no_secrets_behind(
    tmp_path: Path, recorder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from sparkplane.backends.base import TransientBackendError

    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError("fork failed")

    monkeypatch.setattr(subprocess, "Popen", no_processes)
    app = tmp_path / "app.py"
    app.write_text("print('hi')\n")
    backend = LocalBackend(tmp_path / "runs", spark_home=recorder.parent.parent)
    with pytest.raises(TransientBackendError, match="could not start the local supervisor"):
        backend.submit_batch(BatchSpec(file=str(app), secret_conf=SECRET_CONF), idempotency_key="b2")
    assert not (tmp_path / "runs" / "b2" / sup.SECRET_CONF).exists()
