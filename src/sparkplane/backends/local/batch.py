"""`LocalBackend`: batches as spark-submit processes on this machine, launched exactly once across crashes.

Each run lives in run_root/<idempotency key>/ (layout in supervisor.py) and is owned by a detached supervisor
process, so it survives the Celery worker that launched it. How a launch stays unique:

1. submit_batch holds run_root/<key>.lock (flock: a launcher killed -9 releases it) while it decides, and
   launches only when the run folder shows no earlier launch: no exit.json, no supervisor.pid, and
   supervisor.lock free.
2. The launcher locks supervisor.lock itself *before* spawning and hands the locked descriptor down to the
   supervisor, so the lock is held without a gap: a launcher killed right after the spawn leaves a held lock,
   and one killed right before it leaves a free lock and no process.
3. The supervisor writes supervisor.pid before it starts spark-submit. No pid proves nothing ran, so a retry
   may launch; a pid without a live supervisor means the run was lost: it is reported, never started again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, ClassVar

from sparkplane.backends.base import (
    Capability,
    Handle,
    Observation,
    PermanentBackendError,
    TransientBackendError,
)
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.command import build_argv, build_env, local_path
from sparkplane.backends.local.secret_files import write_secret_conf
from sparkplane.domain.specs import BatchSpec
from sparkplane.domain.states import Observed

logger = logging.getLogger(__name__)

_STATE_MAP: Mapping[str, Observed] = {
    "RUNNING": Observed.RUNNING,
    # The supervisor died but the application did not: it still runs, and cancel stops it.
    "ORPHANED_RUNNING": Observed.RUNNING,
    "SUCCEEDED": Observed.SUCCEEDED,
    "FAILED": Observed.FAILED,
    "CANCELLED": Observed.CANCELLED,
    # The supervisor died and took the application with it (or never started it): nobody recorded an exit.
    "SUPERVISOR_LOST": Observed.FAILED,
}

# A key names a folder and a lock file, so it must be a plain file name; ".lock" is reserved for the locks.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# A second launcher waits while the first decides and spawns (well under a second); 30 s rides out a loaded
# machine, and beyond that the task is better retried than holding a worker.
_KEY_LOCK_SECONDS = 30.0
_SUPERVISOR_MODULE = "sparkplane.backends.local.supervisor"
# Interpreter start-up of the supervisor; generous because two cores may be busy with JVMs.
_START_SECONDS = 10.0
# What cancel allows the supervisor beyond the grace period to kill the run and write exit.json.
_CANCEL_SLACK_SECONDS = 5.0
_HEAD_BYTES = 256 * 1024  # the Spark UI line comes in the first seconds of a log
_TAIL_BYTES = 64 * 1024
_UI_BOUND = re.compile(r"Bound SparkUI to .*, and started at (http://\S+)")
_UI_STARTED = re.compile(r"started at (http://\S+)")
# Spark 4.1 no longer logs the URL while starting, only the port and, when the host name is loopback, the
# address it advertises instead (measured: "Successfully started service 'SparkUI' on port 4040.").
_UI_PORT = re.compile(r"Successfully started service 'SparkUI' on port (\d+)")
_ADVERTISED_HOST = re.compile(r"resolves to a loopback address: \S+; using (\S+) instead")
_ERROR_LINE = re.compile(r"(?:Error|Exception)\b|\bERROR\b|Traceback")
_MESSAGES: Mapping[str, str] = {
    "SUPERVISOR_LOST": "the local supervisor died before the application finished",
    "ORPHANED_RUNNING": "the local supervisor died; the application still runs until it is cancelled",
    "CANCELLED": "cancelled",
}
# Spark names an event log <appId>[.<codec>][.inprogress], or eventlog_v2_<appId> when rolling.
_CODEC_SUFFIXES = (".zstd", ".lz4", ".lzf", ".snappy")


def map_state(native_state: str) -> Observed:
    """Our vocabulary for a local run's state; an unknown string is UNKNOWN (logged), never an exception."""
    observed = _STATE_MAP.get(native_state)
    if observed is None:
        logger.warning("unknown local run state %r; reporting it as UNKNOWN", native_state)
        return Observed.UNKNOWN
    return observed


