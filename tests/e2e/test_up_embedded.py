"""`sparkplane up` on its embedded defaults (SQLite, SQL broker file, local Spark), over real HTTP.

One `up` for the module; each test runs a real Spark application through it. This is the issue's
"done when": the Livy curl flow and `sparkplane batches submit --wait` both end in success with the log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.roles import RoleProcess, free_port, stop_local_runs, wait_until

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).parents[2] / "examples"
PASSWORD = "e2e-admin-password"
FINAL = {"success", "dead", "killed"}


@dataclass
class Up:
    url: str
    data_dir: Path
    process: RoleProcess
    http: httpx.Client

    def upload(self, name: str) -> str:
        with open(EXAMPLES / name, "rb") as f:
            response = self.http.post("/api/v1/files", files={"file": (name, f)})
        assert response.status_code == 201, response.text
        return str(response.json()["uri"])

    def wait_running(self, batch_id: int) -> None:
        wait_until(
            lambda: self.http.get(f"/livy/batches/{batch_id}/state").json()["state"] == "running",
            60,
            message=lambda: f"batch {batch_id} to run\n{self.process.log_tail()}",
        )

    def wait_final(self, batch_id: int, timeout: float = 120) -> dict[str, object]:
        wait_until(
            lambda: self.http.get(f"/livy/batches/{batch_id}/state").json()["state"] in FINAL,
            timeout,
            message=lambda: f"batch {batch_id} to finish\n{self.process.log_tail()}",
        )
        return dict(self.http.get(f"/livy/batches/{batch_id}").json())


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir = tmp_path_factory.mktemp("up")
    port = free_port()
    env = {**os.environ, "SPARKPLANE_ADMIN_PASSWORD": PASSWORD, "SPARKPLANE_SPARK_MASTER": "local[1]"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)]
    process = RoleProcess("up", argv, env, data_dir / "test-logs").start()
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30)
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), 90, message=lambda: "up\n" + process.log_tail())
        yield Up(url, data_dir, process, http)
    finally:
        http.close()
        process.stop()
        stop_local_runs(data_dir / "runs")


def test_livy_batch_runs_pi_to_success_with_its_log(up: Up) -> None:
    uri = up.upload("pi.py")
    response = up.http.post("/livy/batches", json={"file": uri, "args": ["2"], "name": "pi-livy"})
    assert response.status_code == 201
    batch = up.wait_final(response.json()["id"])
    assert batch["state"] == "success"
    assert str(batch["appId"]).startswith("local-")
    log = up.http.get(f"/livy/batches/{batch['id']}/log", params={"from": 0, "size": -1}).json()
    assert any(line.startswith("Pi is roughly 3.1") for line in log["log"])
    assert log["total"] == len(log["log"])


def test_a_failing_application_ends_dead_with_the_reason(up: Up) -> None:
    batch_id = up.http.post("/api/v1/batches", json={"file": up.upload("fail.py")}).json()["id"]
    up.wait_final(batch_id)
    batch = up.http.get(f"/api/v1/batches/{batch_id}").json()
    assert batch["state"] == "dead" and batch["failure_reason"] == "BACKEND_FAILED"
    assert "exited with code 1" in batch["message"]


def test_kill_stops_the_application_and_leaves_no_process(up: Up) -> None:
    batch_id = up.http.post("/livy/batches", json={"file": up.upload("sleep.py"), "args": ["300"]}).json()["id"]
    up.wait_running(batch_id)
    assert up.http.delete(f"/livy/batches/{batch_id}").json() == {"msg": "deleted"}
    assert up.wait_final(batch_id, timeout=60)["state"] == "killed"
    runs = up.data_dir / "runs"
    pgids = [int((run / "driver.pgid").read_text()) for run in runs.iterdir() if (run / "driver.pgid").exists()]
    assert pgids, "no driver process group was recorded"
    # The state says killed once the supervisor has signalled the group and its driver has exited; the group's
    # last members can take a moment more (1 run in 3 saw one alive at that instant), so: gone within 10 s.
    wait_until(lambda: not any(_group_alive(p) for p in pgids), 10, message=f"process groups {pgids} to end")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_submit_wait_follows_the_log_and_exits_zero(up: Up) -> None:
    token = up.http.post("/api/v1/tokens", json={"name": "e2e-cli"}).json()["token"]
    env = {
        **os.environ,
        "SPARKPLANE_URL": up.url,
        "SPARKPLANE_TOKEN": token,
        "SPARKPLANE_CONFIG_DIR": str(up.data_dir / "cli-config"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sparkplane", "batches", "submit", "--wait", str(EXAMPLES / "pi.py"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pi is roughly 3.1" in result.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "sparkplane", "batches", "submit", "--wait", "--no-logs", str(EXAMPLES / "fail.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr


def test_metrics_count_batches_and_launches_across_roles(up: Up) -> None:
    assert httpx.get(f"{up.url}/metrics").status_code == 401  # a scraper needs credentials, as everyone does
    text = httpx.get(f"{up.url}/metrics", auth=("admin", PASSWORD)).text
    assert re.search(r'^sparkplane_batches\{state="success"\} [1-9]', text, re.M)
    assert re.search(r"^sparkplane_batch_launch_seconds_count [1-9]", text, re.M)  # observed by the watcher
    assert re.search(r'^sparkplane_http_requests_total\{.*route="/livy/batches/\{batch_id\}/state"', text, re.M)
    assert PASSWORD not in text


def test_sigterm_stops_everything_and_leaves_no_process(up: Up) -> None:
    batch_id = up.http.post("/livy/batches", json={"file": up.upload("sleep.py"), "args": ["300"]}).json()["id"]
    up.wait_running(batch_id)
    children = subprocess.run(["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 4  # api, worker, two watchers
    os.kill(up.process.pid, signal.SIGTERM)  # type: ignore[arg-type]
    assert up.process.wait_exit(60) == 0
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    assert "stopped 1 running Spark application" in up.process.log()
    from sparkplane.backends.local import LocalBackend
    from tests.e2e.roles import _pyspark_home

    assert LocalBackend(up.data_dir / "runs", spark_home=Path(_pyspark_home())).active_external_ids() == set()


def test_first_start_generates_and_stores_the_admin_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SPARKPLANE_ADMIN_PASSWORD"}
    port = free_port()
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(tmp_path), "--port", str(port)]
    process = RoleProcess("up-fresh", argv, env, tmp_path / "test-logs").start()
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), 90, message=lambda: process.log_tail())
        match = re.search(r"first admin: user 'admin', password '([^']+)'", process.log())
        assert match, process.log_tail()
        stored = tmp_path / "initial-admin-password"
        assert stored.read_text().strip() == match.group(1)
        assert stored.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/users/me", auth=("admin", match.group(1))).status_code == 200
    finally:
        process.stop()
