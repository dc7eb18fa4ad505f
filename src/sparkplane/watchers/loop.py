"""A periodic reconcile loop that stops promptly on SIGTERM/SIGINT, and survives any one bad pass."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Loop:
    def __init__(self, name: str, tick: Callable[[], object], interval: float) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(self) -> None:
        log.info("%s watcher started (every %.1fs)", self.name, self.interval)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # the database may be restarting: log, wait, try again
                log.exception("%s watcher pass failed; retrying", self.name)
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        log.info("%s watcher stopped", self.name)
