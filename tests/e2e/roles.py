"""sparkplane's roles as real processes, for end-to-end tests: start, wait, stop, kill -9, restart, clean up.

    roles = Roles(data_dir, env)            # env: the SPARKPLANE_* settings every role shares
    api = roles.start("api")                # logs to data_dir/logs/api.1.log (api.2.log after api.start())
    wait_ready(f"http://127.0.0.1:{port}", process=api)
    worker = roles.start("worker", env={"SPARKPLANE_FAULTS": "worker.before_launch"})
    worker.kill()                           # SIGKILL, as a crash would
    worker.restart()
    roles.stop_all()                        # SIGTERM, then SIGKILL after the grace period
    stop_local_runs(data_dir / "runs")      # the Spark applications outlive the roles by design

Each role runs in its own session, so a signal aimed at the test runner's process group never reaches it and
`kill()` takes down the role with anything it started in its own group (the local backend's supervisors
start their own sessions, so a Spark run survives its worker, as it does in production). Every process
started here is remembered, and `stop_all()` ends them all: call it from a fixture's finalizer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import sqlalchemy as sa

# What `sparkplane <argv>` runs for each role; the names are the ones `sparkplane up` uses for its logs.
ROLE_ARGV: Mapping[str, tuple[str, ...]] = {
    "api": ("api",),
    "worker": ("worker",),
    "watch-batch": ("watch", "batch"),
    "watch-interactive": ("watch", "interactive"),
}
# A role gets this long after SIGTERM before SIGKILL: a Celery worker finishes its running tasks first.
STOP_GRACE = 15.0
# Variables of the test runner's environment that must not leak into a role unless a test sets them.
_SCRUBBED = ("SPARKPLANE_FAULTS", "SPARKPLANE_FAULTS_FILE", "PROMETHEUS_MULTIPROC_DIR")


def free_port() -> int:
    """A TCP port nobody listens on right now (the usual small race with whoever binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.25,
    message: str | Callable[[], str] = "condition",
) -> None:
    """Poll `predicate` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {text}")
        time.sleep(interval)


class RoleProcess:
    """One role's process; `restart()` starts the same command again with a fresh log file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_dir = log_dir
        self.starts = 0
        self.log_path = log_dir / f"{name}.0.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RoleProcess:
        if self.alive:
            raise RuntimeError(f"{self.name} is running already (pid {self.pid})")
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code (negative: the signal that ended it), or None if it still runs after `timeout`."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL to its process group after `grace` seconds; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            if self.wait_exit(grace) is None:
                self.kill()
        return self.process.wait()

    def kill(self) -> int | None:
        """SIGKILL to the role's process group, as a crash or the OOM killer would; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            # Only while the process is unreaped: its pid, which names its group, cannot be anyone else's yet.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def restart(self, *, env: Mapping[str, str | None] | None = None) -> RoleProcess:
        """Stop the role if it runs (gracefully), then start it again; `env` changes its environment."""
        self.stop()
        if env:
            self.env = _apply(self.env, env)
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.alive else f"exited with {self.returncode}"
        return f"{self.name} (pid {self.pid}, start #{self.starts}, {state}, log {self.log_path})"

    def __repr__(self) -> str:
        return f"<RoleProcess {self.describe()}>"


class Roles:
    """Starts sparkplane's roles with one shared environment and remembers every process it started."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str],
        *,
        log_dir: Path | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        """`env` is laid over the test runner's environment (`base_env`); logs go to `log_dir`."""
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir / "logs"
        inherited = {k: v for k, v in (os.environ if base_env is None else base_env).items() if k not in _SCRUBBED}
        self.env = {**inherited, "SPARKPLANE_DATA_DIR": str(self.data_dir), **env}
        self.processes: list[RoleProcess] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sparkplane", *args]

    def start(
        self,
        role: str,
        *,
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        args: Sequence[str] = (),
    ) -> RoleProcess:
        """Start `role` (a key of ROLE_ARGV); `name` tells two processes of one role apart in the logs."""
        argv = self.command(*ROLE_ARGV[role], *args)
        name = name or role
        taken = sum(1 for p in self.processes if p.name == name or p.name.startswith(f"{name}#"))
        if taken:
            name = f"{name}#{taken + 1}"  # a second worker gets its own logs: worker#2.1.log
        process = RoleProcess(name, argv, _apply(self.env, env or {}), self.log_dir)
        self.processes.append(process)
        return process.start()

    def run(self, *args: str, timeout: float = 120.0, env: Mapping[str, str | None] | None = None) -> str:
        """Run a one-shot command (`db upgrade`, `cleanup`) to the end; its output, or AssertionError."""
        result = subprocess.run(
            self.command(*args),
            env=_apply(self.env, env or {}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        output = (result.stdout + result.stderr).decode(errors="replace")
        if result.returncode != 0:
            raise AssertionError(f"`sparkplane {' '.join(args)}` exited with {result.returncode}:\n{output}")
        return output

    def alive(self) -> list[RoleProcess]:
        return [p for p in self.processes if p.alive]

    def kill_all(self, processes: Iterable[RoleProcess] | None = None) -> None:
        """SIGKILL every process at once (or the ones given), as a power cut of the control plane would."""
        targets = [p for p in (self.processes if processes is None else processes) if p.alive]
        for process in targets:  # all signals first, so no role notices another one's death before its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid or 0, signal.SIGKILL)
        for process in targets:
            process.kill()

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to every live process at once, SIGKILL to those still alive after `grace` seconds."""
        targets = self.alive()
        for process in targets:
            with contextlib.suppress(ProcessLookupError):
                process.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for process in targets:
            if process.wait_exit(max(0.1, deadline - time.monotonic())) is None:
                process.kill()

    def diagnostics(self, lines: int = 40) -> str:
        """Every process's state and the end of its log, for an assertion message."""
        parts = []
        for process in self.processes:
            parts.append(f"--- {process.describe()}\n{process.log_tail(lines)}")
        return "\n".join(parts)


def wait_ready(
    base_url: str,
    *,
    timeout: float = 60.0,
    process: RoleProcess | None = None,
    client: httpx.Client | None = None,
) -> None:
    """Wait until GET /readyz answers 200; fails at once, with its log, if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and not process.alive:
            raise AssertionError(f"{process.describe()} exited before it was ready:\n{process.log_tail()}")
        try:
            response = (client or httpx).get(f"{base_url}/readyz", timeout=2.0)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        time.sleep(0.2)
    tail = f"\n{process.log_tail()}" if process is not None else ""
    raise AssertionError(f"{base_url}/readyz was not ready after {timeout:.0f}s (last: {last}){tail}")


def start_up(data_dir: Path, env: Mapping[str, str], *, timeout: float = 200.0) -> tuple[RoleProcess, str]:
    """`sparkplane up` on a free port with `env` over this environment; (its process, its URL) once it is up.

    Stop it with `process.stop()`, then `stop_local_runs` for each of clusters/, sessions/ and runs/.
    """
    port = free_port()
    full = {k: v for k, v in {**os.environ, **env}.items() if k not in _SCRUBBED}
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)]
    process = RoleProcess("up", argv, full, data_dir / "test-logs").start()
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), timeout, message=lambda: "up\n" + process.log_tail())
    except BaseException:
        process.stop()
        raise
    return process, f"http://127.0.0.1:{port}"


def stop_local_runs(run_root: Path, *, spark_home: Path | None = None, grace: float = 5.0) -> list[str]:
    """Cancel every local-backend run still alive under `run_root`; returns their keys."""
    from sparkplane.backends.base import Handle
    from sparkplane.backends.local import LocalBackend

    home = spark_home or Path(os.environ.get("SPARK_HOME") or _pyspark_home())
    backend = LocalBackend(Path(run_root), spark_home=home)
    keys = sorted(backend.active_external_ids())
    for key in keys:
        backend.cancel(Handle("local", key), grace=dt.timedelta(seconds=grace))
    return keys


def _pyspark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _apply(env: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`env` with `changes` laid over it; a None value removes the variable."""
    out = dict(env)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def own_database(admin_url: str, prefix: str) -> Iterator[sa.URL]:
    """A PostgreSQL database of its own (`prefix_<random>`), dropped with its connections afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(admin_url).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
