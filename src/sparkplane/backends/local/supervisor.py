"""The process that owns one local run, and the on-disk protocol it shares with `LocalBackend`.

    python -m sparkplane.backends.local.supervisor --run-dir D [--grace S] [--lock-fd N] [--detach] -- argv...

Why it exists: the launcher is a Celery worker that may be killed -9 at any moment. The run must outlive it,
and something must still record how the run ended. The supervisor starts `argv` in its own session, waits,
and writes `exit.json`. SIGTERM means cancel: the whole run gets SIGTERM, and SIGKILL after the grace period.

The run directory D:
    supervisor.lock    held (flock, exclusive) by the supervisor for its whole life
    supervisor.pid     the supervisor's pid, written before the application starts
    driver.pgid        the application's process group (and session) id
    driver.log         the application's stdout and stderr
    cancel-requested   written by cancel; holds the grace period in seconds
    spark-secrets.properties  the user's secret Spark confs (0600), when the run has any; removed before exit.json
    tmp/               the run's temporary files (TMPDIR and java.io.tmpdir, so Spark's scratch space too)
    exit.json          {"exit_code": int, "cancelled": bool, "finished_at": iso}, written atomically, last

Liveness: the kernel drops a flock when its holder dies, however it dies, so "supervisor.lock is held"
cannot be fooled by pid reuse. Observers probe with a *shared* non-blocking lock, so two observers probing
at the same moment never mistake each other for a supervisor.

Stdlib only: it must start fast and run without the rest of sparkplane's dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

SUPERVISOR_LOCK = "supervisor.lock"
SUPERVISOR_PID = "supervisor.pid"
SUPERVISOR_LOG = "supervisor.log"
DRIVER_PGID = "driver.pgid"
DRIVER_LOG = "driver.log"
CANCEL_REQUESTED = "cancel-requested"
EXIT_FILE = "exit.json"
SCRATCH_DIR = "tmp"
SECRET_CONF = "spark-secrets.properties"
EVENTS_DIR = "events"
LAUNCH_MARKER = "launching the application"

DEFAULT_GRACE = 10.0
# Observers hold the lock for microseconds; two seconds of retrying separates them from a live holder.
LOCK_RETRY_SECONDS = 2.0
# How long the rest of a finished run (PySpark's worker daemon and its workers) may take to exit on its own.
STRAGGLER_SECONDS = 5.0
_POLL_SECONDS = 0.2
# Exit code recorded when a cancel arrived before the application was started: "terminated by SIGTERM".
NOT_STARTED_EXIT = -int(signal.SIGTERM)

logger = logging.getLogger(__name__)


def acquire(fd: int, timeout: float) -> bool:
    """Take an exclusive flock on `fd`, retrying until `timeout`; True when held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def lock_is_held(path: Path) -> bool:
    """Whether a process holds an exclusive flock on `path`; a missing file is not held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_exit(run_dir: Path, *, exit_code: int, cancelled: bool) -> None:
    # Spark read its secret confs when it started; they must not outlive the run on disk (run folders stay).
    with contextlib.suppress(FileNotFoundError):
        (run_dir / SECRET_CONF).unlink()
    finished_at = dt.datetime.now(dt.UTC).isoformat()
    record = {"exit_code": exit_code, "cancelled": cancelled, "finished_at": finished_at}
    write_atomic(run_dir / EXIT_FILE, json.dumps(record))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def session_members(sid: int) -> list[int] | None:
    """Live processes in session or process group `sid`, from /proc; None where there is no /proc.

    Process groups alone miss part of a PySpark run: its worker daemon moves to its own group
    (pyspark/daemon.py: os.setpgid(0, 0)) but stays in the session that spark-submit leads.
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may hold spaces; after it come state ppid pgrp session.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) < 4 or fields[0] in (b"Z", b"X"):
            continue  # zombies are dead already; their parent reaps them
        if sid in (int(fields[2]), int(fields[3])):
            members.append(int(name))
    return members


def group_alive(pgid: int) -> bool:
    members = session_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to every process of the run led by `pgid`: its process group and the rest of its session."""
    if pgid <= 1 or pgid in (os.getpgrp(), os.getsid(0)):
        # A corrupted driver.pgid must never take down the caller's own group (a Celery worker).
        logger.warning("refusing to signal process group %d", pgid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in session_members(pgid) or []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def launched(run_dir: Path) -> bool:
    """Whether a supervisor was ever started for this run (so it must never be started again)."""
    if (run_dir / EXIT_FILE).exists() or (run_dir / SUPERVISOR_PID).exists():
        return True
    return lock_is_held(run_dir / SUPERVISOR_LOCK)


def live_supervisor_pid(run_dir: Path, wait: float) -> int | None:
    """The supervisor's pid, trusted only while it holds its lock, so the number cannot be a reused one."""
    lock, pid_file = run_dir / SUPERVISOR_LOCK, run_dir / SUPERVISOR_PID
    # A supervisor that holds the lock but has not written its pid yet is moments from doing so.
    wait_until(lambda: pid_file.exists() or not lock_is_held(lock), wait)
    pid = read_int(pid_file)
    return pid if pid is not None and lock_is_held(lock) else None


