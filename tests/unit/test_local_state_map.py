"""The local backend's state table, and how it reads run folders made by hand (no process, no Spark)."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkplane.backends.base import ComputeBackend, Handle
from sparkplane.backends.local import LocalBackend
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.batch import _STATE_MAP, map_state
from sparkplane.domain.states import Observed

DOCUMENTED = {
    "RUNNING": Observed.RUNNING,
    "ORPHANED_RUNNING": Observed.RUNNING,
    "SUCCEEDED": Observed.SUCCEEDED,
    "FAILED": Observed.FAILED,
    "CANCELLED": Observed.CANCELLED,
    "SUPERVISOR_LOST": Observed.FAILED,
}


@pytest.mark.parametrize(("native", "expected"), sorted(DOCUMENTED.items()))
def test_every_native_state_maps(native: str, expected: Observed) -> None:
    assert map_state(native) is expected


def test_the_table_holds_exactly_the_documented_states() -> None:
    assert dict(_STATE_MAP) == DOCUMENTED


@pytest.mark.parametrize("native", ["PENDING", "", "running"])
def test_unknown_state_is_unknown_with_a_warning(native: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert map_state(native) is Observed.UNKNOWN
    assert "unknown local run state" in caplog.text


# -- observe on hand-made run folders ----------------------------------------------------------------


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "runs", spark_home=tmp_path / "no-spark")


def make_run(backend: LocalBackend, tmp_path: Path, key: str = "run-1") -> tuple[Handle, Path]:
    run_dir = tmp_path / "runs" / key
    (run_dir / sup.EVENTS_DIR).mkdir(parents=True)
    return Handle("local", key, {"run_dir": str(run_dir)}), run_dir


def write_exit(run_dir: Path, exit_code: int, cancelled: bool = False) -> None:
    (run_dir / sup.EXIT_FILE).write_text(json.dumps({"exit_code": exit_code, "cancelled": cancelled}))


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A supervisor.lock held the way a live supervisor holds it."""
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    fd = os.open(run_dir / sup.SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield run_dir
    os.close(fd)


def test_conforms_to_the_backend_protocol(backend: LocalBackend) -> None:
    conforming: ComputeBackend = backend
    assert conforming.name == "local"


def test_missing_run_is_none(backend: LocalBackend) -> None:
    assert backend.observe(Handle("local", "never-submitted")) is None
    assert backend.observe(Handle("local", "../escape")) is None
    assert backend.fetch_logs(Handle("local", "never-submitted")) is None
    assert backend.active_external_ids() == set()


def test_success(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    write_exit(run_dir, 0)
    (run_dir / sup.EVENTS_DIR / "eventlog_v2_local-1732181234567").mkdir()
    obs = backend.observe(handle)
    assert obs is not None
    assert (obs.state, obs.native_state, obs.exit_code) == (Observed.SUCCEEDED, "SUCCEEDED", 0)
    assert obs.spark_app_id == "local-1732181234567"
    assert obs.ui_url is None


def test_failure_names_the_code_and_the_last_error_line(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    write_exit(run_dir, 1)
    (run_dir / sup.DRIVER_LOG).write_text(
        "Traceback (most recent call last):\n  File x\nRuntimeError: boom\nINFO ShutdownHookManager: done\n"
    )
    obs = backend.observe(handle)
    assert obs is not None
    assert (obs.state, obs.native_state) == (Observed.FAILED, "FAILED")
    assert obs.message == "spark-submit exited with code 1: RuntimeError: boom"


def test_cancelled(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    write_exit(run_dir, 143, cancelled=True)
    obs = backend.observe(handle)
    assert obs is not None
    assert (obs.state, obs.native_state, obs.exit_code) == (Observed.CANCELLED, "CANCELLED", 143)


def test_supervisor_gone_without_exit_is_lost(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    (run_dir / sup.SUPERVISOR_LOCK).touch()
    (run_dir / sup.SUPERVISOR_PID).write_text("999999")
    obs = backend.observe(handle)
    assert obs is not None
    assert (obs.state, obs.native_state) == (Observed.FAILED, "SUPERVISOR_LOST")
    assert obs.message == "the local supervisor died before the application finished"


def test_held_lock_is_running_with_ui_url(backend: LocalBackend, held_lock: Path) -> None:
    (held_lock / sup.DRIVER_LOG).write_text(
        "WARN Utils: Your hostname, vm, resolves to a loopback address: 127.0.0.1; using 10.1.2.3 instead\n"
        "INFO Utils: Successfully started service 'SparkUI' on port 4041.\n"
    )
    obs = backend.observe(Handle("local", "run-1", {"run_dir": str(held_lock)}))
    assert obs is not None
    assert (obs.state, obs.native_state) == (Observed.RUNNING, "RUNNING")
    assert obs.ui_url == "http://10.1.2.3:4041"
    assert backend.active_external_ids() == {"run-1"}


def test_ui_url_from_the_bound_line(backend: LocalBackend, held_lock: Path) -> None:
    line = "INFO SparkUI: Bound SparkUI to 0.0.0.0, and started at http://h:4040\n"
    (held_lock / sup.DRIVER_LOG).write_text(line)
    obs = backend.observe(Handle("local", "run-1"))
    assert obs is not None
    assert obs.ui_url == "http://h:4040"


@pytest.mark.parametrize(
    "name",
    [
        "local-1732181234567",
        "local-1732181234567.inprogress",
        "local-1732181234567.zstd",
        "local-1732181234567.zstd.inprogress",
        "local-1732181234567.lz4",
        "local-1732181234567.snappy.inprogress",
        "eventlog_v2_local-1732181234567",
    ],
)
def test_app_id_from_event_log_name(backend: LocalBackend, tmp_path: Path, name: str) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    write_exit(run_dir, 0)
    (run_dir / sup.EVENTS_DIR / name).touch()
    obs = backend.observe(handle)
    assert obs is not None
    assert obs.spark_app_id == "local-1732181234567"


def test_fetch_logs_all_and_tail(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    lines = [f"line {i} " + "x" * 100 for i in range(3000)]  # several read blocks
    (run_dir / sup.DRIVER_LOG).write_text("\n".join(lines) + "\n")
    assert backend.fetch_logs(handle) == "\n".join(lines) + "\n"
    assert backend.fetch_logs(handle, tail_lines=3) == "\n".join(lines[-3:]) + "\n"
    assert backend.fetch_logs(handle, tail_lines=5000) == "\n".join(lines) + "\n"
    assert backend.fetch_logs(handle, tail_lines=0) == ""


def test_fetch_logs_tail_without_final_newline(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    (run_dir / sup.DRIVER_LOG).write_text("a\nb\nc")
    assert backend.fetch_logs(handle, tail_lines=2) == "b\nc"


def test_cancel_of_a_finished_or_missing_run_is_quiet(backend: LocalBackend, tmp_path: Path) -> None:
    handle, run_dir = make_run(backend, tmp_path)
    write_exit(run_dir, 0)
    backend.cancel(handle, grace=dt.timedelta(seconds=1))
    backend.cancel(Handle("local", "never-submitted"), grace=dt.timedelta(seconds=1))
    assert json.loads((run_dir / sup.EXIT_FILE).read_text())["cancelled"] is False
