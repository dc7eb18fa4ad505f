"""The statement queue: Livy's states, order, idempotence, cancel (by signal on the main thread), SystemExit.

`run_forever` must run on the main thread (cancel is a SIGINT there), so each test drives the queue from a
helper thread and runs the loop itself on pytest's main thread; the helper always stops the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sparkplane.agent.runner import Runner
from sparkplane.agent.statements import PROGRESS_FRESH_SECONDS, StatementQueue
from sparkplane.domain.states import StatementState

DEADLINE = 20.0


class RecordingJobs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def begin(self, group: str) -> None:
        self.calls.append(("begin", group))

    def end(self) -> None:
        self.calls.append(("end", ""))

    def progress(self, group: str) -> float:
        self.calls.append(("progress", group))
        return 0.25

    def cancel(self, group: str) -> None:
        self.calls.append(("cancel", group))


@pytest.fixture
def jobs() -> RecordingJobs:
    return RecordingJobs()


@pytest.fixture
def queue(jobs: RecordingJobs) -> StatementQueue:
    return StatementQueue(Runner({}), jobs, cancel_timeout=5.0)


def drive(queue: StatementQueue, script: Callable[[], None]) -> None:
    """Run `script` on a helper thread while the queue runs on this (main) thread; re-raise its failure."""
    failure: list[BaseException] = []

    def helper() -> None:
        try:
            script()
        except BaseException as exc:  # noqa: B036 - handed back to the test
            failure.append(exc)
        finally:
            queue.request_stop()

    thread = threading.Thread(target=helper)
    thread.start()
    queue.run_forever()
    thread.join(DEADLINE)
    if failure:
        raise failure[0]


def wait_state(queue: StatementQueue, statement_id: int, *states: StatementState) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        view = queue.get(statement_id)
        if view is not None and view["state"] in states:
            return view
        assert time.monotonic() < deadline, f"statement {statement_id} stuck: {view}"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _main_thread_only() -> Iterator[None]:
    assert threading.current_thread() is threading.main_thread()
    yield


def test_statements_run_in_order_one_at_a_time(queue: StatementQueue, jobs: RecordingJobs) -> None:
    def script() -> None:
        view, created = queue.submit(0, "import time\ntime.sleep(0.2)\norder = [0]", "pyspark")
        assert created and view["state"] == "waiting"
        queue.submit(1, "order.append(1)\norder", "pyspark")
        assert queue.busy
        done = wait_state(queue, 1, StatementState.AVAILABLE)
        assert done["output"]["data"]["text/plain"] == "[0, 1]"
        assert done["progress"] == 1.0
        assert 0 < done["started"] <= done["completed"]
        first = queue.get(0)
        assert first is not None and first["completed"] <= done["started"]

    drive(queue, script)
    job_groups = [call for call in jobs.calls if call[0] != "progress"]
    assert job_groups == [("begin", "stmt-0"), ("end", ""), ("begin", "stmt-1"), ("end", "")]


def test_wait_returns_as_soon_as_a_quick_statement_is_final(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "1 + 1", "pyspark")
        started = time.monotonic()
        queue.wait(0, DEADLINE)
        assert time.monotonic() - started < DEADLINE / 2, "wait did not wake when the statement finished"
        done = queue.get(0)
        assert done is not None and done["state"] == "available" and done["output"]["data"]["text/plain"] == "2"

    drive(queue, script)


def test_wait_gives_up_after_its_timeout_on_a_long_statement(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "import time\ntime.sleep(1.5)", "pyspark")
        started = time.monotonic()
        queue.wait(0, 0.1)
        assert time.monotonic() - started < 1.0
        view = queue.get(0)
        assert view is not None and view["state"] in ("waiting", "running")
        queue.wait(7, 0.1)  # an unknown statement: nothing to wait for, no error

    drive(queue, script)


def test_the_same_id_twice_runs_once(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "n = 0", "pyspark")
        wait_state(queue, 0, StatementState.AVAILABLE)
        assert queue.submit(1, "n += 1", "pyspark")[1]
        again, created = queue.submit(1, "n += 100", "pyspark")
        assert not created and again["code"] == "n += 1"
        wait_state(queue, 1, StatementState.AVAILABLE)
        queue.submit(2, "n", "pyspark")
        assert wait_state(queue, 2, StatementState.AVAILABLE)["output"]["data"]["text/plain"] == "1"

    drive(queue, script)


def test_progress_of_a_running_statement_comes_from_spark_after_its_first_window(
    queue: StatementQueue, jobs: RecordingJobs
) -> None:
    def script() -> None:
        queue.submit(0, "import time\ntime.sleep(3)", "pyspark")
        assert wait_state(queue, 0, StatementState.RUNNING)["progress"] == 0.0
        assert not [call for call in jobs.calls if call[0] == "progress"], "Spark was asked at the start"
        deadline = time.monotonic() + PROGRESS_FRESH_SECONDS + 1.5
        while (view := queue.get(0)) is not None and view["progress"] != 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert view is not None and view["state"] == "running" and view["progress"] == 0.25
        queue.cancel(0)
        wait_state(queue, 0, StatementState.CANCELLED)

    drive(queue, script)


def test_hard_polling_asks_spark_for_progress_at_most_once_per_window(
    queue: StatementQueue, jobs: RecordingJobs
) -> None:
    def script() -> None:
        queue.submit(0, "import time\ntime.sleep(1.0)", "pyspark")
        wait_state(queue, 0, StatementState.RUNNING)
        started = time.monotonic()
        for _ in range(200):
            queue.get(0)
        window = time.monotonic() - started
        asked = sum(1 for call in jobs.calls if call[0] == "progress")
        assert asked <= 2 + window / PROGRESS_FRESH_SECONDS, f"Spark asked {asked} times in {window:.2f}s"

    drive(queue, script)


@pytest.mark.parametrize(
    "code",
    [
        "while True: pass",
        "import time\ntime.sleep(600)",
        "while True:\n    try:\n        pass\n    finally:\n        x = 1",
    ],
)
def test_a_running_statement_is_cancelled(queue: StatementQueue, jobs: RecordingJobs, code: str) -> None:
    def script() -> None:
        queue.submit(0, code, "pyspark")
        wait_state(queue, 0, StatementState.RUNNING)
        time.sleep(0.1)
        assert queue.cancel(0) is not None
        view = wait_state(queue, 0, StatementState.CANCELLED)
        assert view["output"] is None and view["completed"] > 0
        queue.submit(1, "'still works'", "pyspark")
        assert wait_state(queue, 1, StatementState.AVAILABLE)["output"]["data"]["text/plain"] == "'still works'"

    drive(queue, script)
    assert ("cancel", "stmt-0") in jobs.calls


def test_a_waiting_statement_is_cancelled_without_running(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "import time\ntime.sleep(0.3)", "pyspark")
        queue.submit(1, "ran = True", "pyspark")
        wait_state(queue, 0, StatementState.RUNNING)
        assert queue.cancel(1) is not None
        assert wait_state(queue, 1, StatementState.CANCELLED)["started"] == 0
        wait_state(queue, 0, StatementState.AVAILABLE)
        queue.submit(2, "'ran' in globals()", "pyspark")
        assert wait_state(queue, 2, StatementState.AVAILABLE)["output"]["data"]["text/plain"] == "False"

    drive(queue, script)


def test_cancel_of_finished_or_unknown_statements(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "1", "pyspark")
        wait_state(queue, 0, StatementState.AVAILABLE)
        view = queue.cancel(0)
        assert view is not None and view["state"] == "available"
        assert queue.cancel(99) is None

    drive(queue, script)


def test_a_user_keyboard_interrupt_is_an_error_not_a_cancel(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "raise KeyboardInterrupt", "pyspark")
        assert wait_state(queue, 0, StatementState.AVAILABLE)["output"]["ename"] == "KeyboardInterrupt"

    drive(queue, script)


def test_system_exit_ends_the_loop_after_the_statement(queue: StatementQueue) -> None:
    queue.submit(0, "print('bye')\nraise SystemExit(0)", "pyspark")
    queue.submit(1, "never = True", "pyspark")
    queue.run_forever()  # returns by itself
    assert queue.exit_requested and queue.stopping
    first, second = queue.get(0), queue.get(1)
    assert first is not None and first["state"] == "available" and first["output"]["ename"] == "SystemExit"
    assert second is not None and second["state"] == "cancelled"
    with pytest.raises(RuntimeError, match="stopping"):
        queue.submit(2, "1", "pyspark")


def test_stop_cancels_the_running_statement(queue: StatementQueue) -> None:
    def script() -> None:
        queue.submit(0, "while True: pass", "pyspark")
        wait_state(queue, 0, StatementState.RUNNING)

    drive(queue, script)
    assert queue.get(0) is not None and queue.get(0)["state"] == "cancelled"  # type: ignore[index]


def test_old_finished_statements_are_forgotten_but_never_rerun() -> None:
    queue = StatementQueue(Runner({}), retained=2)

    def script() -> None:
        for i in range(4):
            queue.submit(i, f"runs = globals().get('runs', 0) + 1\n{i}", "pyspark")
        wait_state(queue, 3, StatementState.AVAILABLE)
        assert queue.get(0) is None and queue.get(1) is None
        assert [s["id"] for s in queue.all()] == [2, 3]
        assert queue.submit(0, "runs += 10", "pyspark") == ({"id": 0, "state": "evicted"}, False)
        assert queue.count == 4
        queue.submit(4, "runs", "pyspark")
        assert wait_state(queue, 4, StatementState.AVAILABLE)["output"]["data"]["text/plain"] == "4"

    drive(queue, script)


def test_a_failure_of_the_agent_itself_is_an_internal_error_output() -> None:
    class BrokenJobs(RecordingJobs):
        def begin(self, group: str) -> None:
            raise ConnectionError("the JVM is gone")

    queue = StatementQueue(Runner({}), BrokenJobs())

    def script() -> None:
        queue.submit(0, "1", "pyspark")
        output = wait_state(queue, 0, StatementState.AVAILABLE)["output"]
        assert (output["status"], output["ename"], output["evalue"]) == ("error", "InternalError", "the JVM is gone")

    drive(queue, script)