def live_run_pgid(run_dir: Path) -> int | None:
    """The run's process group id while some process of the run is alive, else None.

    Guards against pid reuse where /proc exists: a live member must also work in this run folder (the
    supervisor starts spark-submit there), or the number now belongs to someone else.
    """
    pgid = read_int(run_dir / DRIVER_PGID)
    if pgid is None:
        return None
    members = session_members(pgid)
    if members is None:
        return pgid if group_alive(pgid) else None
    expected = os.path.realpath(run_dir)
    for pid in members:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd") == expected:
                return pgid
    return None


class _Supervisor:
    def __init__(self, run_dir: Path, command: Sequence[str], grace: float) -> None:
        self.run_dir = run_dir
        self.command = list(command)
        self.grace = grace
        self.cancel_requested = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: the main loop does the work, so nothing races with Popen or the file writes.
        self.cancel_requested = True

    def run(self) -> int:
        write_atomic(self.run_dir / SUPERVISOR_PID, str(os.getpid()))
        if self.cancel_requested or (self.run_dir / CANCEL_REQUESTED).exists():
            logger.info("cancelled before the application started")
            write_exit(self.run_dir, exit_code=NOT_STARTED_EXIT, cancelled=True)
            return 0
        logger.info("%s: %s", LAUNCH_MARKER, shlex.join(self.command))
        with open(self.run_dir / DRIVER_LOG, "ab") as log:
            try:
                child = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.run_dir,  # Spark drops spark-warehouse/ and derby.log in its working folder
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                log.write(f"sparkplane: could not start {self.command[0]}: {exc}\n".encode())
                logger.error("could not start the application: %s", exc)
                write_exit(self.run_dir, exit_code=127, cancelled=False)
                return 0
        write_atomic(self.run_dir / DRIVER_PGID, str(child.pid))
        exit_code, signalled = self._wait(child)
        self._stop_stragglers(child.pid)
        logger.info("the application exited with code %d (cancelled: %s)", exit_code, signalled)
        write_exit(self.run_dir, exit_code=exit_code, cancelled=signalled)
        return 0

    def _wait(self, child: subprocess.Popen[bytes]) -> tuple[int, bool]:
        """Wait for the child; on cancel, SIGTERM the run and SIGKILL it after the grace period."""
        kill_at: float | None = None
        killed = False
        while True:
            try:
                return child.wait(timeout=_POLL_SECONDS), kill_at is not None
            except subprocess.TimeoutExpired:
                pass
            if self.cancel_requested and kill_at is None:
                grace = self._requested_grace()
                logger.info("cancel requested: SIGTERM to the run, SIGKILL in %.1fs", grace)
                signal_group(child.pid, signal.SIGTERM)
                kill_at = time.monotonic() + grace
            elif kill_at is not None and not killed and time.monotonic() >= kill_at:
                logger.info("grace period over: SIGKILL to the run")
                signal_group(child.pid, signal.SIGKILL)
                killed = True

    def _requested_grace(self) -> float:
        # cancel() writes its own grace period into cancel-requested; --grace covers a bare SIGTERM.
        try:
            return max(0.0, float((self.run_dir / CANCEL_REQUESTED).read_text().strip()))
        except (OSError, ValueError):
            return self.grace

    def _stop_stragglers(self, pgid: int) -> None:
        """exit.json promises that nothing of the run is left; give the rest a moment, then kill it."""
        if wait_until(lambda: not group_alive(pgid), STRAGGLER_SECONDS):
            return
        logger.warning("processes of the run outlived it; sending SIGKILL")
        signal_group(pgid, signal.SIGKILL)
        wait_until(lambda: not group_alive(pgid), STRAGGLER_SECONDS)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sparkplane.backends.local.supervisor")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("--lock-fd", type=int, help="inherited, locked fd of supervisor.lock")
    parser.add_argument("--detach", action="store_true", help="fork and let the parent exit at once")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command to run after --")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.detach and os.fork() != 0:
        # The launcher reaps this parent at once, so it keeps neither a zombie nor a Popen to watch;
        # the child is adopted by init. It keeps the inherited lock descriptor, hence the lock.
        os._exit(0)
    log_format = "%(asctime)s %(levelname)s supervisor[%(process)d] %(message)s"
    logging.basicConfig(level=logging.INFO, format=log_format)
    args.run_dir = args.run_dir.absolute()
    supervisor = _Supervisor(args.run_dir, args.command, args.grace)
    # Installed before supervisor.pid exists: whoever reads the pid may signal us, and must not kill us.
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    if args.lock_fd is not None:
        lock_fd: int = args.lock_fd  # locked by the launcher; flock again below is a no-op on the same file
    else:
        lock_fd = os.open(args.run_dir / SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    if not acquire(lock_fd, LOCK_RETRY_SECONDS):
        logger.error("another supervisor owns %s; not starting a second one", args.run_dir)
        return 3
    if (args.run_dir / SUPERVISOR_PID).exists() or (args.run_dir / EXIT_FILE).exists():
        # The launcher checks this under its key lock; a supervisor started by hand must not rerun a run.
        logger.error("%s was launched before; not launching it again", args.run_dir)
        return 3
    os.set_inheritable(lock_fd, False)  # the application must not keep the lock after we die
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
