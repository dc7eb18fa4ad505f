"""The fault suite's control plane: every role its own process, armed and revived one at a time.

    plane.arm("worker", "worker.after_launch")   # the running worker SIGKILLs itself at that point, once
    ... act through the API ...
    plane.wait_killed("worker", "worker.after_launch")
    plane.revive("worker")                       # the same command again, disarmed

Each role reads the points it has armed from a file of its own (SPARKPLANE_FAULTS_FILE), so arming needs no
restart. Batches run on the real local backend (supervisor, run folder, locks) with a stand-in for
spark-submit (STAND_IN) that records every launch in `launches.log` and behaves as a driver does: it runs
for the seconds its first argument names, exits 0, or dies of the signal a cancel sends. So "one Spark
application per request" is counted, not inferred.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sparkplane.services.context import Context
from tests.e2e.roles import RoleProcess, Roles, wait_ready, wait_until

PASSWORD = "faults-admin-password"
DEADLINE = 90.0  # seconds any one request may take to reach its final state after the revival
ROLES = ("api", "worker", "watch-batch", "watch-interactive")

STAND_IN = """#!{python}
# A stand-in for spark-submit: records its launch, then runs like a driver for argv[-1] seconds.
import os, sys, time
with open({launches!r}, "a") as out:
    out.write(f"{{os.path.basename(os.getcwd())}} {{os.getpid()}}\\n")
print("Running Spark version stand-in", flush=True)
time.sleep(float(sys.argv[-1]))
print("stand-in driver done", flush=True)
"""


def write_stand_in(folder: Path) -> tuple[Path, Path]:
    """The stand-in's executable and the file it records launches in."""
    folder.mkdir(parents=True, exist_ok=True)
    launches = folder / "launches.log"
    launches.touch()
    script = folder / "spark-submit"
    script.write_text(STAND_IN.format(python=sys.executable, launches=str(launches)))
    script.chmod(0o755)
    return script, launches


@dataclass
class Plane:
    data_dir: Path
    roles: Roles
    ctx: Context
    url: str
    launches: Path
    procs: dict[str, RoleProcess] = field(default_factory=dict)
    # Run folders of sessions a module keeps on purpose (one agent shared by cells): not strays while kept.
    kept: set[Path] = field(default_factory=set)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, auth=("admin", PASSWORD), timeout=30.0)

    # -- roles -------------------------------------------------------------------------------------------
    def armed_file(self, role: str) -> Path:
        return self.data_dir / "faults-armed" / role

    def start(self, role: str, **env: str) -> RoleProcess:
        self.armed_file(role).parent.mkdir(parents=True, exist_ok=True)
        env = {"SPARKPLANE_FAULTS_FILE": str(self.armed_file(role)), **env}
        args = ["--concurrency", "2"] if role == "worker" else []
        self.procs[role] = self.roles.start(role, env=env, args=args)
        return self.procs[role]

    def start_all(self) -> None:
        for role in ROLES:
            if role not in self.procs:
                self.start(role)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_ready(self.url, process=self.procs["api"], timeout=60.0)

    def arm(self, role: str, *points: str) -> None:
        """Arm `points` in the running `role`; each fires once (its marker is cleared first)."""
        for point in points:
            (self.data_dir / "faults" / point).unlink(missing_ok=True)
        self.armed_file(role).write_text("\n".join(points))

    def wait_killed(self, role: str, point: str, timeout: float = DEADLINE) -> None:
        process = self.procs[role]
        code = process.wait_exit(timeout)
        assert code == -9, f"{role} did not die at {point} (exit {code}):\n{self.diagnostics()}"
        assert (self.data_dir / "faults" / point).exists(), f"{role} died, but not at {point}"

    def revive(self, role: str) -> RoleProcess:
        """Start the dead role again, disarmed, as a supervisor (systemd, Kubernetes) would."""
        self.armed_file(role).write_text("")
        process = self.procs[role]
        assert not process.alive, f"{role} is still running"
        process.start()
        if role == "api":
            self.wait_ready()
        return process

    def all_alive(self) -> None:
        dead = [p.describe() for p in self.procs.values() if not p.alive]
        assert not dead, f"roles died unexpectedly: {dead}\n{self.diagnostics()}"

    # -- the API, tolerant of an API that dies mid-request ---------------------------------------------------
    def post(self, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """POST; None when the API died before it answered (the point of an api.* fault)."""
        try:
            return self.http.post(path, json=body)
        except httpx.TransportError:
            return None

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params or None)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def poll(self, read: Callable[[], str], done: Iterable[str], what: str, timeout: float = DEADLINE) -> str:
        """Poll `read()` until it is in `done`; an API that is restarting reads as '?'."""
        wanted, seen = set(done), []

        def reached() -> bool:
            try:
                current = read()
            except (httpx.HTTPError, AssertionError, KeyError):
                current = "?"
            if not seen or seen[-1] != current:
                seen.append(current)
            return current in wanted

        wait_until(reached, timeout, interval=0.3, message=lambda: f"{what} {sorted(wanted)}, seen {seen}")
        return seen[-1]

    def batch_named(self, name: str) -> dict[str, Any]:
        rows = [b for b in self.get_json("/livy/batches", size=1000)["sessions"] if b["name"] == name]
        assert len(rows) == 1, f"expected one batch named {name}, found {rows}"
        return dict(rows[0])

    def batch_state(self, batch_id: int) -> str:
        return str(self.get_json(f"/livy/batches/{batch_id}/state")["state"])

    def uid_of(self, batch_id: int) -> str:
        with self.ctx.db.uow() as uow:
            row = uow.batches.get(batch_id)
            assert row is not None
            return row.uid

    # -- what happened underneath -----------------------------------------------------------------------------
    def launch_counts(self) -> Counter[str]:
        """Run key -> how many times the stand-in spark-submit started for it."""
        return Counter(line.split()[0] for line in self.launches.read_text().splitlines() if line.strip())

    def stray_processes(self, keep: Iterable[int] = ()) -> list[str]:
        """Processes (other than the roles and `keep`) working in the data folder: supervisors, drivers, agents."""
        ours = {p.pid for p in self.roles.processes if p.alive} | set(keep) | {os.getpid()}
        root, found = str(self.data_dir), []
        kept = tuple(str(folder) for folder in self.kept)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ours:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(entry / "cwd")
                state = next(
                    (ln.split()[1] for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:")),
                    "?",
                )
            except OSError:
                continue
            if kept and (cwd.startswith(kept) or any(folder in cmdline for folder in kept)):
                continue
            if state != "Z" and (cwd.startswith(root) or root in cmdline):
                found.append(f"{entry.name} [{cwd}] {cmdline[:200]}")
        return found

    def assert_no_strays(self, keep: Iterable[int] = (), timeout: float = 15.0) -> None:
        keep = set(keep)
        try:
            wait_until(lambda: not self.stray_processes(keep), timeout, interval=0.3)
        except AssertionError:
            raise AssertionError(f"orphaned processes: {self.stray_processes(keep)}") from None

    def diagnostics(self) -> str:
        return f"launches: {dict(self.launch_counts())}\n{self.roles.diagnostics(25)}"

    def close(self) -> None:
        self.http.close()
