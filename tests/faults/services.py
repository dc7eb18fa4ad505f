"""Private PostgreSQL and RabbitMQ for the fault suite, and a TCP proxy to cut the database off with.

The machine's own PostgreSQL and RabbitMQ serve other test runs at the same time, so the tests that stop,
restart or cut a service run one of their own: a PostgreSQL initdb'd into a temporary folder (run as the
`postgres` user, which PostgreSQL insists on) and a RabbitMQ node with its own name, ports and files.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.e2e.roles import free_port, wait_until


def _as_user(user: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    command = ["runuser", "-u", user, "--", *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}: {result.stdout}{result.stderr}")
    return result.stdout


def _owned_folder(prefix: str, user: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    entry = pwd.getpwnam(user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


class PrivatePostgres:
    """`postgresql+psycopg://postgres@127.0.0.1:<port>/postgres`, trust authentication, no fsync."""

    def __init__(self) -> None:
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.folder = _owned_folder("sparkplane-faults-pg-", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        initdb = (str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        _as_user("postgres", *initdb)
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "postgres.log")
        _as_user("postgres", str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", *args)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def close(self) -> None:
        try:
            self.stop()
        except (AssertionError, subprocess.TimeoutExpired):  # a fast stop that hangs: do not leave it running
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of our own (no plugins), `amqp://guest:guest@127.0.0.1:<port>/`."""

    def __init__(self) -> None:
        self.folder = _owned_folder("sparkplane-faults-mq-", "rabbitmq")
        self.port = free_port()
        self.node = f"sparkplane-faults-{self.port}@localhost"
        plugins = self.folder / "enabled_plugins"
        plugins.write_text("[].\n")
        os.chmod(plugins, 0o644)
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),  # none: the defaults
            "RABBITMQ_PID_FILE": str(self.folder / "rabbitmq.pid"),
        }
        self.start()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _ctl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        argv = ["rabbitmqctl", "-q", "-n", self.node, *args]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False)

    def start(self) -> None:
        (self.folder / "rabbitmq.pid").unlink(missing_ok=True)
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, capture_output=True, timeout=60, check=False)
        # `wait` waits for the pid file, then for the node's boot (await_startup fails on a node not up yet).
        result = self._ctl("wait", str(self.folder / "rabbitmq.pid"), "--timeout", "120", timeout=150)
        assert result.returncode == 0, f"the private RabbitMQ did not start: {result.stdout}{result.stderr}"

    def stop(self) -> None:
        result = self._ctl("stop")
        assert result.returncode == 0, f"rabbitmqctl stop: {result.stdout}{result.stderr}"
        wait_until(lambda: not _listening(self.port), 60, message="the private RabbitMQ to stop")

    def close(self) -> None:
        pid_file = self.folder / "rabbitmq.pid"
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._ctl("stop", timeout=60)
        if pid and _alive(pid):  # `stop` failed or timed out: this node is ours alone, end its VM
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TcpProxy:
    """127.0.0.1:<port> forwarded to `target_port`; `cut()` refuses and drops every connection until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown wakes the accept() blocked in the other thread; close alone would not (Linux).
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open -= {src, dst}
            src.close()