class LocalBackend:
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capability] = Capability.BATCH | Capability.LOGS

    def __init__(
        self,
        run_root: Path,
        *,
        spark_home: Path,
        master: str = "local[*]",
        python: str = sys.executable,
        extra_env: Mapping[str, str] | None = None,
        spark_submit: Path | None = None,
    ) -> None:
        """`spark_submit` replaces spark_home/bin/spark-submit (a site's wrapper, or a test's stand-in)."""
        # Absolute: the supervisor and spark-submit run inside the run folder, where a relative path breaks.
        self._run_root = Path(run_root).absolute()
        self._spark_home = Path(spark_home)
        self._master = master
        self._python = python
        self._extra_env = dict(extra_env or {})
        self._spark_submit = Path(spark_submit or self._spark_home / "bin" / "spark-submit")

    @property
    def run_root(self) -> Path:
        return self._run_root

    # -- submit ------------------------------------------------------------------------------------

    def submit_batch(self, spec: BatchSpec, *, idempotency_key: str) -> Handle:
        key = idempotency_key
        if not _KEY.match(key) or key.endswith(".lock"):
            raise PermanentBackendError(f"idempotency key '{key}' cannot name a run folder")
        run_dir = self._run_root / key
        handle = Handle(self.name, key, {"run_dir": str(run_dir)})
        self._run_root.mkdir(parents=True, exist_ok=True)
        with self._key_lock(key):
            if sup.launched(run_dir):
                logger.info("local run %s was launched before; not launching it again", key)
                return handle
            spark_submit = self._spark_submit
            if not os.access(spark_submit, os.X_OK):
                raise PermanentBackendError(f"spark-submit is missing or not executable: {spark_submit}")
            spec = _with_checked_file(spec)
            (run_dir / sup.EVENTS_DIR).mkdir(parents=True, exist_ok=True)
            argv = build_argv(
                spec,
                spark_submit=str(spark_submit),
                master=spec.master or self._master,
                default_name=key,
                event_log_dir=(run_dir / sup.EVENTS_DIR).as_uri(),
                secret_conf_file=write_secret_conf(run_dir, spec.secret_conf),
            )
            if self._start(run_dir, argv):
                logger.info("local run %s launched", key)
        return handle

    def _start(self, run_dir: Path, argv: list[str]) -> bool:
        """Spawn the supervisor and wait until it has taken the run; False when one was running already."""
        try:
            if not self._spawn(run_dir, argv):
                return False
            self._wait_for_start(run_dir)
            return True
        except (PermanentBackendError, TransientBackendError):
            # Both are raised only when nothing ran; the secret confs need not wait on disk for a retry to
            # write them again (run folders are kept, and the supervisor that would remove them never started).
            (run_dir / sup.SECRET_CONF).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        fd = os.open(self._run_root / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not sup.acquire(fd, _KEY_LOCK_SECONDS):
                raise TransientBackendError(f"another launcher is still submitting {key}", retry_after=5.0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _spawn(self, run_dir: Path, argv: list[str], extra_env: Mapping[str, str] | None = None) -> bool:
        """Start the detached supervisor; False when one turned out to be running already."""
        fd = os.open(run_dir / sup.SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not sup.acquire(fd, sup.LOCK_RETRY_SECONDS):
                return False  # a supervisor we did not see a moment ago (its launcher died mid-spawn)
            command = [sys.executable, "-m", _SUPERVISOR_MODULE, "--run-dir", str(run_dir)]
            command += ["--lock-fd", str(fd), "--detach", "--", *argv]
            # Built from the launcher's environment at each spawn, so later changes to it still reach Spark.
            scratch = run_dir / sup.SCRATCH_DIR
            scratch.mkdir(exist_ok=True)
            env = build_env(
                os.environ,
                spark_home=self._spark_home,
                python=self._python,
                extra_env={**self._extra_env, **(extra_env or {})},
                scratch_dir=scratch,
            )
            with open(run_dir / sup.SUPERVISOR_LOG, "ab") as log:
                try:
                    proc = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=run_dir,
                        env=env,
                        start_new_session=True,  # no signal aimed at the launcher's group reaches the run
                        close_fds=True,
                        pass_fds=(fd,),
                    )
                except OSError as exc:
                    raise TransientBackendError(f"could not start the local supervisor: {exc}") from exc
        finally:
            os.close(fd)  # the supervisor's inherited copy keeps the lock
        try:
            # This first process only forks and exits; waiting for it leaves no zombie behind.
            code = proc.wait(timeout=_START_SECONDS)
        except subprocess.TimeoutExpired:
            # Stuck before its fork: nothing ran; after it: harmless. _wait_for_start tells which.
            proc.kill()
            proc.wait()
            return True
        if code > 0:
            output = _tail_text(run_dir / sup.SUPERVISOR_LOG, 5)
            raise PermanentBackendError(f"the local supervisor could not start (exit {code}): {output}")
        return True

    def _wait_for_start(self, run_dir: Path) -> None:
        lock = run_dir / sup.SUPERVISOR_LOCK
        pid_or_exit = (run_dir / sup.SUPERVISOR_PID, run_dir / sup.EXIT_FILE)

        def settled() -> bool:
            return any(path.exists() for path in pid_or_exit) or not sup.lock_is_held(lock)

        sup.wait_until(settled, _START_SECONDS, interval=0.05)
        if any(path.exists() for path in pid_or_exit):
            return
        if not sup.lock_is_held(lock):
            # No supervisor.pid, so nothing ran: a retry may launch again safely.
            log = run_dir / sup.SUPERVISOR_LOG
            raise TransientBackendError(f"the local supervisor died on start; see {log}")
        logger.warning("the supervisor of %s is slow to start; it holds its lock and goes on alone", run_dir)

    # -- observe -----------------------------------------------------------------------------------

    def observe(self, handle: Handle) -> Observation | None:
        run_dir = self._run_dir(handle)
        if run_dir is None or not run_dir.is_dir():
            return None
        native, exit_code = _native_state(run_dir)
        state = map_state(native)
        alive = native in ("RUNNING", "ORPHANED_RUNNING")
        return Observation(
            state=state,
            native_state=native,
            message=_message(run_dir, native, exit_code),
            spark_app_id=_spark_app_id(run_dir),
            ui_url=_ui_url(run_dir) if alive else None,  # the UI dies with the driver
            exit_code=exit_code,
        )

    # -- cancel ------------------------------------------------------------------------------------

    def cancel(self, handle: Handle, *, grace: dt.timedelta) -> None:
        run_dir = self._run_dir(handle)
        if run_dir is None or not run_dir.is_dir() or (run_dir / sup.EXIT_FILE).exists():
            return
        seconds = max(0.0, grace.total_seconds())
        # Read by a supervisor that has not started the application yet, and for the grace period it uses.
        sup.write_atomic(run_dir / sup.CANCEL_REQUESTED, str(seconds))
        if sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK):
            pid = sup.live_supervisor_pid(run_dir, _START_SECONDS)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            exit_file, lock = run_dir / sup.EXIT_FILE, run_dir / sup.SUPERVISOR_LOCK
            # Stop waiting early if the supervisor dies without writing exit.json: nobody else will.
            deadline = seconds + _CANCEL_SLACK_SECONDS
            sup.wait_until(lambda: exit_file.exists() or not sup.lock_is_held(lock), deadline)
            if exit_file.exists():
                return
            logger.warning("the supervisor of %s did not stop the run in time; killing it", run_dir)
            exit_code = -signal.SIGKILL
        else:
            orphan = sup.live_run_pgid(run_dir)
            if orphan is None:
                return  # finished, or lost with nothing left to stop
            logger.info("stopping the orphaned run in %s (process group %d)", run_dir, orphan)
            sup.signal_group(orphan, signal.SIGTERM)
            graceful = sup.wait_until(lambda: not sup.group_alive(orphan), seconds)
            exit_code = -signal.SIGTERM if graceful else -signal.SIGKILL
        _force_stop(run_dir, exit_code)

    # -- logs and housekeeping ---------------------------------------------------------------------

    def fetch_logs(self, handle: Handle, *, tail_lines: int | None = None) -> str | None:
        run_dir = self._run_dir(handle)
        if run_dir is None:
            return None
        try:
            with open(run_dir / sup.DRIVER_LOG, "rb") as log:
                data = log.read() if tail_lines is None else _tail(log, tail_lines)
        except FileNotFoundError:
            return None
        return data.decode("utf-8", errors="replace")

    def active_external_ids(self) -> set[str]:
        try:
            run_dirs = [path for path in self._run_root.iterdir() if path.is_dir() and _KEY.match(path.name)]
        except FileNotFoundError:
            return set()
        # exit.json is written only once the whole run is gone; the supervisor may hold its lock a few
        # milliseconds longer while it exits, which must not count as a live run.
        return {
            run_dir.name
            for run_dir in run_dirs
            if not (run_dir / sup.EXIT_FILE).exists()
            and (sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK) or sup.live_run_pgid(run_dir) is not None)
        }

    def close(self) -> None:
        """Nothing to release: runs belong to their supervisors, not to this object."""

    def _run_dir(self, handle: Handle) -> Path | None:
        if not _KEY.match(handle.external_id):
            return None
        stored = handle.extra.get("run_dir")
        return Path(stored) if stored else self._run_root / handle.external_id


