"""LocalBackend against real processes.

Four tests start real spark-submit (Pi, a failing app, and two sleepers, one of them orphaned); the others use
a fake SPARK_HOME whose spark-submit only sleeps, which exercises the launch protocol without a JVM. No test
asserts on timings: each polls with short sleeps under an overall deadline. Every run is cancelled at
teardown, and teardown checks that the backend reports nothing alive.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sparkplane.backends.base import Handle, Observation, PermanentBackendError
from sparkplane.backends.local import LocalBackend
from sparkplane.backends.local import supervisor as sup
from sparkplane.domain.specs import BatchSpec
from sparkplane.domain.states import Observed

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 180.0  # a cold JVM takes ~10 s on two idle cores; a busy CI machine can be many times slower
GRACE = dt.timedelta(seconds=5)
TERMINAL = {Observed.SUCCEEDED, Observed.FAILED, Observed.CANCELLED}
Maker = Callable[..., LocalBackend]
SUPERVISOR = [sys.executable, "-m", "sparkplane.backends.local.supervisor"]


def _spark_home() -> Path:
    if "SPARK_HOME" in os.environ:
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).parent


@pytest.fixture
def make_backend(tmp_path: Path) -> Iterator[Maker]:
    """Builds backends on run roots under tmp_path; at teardown cancels every run and checks none is left."""
    made: list[LocalBackend] = []

    def make(spark_home: Path | None = None, name: str = "runs") -> LocalBackend:
        backend = LocalBackend(tmp_path / name, spark_home=spark_home or _spark_home(), master="local[1]")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        for run_dir in sorted(backend.run_root.glob("*/")):
            backend.cancel(Handle("local", run_dir.name, {"run_dir": str(run_dir)}), grace=GRACE)
        assert backend.active_external_ids() == set()


@pytest.fixture
def spark(make_backend: Maker) -> LocalBackend:
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.fail("Spark needs Java 17: scripts/bootstrap.sh installs it")
    return make_backend()


@pytest.fixture
def fake(make_backend: Maker, tmp_path: Path) -> LocalBackend:
    """A backend whose spark-submit is a shell script that sleeps: the protocol without a JVM."""
    bin_dir = tmp_path / "fake-spark" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "spark-submit"
    script.write_text('#!/bin/sh\necho "fake spark-submit $*"\nexec sleep 300\n')
    script.chmod(0o755)
    return make_backend(tmp_path / "fake-spark", name="fake-runs")


def spec(example: str, *args: str) -> BatchSpec:
    return BatchSpec(file=str(EXAMPLES / example), args=args)


def wait_for(backend: LocalBackend, handle: Handle, done: Callable[[Observation], bool]) -> Observation:
    deadline = time.monotonic() + DEADLINE
    while True:
        obs = backend.observe(handle)
        if obs is not None and done(obs):
            return obs
        if time.monotonic() > deadline:
            log = backend.fetch_logs(handle, tail_lines=30)
            pytest.fail(f"gave up waiting; last observation: {obs}; log:\n{log}")
        time.sleep(0.3)


def wait_for_log(backend: LocalBackend, handle: Handle, text: str) -> None:
    wait_for(backend, handle, lambda obs: text in (backend.fetch_logs(handle) or "") or obs.state in TERMINAL)
    assert text in (backend.fetch_logs(handle) or "")


def run_dir_of(handle: Handle) -> Path:
    return Path(handle.extra["run_dir"])


def launches(handle: Handle) -> int:
    log = run_dir_of(handle) / sup.SUPERVISOR_LOG
    return sum(sup.LAUNCH_MARKER in line for line in log.read_text().splitlines())


def assert_nothing_left(handle: Handle) -> None:
    """No process of the run is alive: its process group is gone, and so is the rest of its session."""
    pgid = sup.read_int(run_dir_of(handle) / sup.DRIVER_PGID)
    assert pgid is not None

    def group_gone() -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    assert sup.wait_until(group_gone, 30.0), f"process group {pgid} is still alive"
    assert sup.live_run_pgid(run_dir_of(handle)) is None
    lock = run_dir_of(handle) / sup.SUPERVISOR_LOCK
    # The supervisor writes exit.json as its last act and exits a moment later.
    assert sup.wait_until(lambda: not sup.lock_is_held(lock), 30.0), "the supervisor is still alive"


# -- with real Spark ----------------------------------------------------------------------------------


def test_pi_succeeds(spark: LocalBackend) -> None:
    handle = spark.submit_batch(spec("pi.py", "2"), idempotency_key="pi")
    assert handle == Handle("local", "pi", {"run_dir": str(spark.run_root / "pi")})
    obs = wait_for(spark, handle, lambda o: o.state in TERMINAL)
    assert (obs.state, obs.native_state, obs.exit_code) == (Observed.SUCCEEDED, "SUCCEEDED", 0), obs.message
    assert obs.spark_app_id is not None and obs.spark_app_id.startswith("local-")
    assert "Pi is roughly 3.1" in (spark.fetch_logs(handle) or "")
    assert len((spark.fetch_logs(handle, tail_lines=3) or "").splitlines()) == 3
    assert launches(handle) == 1
    assert_nothing_left(handle)


def test_failing_app_is_failed(spark: LocalBackend) -> None:
    handle = spark.submit_batch(spec("fail.py"), idempotency_key="fail")
    obs = wait_for(spark, handle, lambda o: o.state in TERMINAL)
    assert (obs.state, obs.native_state) == (Observed.FAILED, "FAILED")
    assert obs.exit_code not in (None, 0)
    assert obs.message is not None
    assert obs.message.startswith(f"spark-submit exited with code {obs.exit_code}")
    assert "fails on purpose" in obs.message


def test_concurrent_submits_launch_once_and_cancel_leaves_nothing(spark: LocalBackend) -> None:
    barrier = threading.Barrier(3)

    def submit() -> Handle:
        barrier.wait()
        return spark.submit_batch(spec("sleep.py", "300"), idempotency_key="sleeper")

    with ThreadPoolExecutor(3) as pool:
        handles = [future.result() for future in [pool.submit(submit) for _ in range(3)]]
    assert handles[0] == handles[1] == handles[2]
    handle = handles[0]
    wait_for_log(spark, handle, "sleeping for 300 seconds")
    obs = spark.observe(handle)
    assert obs is not None and obs.state is Observed.RUNNING and obs.native_state == "RUNNING"
    assert obs.ui_url is not None and obs.ui_url.startswith("http://")
    assert spark.active_external_ids() == {"sleeper"}

    spark.cancel(handle, grace=GRACE)
    obs = wait_for(spark, handle, lambda o: o.state in TERMINAL)
    assert (obs.state, obs.native_state) == (Observed.CANCELLED, "CANCELLED")
    assert_nothing_left(handle)
    spark.cancel(handle, grace=GRACE)  # idempotent
    assert spark.submit_batch(spec("sleep.py", "300"), idempotency_key="sleeper") == handle
    assert launches(handle) == 1
    assert spark.active_external_ids() == set()


KILLED_LAUNCHER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from sparkplane.backends.local.batch import LocalBackend
    from sparkplane.domain.specs import BatchSpec

    def killed(self, run_dir):  # the Celery worker dies right after it spawned the supervisor
        os.kill(os.getpid(), signal.SIGKILL)

    LocalBackend._wait_for_start = killed
    run_root, spark_home, file, key = sys.argv[1:]
    backend = LocalBackend(Path(run_root), spark_home=Path(spark_home), master="local[1]")
    backend.submit_batch(BatchSpec(file=file, args=("300",)), idempotency_key=key)
    """
)


