"""The warm pool: agents started ahead of demand, so a poolable session is idle in well under a second.

Layout: run_root/.pool/pool-<hex>/ is one pooled agent's run folder (the supervisor's layout, plus the agent's
agent.json and tokens). The leading dot keeps it out of the run-folder namespace (keys start with a letter
or digit).

Claiming is race-free across threads and processes without a shared lock: the claimer creates
`claimed-by` in the agent's folder with O_EXCL, and exactly one creator wins. The winner POSTs /claim, then
links run_root/<key> -> .pool/pool-<hex> (a relative symlink), so every run-folder function of the local
backend (observe, cancel, logs, exactly-once launch) works for the session through the link. A claimer that
dies between the two steps leaves a claimed, unlinked agent: `unlinked_claimed` reports it (after a minute,
so a claim in progress is never taken for one) so cleanup can stop it, and `refill` removes its folder once
it has ended; nobody touches it, so its orphan timer stops it anyway.

`refill` is explicit (the watcher calls it every pass, no hidden thread): under a pool-wide flock it removes
ended unclaimed folders, touches the ready agents (GET /health resets their orphan timer), and launches
agents until `size` are starting or ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sparkplane.backends.base import BackendError
from sparkplane.backends.local import supervisor as sup
from sparkplane.backends.local.agent_client import AgentClient
from sparkplane.backends.local.agent_command import AGENT_JSON

logger = logging.getLogger(__name__)

POOL_DIR = ".pool"
POOL_PREFIX = "pool-"
CLAIM_FILE = "claimed-by"
# A claim takes one POST to a local agent; one still unlinked after this long lost its claimer.
CLAIM_SECONDS = 60.0
DRAINED = "(drained)"  # the claim drain_pool makes, so no session can take an agent that is being stopped


@dataclass(frozen=True, slots=True)
class PoolStatus:
    starting: int
    ready: int


def is_alive(run_dir: Path) -> bool:
    """The run's process is there: no exit.json, and its supervisor (or the orphaned application) lives."""
    if (run_dir / sup.EXIT_FILE).exists():
        return False
    return sup.lock_is_held(run_dir / sup.SUPERVISOR_LOCK) or sup.live_run_pgid(run_dir) is not None


class WarmPool:
    def __init__(
        self,
        run_root: Path,
        *,
        size: int,
        client: AgentClient,
        launch: Callable[[Path], None],
        stop: Callable[[Path], None],
    ) -> None:
        self.size = size
        self._run_root = run_root
        self.root = run_root / POOL_DIR
        self._client = client
        self._launch = launch  # starts an unclaimed agent in the (new) folder
        self._stop = stop  # stops the agent of a folder and leaves no process

    # -- reading the folders ------------------------------------------------------------------------------

    def entries(self) -> list[Path]:
        try:
            found = [p for p in self.root.iterdir() if p.name.startswith(POOL_PREFIX) and p.is_dir()]
        except FileNotFoundError:
            return []
        return sorted(found, key=_age)  # oldest first: claim the agent that has waited longest

    def status(self) -> PoolStatus:
        starting = ready = 0
        for entry in self.entries():
            if (entry / CLAIM_FILE).exists() or not is_alive(entry):
                continue
            if (entry / AGENT_JSON).exists():
                ready += 1
            else:
                starting += 1
        return PoolStatus(starting, ready)

    def linked(self) -> set[Path]:
        """Pool folders some run_root/<key> link points to: they belong to a session."""
        targets = set()
        with contextlib.suppress(FileNotFoundError):
            for path in self._run_root.iterdir():
                if path.is_symlink():
                    targets.add(path.resolve())
        return targets

    def unlinked_claimed(self) -> list[Path]:
        """Claimed over a minute ago, alive, and owned by no session (its claimer died before linking it)."""
        linked = self.linked()
        deadline = time.time() - CLAIM_SECONDS
        return [
            entry
            for entry in self.entries()
            if _claimed_before(entry, deadline) and entry.resolve() not in linked and is_alive(entry)
        ]

    # -- claiming -------------------------------------------------------------------------------------------

    def claim(self, key: str, conf: Mapping[str, str], link: Path) -> bool:
        """Give a ready agent to session `key` and link it as `link`; False when none could be had."""
        for entry in self.entries():
            if (entry / CLAIM_FILE).exists() or not (entry / AGENT_JSON).exists() or not is_alive(entry):
                continue
            if not _mark(entry, key):
                continue  # another claimer won this one
            try:
                response = self._client.call(entry, "POST", "/claim", {"session": key, "conf": dict(conf)})
            except BackendError as exc:
                logger.warning("pooled agent %s could not be claimed (%s); stopping it", entry.name, exc)
                self._stop(entry)
                continue
            if response.status_code != 200:
                # The conf was refused (a static one): every pooled agent would refuse it; a cold start will do.
                logger.info("pooled agent %s refused session %s: %s", entry.name, key, response.text[:300])
                self._stop(entry)
                return False
            os.symlink(os.path.relpath(entry, link.parent), link)
            logger.info("session %s took pooled agent %s", key, entry.name)
            return True
        return False

    # -- keeping it full ------------------------------------------------------------------------------------

    def refill(self, *, launch: bool = True) -> PoolStatus:
        """Remove dead entries, touch the ready ones and, when `launch`, start agents up to the pool size."""
        with self._pool_lock() as held:
            if not held:
                return self.status()  # another process is refilling right now
            linked = self.linked()
            live = 0
            for entry in self.entries():
                claimed = (entry / CLAIM_FILE).exists()
                if not is_alive(entry):
                    if not claimed or entry.resolve() not in linked:
                        shutil.rmtree(entry, ignore_errors=True)
                    continue
                if claimed:
                    continue
                live += 1
                if (entry / AGENT_JSON).exists():
                    self._touch(entry)
            for _ in range(self.size - live if launch else 0):
                self._launch_one()
        return self.status()

    def drain(self) -> None:
        """Stop every unclaimed agent and remove its folder (at shutdown)."""
        with self._pool_lock(wait=True):
            for entry in self.entries():
                if _mark(entry, DRAINED):
                    self._stop(entry)
                    shutil.rmtree(entry, ignore_errors=True)

    def _launch_one(self) -> None:
        entry = self.root / f"{POOL_PREFIX}{secrets.token_hex(6)}"
        entry.mkdir(parents=True)
        try:
            self._launch(entry)
        except BackendError as exc:
            logger.warning("could not start a pooled agent: %s", exc)
            if not sup.launched(entry):
                shutil.rmtree(entry, ignore_errors=True)

    def _touch(self, entry: Path) -> None:
        try:
            self._client.call(entry, "GET", "/health")
        except BackendError as exc:
            logger.info("pooled agent %s did not answer its health check: %s", entry.name, exc)

    @contextlib.contextmanager
    def _pool_lock(self, *, wait: bool = False) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._run_root / f"{POOL_DIR}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if wait:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield True
            else:
                yield sup.acquire(fd, 0.0)
        finally:
            os.close(fd)


def _mark(entry: Path, owner: str) -> bool:
    try:
        fd = os.open(entry / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except (FileExistsError, FileNotFoundError):
        return False
    try:
        os.write(fd, owner.encode())
    finally:
        os.close(fd)
    return True


def _claimed_before(entry: Path, deadline: float) -> bool:
    try:
        return (entry / CLAIM_FILE).stat().st_mtime < deadline
    except OSError:
        return False


def _age(entry: Path) -> float:
    try:
        return (entry / AGENT_JSON).stat().st_mtime
    except OSError:
        return float("inf")
