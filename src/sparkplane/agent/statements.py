"""The statement queue: Livy's statement states, one statement at a time on the agent's main thread.

Why the main thread: cancelling must stop any Python code, including `time.sleep(600)` and a blocking call into
the JVM. Only a signal does that (an async exception waits for the next bytecode), and Python runs signal
handlers on the main thread only. So `run_forever` is the main thread's loop, the HTTP server has the other
threads, and cancel sends SIGINT to the main thread every 100 ms until the statement stops (Livy's
job-cancel trigger interval), after cancelling the statement's Spark job group.

The SIGINT handler is the only gate: it raises KeyboardInterrupt only while user code of a statement whose
cancel was requested is running (`Runner.in_user_code`), so a late signal never lands in the queue's own
bookkeeping. Every interrupt is therefore a cancel, and the statement ends `cancelled` without output.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from sparkplane.agent.runner import Result, Runner, simple_error
from sparkplane.domain.states import StatementState

logger = logging.getLogger(__name__)

CANCEL_INTERVAL = 0.1  # Livy's livy.rsc.job-cancel.trigger-interval
CANCEL_TIMEOUT = 30.0  # Livy's livy.rsc.job-cancel.timeout
RETAINED = 100  # Livy's livy.rsc.retained-statements: finished statements kept for GET
# A statement's progress is read from Spark at most this often, the first time this long after it starts. A
# read is a few dozen calls into the JVM (the group's jobs, each stage's fields) on the cores the query runs
# on: measured on 2 cores, 16 to 21 ms a read, and read 5 times a second (every 0.2 s) they made a 0.59 s
# query 0.65 s. A statement shorter than this never pays for one.
PROGRESS_FRESH_SECONDS = 1.0
_FINAL = frozenset({StatementState.AVAILABLE, StatementState.CANCELLED})


class SparkJobs(Protocol):
    """What the queue needs from Spark: a job group per statement, its progress, its cancel."""

    def begin(self, group: str) -> None: ...

    def end(self) -> None: ...

    def progress(self, group: str) -> float: ...

    def cancel(self, group: str) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Statement:
    id: int
    code: str
    kind: str
    state: StatementState = StatementState.WAITING
    output: dict[str, Any] | None = None
    progress: float = 0.0
    started: int = 0
    completed: int = 0
    cancel_requested: bool = False
    progress_read_at: float = float("-inf")  # monotonic time Spark was last asked (or the start: it was 0 then)

    @property
    def group(self) -> str:
        return f"stmt-{self.id}"

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "kind": self.kind,
            "state": str(self.state),
            "output": self.output,
            "progress": self.progress,
            "started": self.started,
            "completed": self.completed,
        }


class StatementQueue:
    def __init__(
        self,
        runner: Runner,
        jobs: SparkJobs | None = None,
        *,
        retained: int = RETAINED,
        cancel_timeout: float = CANCEL_TIMEOUT,
    ) -> None:
        self._runner = runner
        self._jobs = jobs
        self._retained = retained
        self._cancel_timeout = cancel_timeout
        self._statements: dict[int, Statement] = {}
        self._evicted: set[int] = set()  # ids seen before: a retry of an old submit must not run it again
        self._waiting: collections.deque[Statement] = collections.deque()
        self._finished: collections.deque[int] = collections.deque()
        self._current: Statement | None = None
        self._stopping = False
        self.exit_requested = False  # a statement raised SystemExit
        self._cond = threading.Condition()

    # -- called from the HTTP threads -------------------------------------------------------------------

    def submit(self, statement_id: int, code: str, kind: str) -> tuple[dict[str, Any], bool]:
        """Queue a statement; (its view, True) when new, (view, False) when this id was submitted before."""
        with self._cond:
            known = self._statements.get(statement_id)
            if known is not None:
                return known.view(), False
            if statement_id in self._evicted:
                return {"id": statement_id, "state": "evicted"}, False
            if self._stopping:
                raise RuntimeError("the session is stopping")
            statement = Statement(statement_id, code, kind)
            self._statements[statement_id] = statement
            self._waiting.append(statement)
            self._cond.notify_all()
            return statement.view(), True

    def wait(self, statement_id: int, timeout: float) -> None:
        """Block up to `timeout` seconds until the statement is final: a quick statement's submit can then
        answer with its output, sparing the caller a round of polling."""
        with self._cond:
            statement = self._statements.get(statement_id)
            if statement is not None:
                self._cond.wait_for(lambda: statement.state in _FINAL, timeout)

    def get(self, statement_id: int) -> dict[str, Any] | None:
        with self._cond:
            statement = self._statements.get(statement_id)
            if statement is None:
                return None
            view = statement.view()
        return self._with_progress(statement, view)

    def all(self) -> list[dict[str, Any]]:
        with self._cond:
            statements = sorted(self._statements.values(), key=lambda s: s.id)
            views = [statement.view() for statement in statements]
        return [self._with_progress(statement, view) for statement, view in zip(statements, views, strict=True)]

    def cancel(self, statement_id: int) -> dict[str, Any] | None:
        with self._cond:
            statement = self._statements.get(statement_id)
            if statement is None:
                return None
            if statement.state is StatementState.WAITING:
                self._waiting.remove(statement)
                self._finish(statement, StatementState.CANCELLED)
            elif statement.state is StatementState.RUNNING:
                statement.state = StatementState.CANCELLING
                statement.cancel_requested = True
                threading.Thread(target=self._interrupt, args=(statement,), name="cancel", daemon=True).start()
            return statement.view()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._current is not None or bool(self._waiting)

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._statements) + len(self._evicted)

    def request_stop(self) -> None:
        """End `run_forever` after the current statement; waiting ones are cancelled, a running one too."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            while self._waiting:
                self._finish(self._waiting.popleft(), StatementState.CANCELLED)
            self._cond.notify_all()
            current = self._current
        if current is not None:
            self.cancel(current.id)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- the main thread --------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run statements in submission order until `request_stop`; must be called on the main thread."""
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while True:
                statement = self._next()
                if statement is None:
                    return
                self._run(statement)
        finally:
            signal.signal(signal.SIGINT, previous)

    def _next(self) -> Statement | None:
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            statement = self._waiting.popleft()
            statement.state = StatementState.RUNNING
            statement.started = now_ms()
            statement.progress_read_at = time.monotonic()
            self._current = statement
            return statement

    def _run(self, statement: Statement) -> None:
        result = None
        try:
            if self._jobs is not None:
                self._jobs.begin(statement.group)
            result = self._runner.run(statement.code, statement.kind)
        except KeyboardInterrupt:
            pass  # a cancel that landed between the user code and the runner's own handler
        except Exception as exc:
            logger.exception("statement %d failed inside the agent", statement.id)
            # Livy's name for a failure of the interpreter rather than of the code (fake_shell.py).
            result = Result(simple_error(self._runner.execution_count, "InternalError", str(exc)))
        finally:
            self._runner.in_user_code = False
        if self._jobs is not None:
            with contextlib.suppress(Exception):
                self._jobs.end()
        with self._cond:
            self._current = None
            if statement.cancel_requested:
                self._finish(statement, StatementState.CANCELLED)
            else:
                statement.output = result.output if result is not None else None
                statement.progress = 1.0
                self._finish(statement, StatementState.AVAILABLE)
                if result is not None and result.exit_requested:
                    self.exit_requested = True
            self._cond.notify_all()
        if result is not None and result.exit_requested and not statement.cancel_requested:
            logger.info("statement %d raised SystemExit: the session ends", statement.id)
            self.request_stop()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        current = self._current
        if self._runner.in_user_code and current is not None and current.cancel_requested:
            raise KeyboardInterrupt
        logger.info("SIGINT outside a cancelled statement: ignored")

    def _interrupt(self, statement: Statement) -> None:
        if self._jobs is not None:
            try:
                self._jobs.cancel(statement.group)
            except Exception:
                logger.exception("could not cancel the Spark jobs of statement %d", statement.id)
        main = threading.main_thread().ident
        deadline = time.monotonic() + self._cancel_timeout
        while self._is_cancelling(statement):
            if time.monotonic() > deadline:
                logger.warning(
                    "statement %d did not stop within %.0fs of its cancel", statement.id, self._cancel_timeout
                )
                return
            if self._runner.in_user_code and main is not None:
                signal.pthread_kill(main, signal.SIGINT)
            time.sleep(CANCEL_INTERVAL)

    def _is_cancelling(self, statement: Statement) -> bool:
        with self._cond:
            return statement.state is StatementState.CANCELLING

    def _finish(self, statement: Statement, state: StatementState) -> None:
        """Record a final state (the caller holds the lock) and forget the oldest finished beyond `retained`."""
        statement.state = state
        statement.completed = now_ms()
        self._cond.notify_all()
        self._finished.append(statement.id)
        while len(self._finished) > self._retained:
            old = self._finished.popleft()
            self._statements.pop(old, None)
            self._evicted.add(old)

    def _with_progress(self, statement: Statement, view: dict[str, Any]) -> dict[str, Any]:
        """Ask Spark for a running statement's progress, outside the lock: it is a call into the JVM."""
        if view["state"] != StatementState.RUNNING or self._jobs is None:
            return view
        if time.monotonic() - statement.progress_read_at < PROGRESS_FRESH_SECONDS:
            return view  # read moments ago: a client polling hard must not keep the driver busy answering
        statement.progress_read_at = time.monotonic()
        try:
            progress = self._jobs.progress(statement.group)
        except Exception:
            logger.debug("no progress for statement %d", statement.id, exc_info=True)
            return view
        with self._cond:
            if statement.state is StatementState.RUNNING:
                statement.progress = max(statement.progress, progress)
                view["progress"] = statement.progress
        return view