def test_killed_launcher_is_not_relaunched_and_an_orphan_is_cancelled(spark: LocalBackend) -> None:
    sleep_py = str(EXAMPLES / "sleep.py")
    launcher = subprocess.run(
        [sys.executable, "-c", KILLED_LAUNCHER, str(spark.run_root), str(_spark_home()), sleep_py, "orphan"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launcher.returncode == -signal.SIGKILL, launcher.stderr
    handle = spark.submit_batch(spec("sleep.py", "300"), idempotency_key="orphan")  # the retry
    wait_for_log(spark, handle, "sleeping for 300 seconds")  # the supervisor has long logged its launch by then
    assert launches(handle) == 1

    supervisor_pid = sup.read_int(run_dir_of(handle) / sup.SUPERVISOR_PID)
    assert supervisor_pid is not None
    os.kill(supervisor_pid, signal.SIGKILL)
    obs = wait_for(spark, handle, lambda o: o.native_state != "RUNNING")
    assert (obs.state, obs.native_state) == (Observed.RUNNING, "ORPHANED_RUNNING")
    assert spark.active_external_ids() == {"orphan"}
    assert spark.submit_batch(spec("sleep.py", "300"), idempotency_key="orphan") == handle
    assert launches(handle) == 1

    spark.cancel(handle, grace=GRACE)
    obs = wait_for(spark, handle, lambda o: o.state in TERMINAL)
    assert (obs.state, obs.native_state) == (Observed.CANCELLED, "CANCELLED")
    assert_nothing_left(handle)


# -- the launch protocol with a fake spark-submit -----------------------------------------------------


def test_many_threads_one_launch(fake: LocalBackend) -> None:
    barrier = threading.Barrier(8)

    def submit() -> Handle:
        barrier.wait()
        return fake.submit_batch(spec("sleep.py"), idempotency_key="crowd")

    with ThreadPoolExecutor(8) as pool:
        handles = [future.result() for future in [pool.submit(submit) for _ in range(8)]]
    handle = handles[0]
    assert all(other == handle for other in handles)
    assert launches(handle) == 1
    assert fake.observe(handle) == Observation(Observed.RUNNING, "RUNNING")
    fake.cancel(handle, grace=GRACE)
    assert_nothing_left(handle)


def test_supervisor_started_by_someone_else_is_not_relaunched(fake: LocalBackend) -> None:
    run_dir = fake.run_root / "manual"
    command = [*SUPERVISOR, "--run-dir", str(run_dir), "--detach"]
    run_dir.mkdir(parents=True)
    with open(run_dir / sup.SUPERVISOR_LOG, "ab") as log:
        subprocess.run([*command, "--", "sleep", "300"], stdout=log, stderr=log, timeout=60, check=True)
    assert sup.wait_until((run_dir / sup.DRIVER_PGID).exists, 30.0)
    handle = fake.submit_batch(spec("sleep.py"), idempotency_key="manual")
    assert launches(handle) == 1
    obs = fake.observe(handle)
    assert obs is not None and obs.native_state == "RUNNING"
    fake.cancel(handle, grace=GRACE)
    obs = fake.observe(handle)
    assert obs is not None and (obs.state, obs.native_state) == (Observed.CANCELLED, "CANCELLED")
    assert_nothing_left(handle)


def test_supervisor_killed_with_its_run_is_lost_and_never_relaunched(fake: LocalBackend) -> None:
    handle = fake.submit_batch(spec("sleep.py"), idempotency_key="lost")
    run_dir = run_dir_of(handle)
    assert sup.wait_until((run_dir / sup.DRIVER_PGID).exists, 30.0)
    pgid, supervisor_pid = sup.read_int(run_dir / sup.DRIVER_PGID), sup.read_int(run_dir / sup.SUPERVISOR_PID)
    assert pgid is not None and supervisor_pid is not None
    os.kill(supervisor_pid, signal.SIGKILL)
    os.killpg(pgid, signal.SIGKILL)
    obs = wait_for(fake, handle, lambda o: o.native_state == "SUPERVISOR_LOST")
    assert obs.state is Observed.FAILED
    assert obs.message == "the local supervisor died before the application finished"
    assert fake.submit_batch(spec("sleep.py"), idempotency_key="lost") == handle
    assert launches(handle) == 1
    fake.cancel(handle, grace=GRACE)  # nothing left to stop: quiet, and the run stays failed
    after = fake.observe(handle)
    assert after is not None and after.native_state == "SUPERVISOR_LOST"
    assert_nothing_left(handle)


def test_cancel_before_the_supervisor_starts_the_app(fake: LocalBackend) -> None:
    run_dir = fake.run_root / "early"
    run_dir.mkdir(parents=True)
    (run_dir / sup.CANCEL_REQUESTED).write_text("1")
    command = [*SUPERVISOR, "--run-dir", str(run_dir)]
    subprocess.run([*command, "--", "sleep", "300"], timeout=60, check=True)
    obs = fake.observe(Handle("local", "early"))
    assert obs is not None and (obs.state, obs.native_state) == (Observed.CANCELLED, "CANCELLED")
    assert not (run_dir / sup.DRIVER_LOG).exists()


def test_permanent_errors(fake: LocalBackend, make_backend: Maker, tmp_path: Path) -> None:
    with pytest.raises(PermanentBackendError, match="does not exist"):
        fake.submit_batch(BatchSpec(file=str(tmp_path / "missing.py")), idempotency_key="missing-file")
    with pytest.raises(PermanentBackendError, match="spark-submit"):
        no_spark = make_backend(tmp_path / "no-spark", name="other")
        no_spark.submit_batch(spec("pi.py"), idempotency_key="no-spark")
    with pytest.raises(PermanentBackendError, match="idempotency key"):
        fake.submit_batch(spec("pi.py"), idempotency_key="../escape")
    assert not (fake.run_root / "missing-file").exists()  # a fixed spec may still launch under the same key