# -- helpers on a run folder -----------------------------------------------------------------------


def _with_checked_file(spec: BatchSpec) -> BatchSpec:
    path = local_path(spec.file)
    if path is None:
        return spec  # remote: Spark fetches it and reports its own error
    if not path.exists():
        raise PermanentBackendError(f"the application file {spec.file} does not exist")
    if not path.is_absolute():
        # spark-submit runs in the run folder, so a relative path is pinned to where it was given.
        return replace(spec, file=str(path.resolve()))
    return spec


def _native_state(run_dir: Path) -> tuple[str, int | None]:
    record = sup.read_json(run_dir / sup.EXIT_FILE)
    if record is None:
        if sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK):
            return "RUNNING", None
        record = sup.read_json(run_dir / sup.EXIT_FILE)  # it may have finished between the two looks
    if record is None:
        return ("ORPHANED_RUNNING" if sup.live_run_pgid(run_dir) is not None else "SUPERVISOR_LOST"), None
    try:
        exit_code = int(record.get("exit_code", -1))
    except (TypeError, ValueError):
        exit_code = -1
    if record.get("cancelled"):
        return "CANCELLED", exit_code
    return ("SUCCEEDED" if exit_code == 0 else "FAILED"), exit_code


def _message(run_dir: Path, native: str, exit_code: int | None) -> str | None:
    if native != "FAILED":
        return _MESSAGES.get(native)
    message = f"spark-submit exited with code {exit_code}"
    error = _last_error_line(run_dir / sup.DRIVER_LOG)
    return f"{message}: {error}" if error else message


def _force_stop(run_dir: Path, exit_code: int) -> None:
    """SIGKILL whatever is left of the run and its supervisor, then record the cancel ourselves."""
    pgid = sup.live_run_pgid(run_dir)
    if pgid is not None:
        sup.signal_group(pgid, signal.SIGKILL)
    supervisor = sup.live_supervisor_pid(run_dir, _START_SECONDS)
    if supervisor is not None:
        with contextlib.suppress(ProcessLookupError):
            sup.signal_group(os.getpgid(supervisor), signal.SIGKILL)
            os.kill(supervisor, signal.SIGKILL)
    sup.wait_until(
        lambda: not sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK) and sup.live_run_pgid(run_dir) is None,
        _CANCEL_SLACK_SECONDS,
    )
    if not (run_dir / sup.EXIT_FILE).exists():
        sup.write_exit(run_dir, exit_code=exit_code, cancelled=True)


def _spark_app_id(run_dir: Path) -> str | None:
    try:
        names = sorted(os.listdir(run_dir / sup.EVENTS_DIR))
    except OSError:
        return None
    for name in names:
        if name.startswith("."):
            continue
        app_id = name.removeprefix("eventlog_v2_").removesuffix(".inprogress")
        for suffix in _CODEC_SUFFIXES:
            app_id = app_id.removesuffix(suffix)
        if app_id:
            return app_id
    return None


def _ui_url(run_dir: Path) -> str | None:
    try:
        with open(run_dir / sup.DRIVER_LOG, "rb") as log:
            head = log.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    match = _UI_BOUND.search(head) or _UI_STARTED.search(head)
    if match:
        return match.group(1)
    port = _UI_PORT.search(head)
    if port is None:
        return None
    # Spark advertises the address of this host name, or the replacement it names when that is loopback.
    host = _ADVERTISED_HOST.search(head)
    return f"http://{host.group(1) if host else socket.gethostname()}:{port.group(1)}"


def _last_error_line(path: Path) -> str | None:
    text = _tail_text(path, None)
    for line in reversed(text.splitlines()):
        if _ERROR_LINE.search(line):
            return line.strip()[:300]
    return None


def _tail_text(path: Path, lines: int | None) -> str:
    """The end of a file: its last `lines` lines, or its last _TAIL_BYTES bytes when `lines` is None."""
    try:
        with open(path, "rb") as file:
            if lines is not None:
                return _tail(file, lines).decode("utf-8", errors="replace").strip()
            file.seek(max(0, file.seek(0, os.SEEK_END) - _TAIL_BYTES))
            return file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _tail(file: BinaryIO, lines: int) -> bytes:
    """The last `lines` lines, read backwards in blocks so a large log costs only what is returned."""
    if lines <= 0:
        return b""
    position = file.seek(0, os.SEEK_END)
    chunks: list[bytes] = []
    newlines = 0
    # One newline more than asked guarantees the first returned line is whole.
    while position > 0 and newlines <= lines:
        size = min(_TAIL_BYTES, position)
        position -= size
        file.seek(position)
        chunk = file.read(size)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    data = b"".join(reversed(chunks))
    return b"".join(data.splitlines(keepends=True)[-lines:])
