"""Clusters: create -> RUNNING for 2 workers, and a waiting application -> a new worker under autoscaling.

    scripts/bench clusters [--runs 3]

Baselines, measured in the same run: the same master and two workers started by hand with Spark's own
classes (spark-class ...Master / ...Worker, as the pip package has no sbin scripts), timed until the master's
/json/ lists both workers ALIVE. For autoscaling, the figure is from the statement that leaves tasks waiting
to the master listing the added worker, against the by-hand start of one worker (the least it can take).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import Figure, free_port, median, report, sparkplane_up

PASSWORD = "bench-admin-password"
SPARK_CLASS = Path(os.environ.get("SPARK_HOME", "")) / "bin" / "spark-class"


def wait(predicate, timeout: float = 300, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(interval)


def master_json(ui_port: int) -> dict[str, object]:
    try:
        return dict(httpx.get(f"http://127.0.0.1:{ui_port}/json/", timeout=2).json())
    except (httpx.HTTPError, ValueError):
        return {}


def by_hand(workers: int, work: Path) -> tuple[float, float]:
    """Seconds from nothing until a hand-started master lists `workers` workers ALIVE, and from starting the
    workers (the master being up) until it lists the first of them."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    rpc, ui = free_port(), free_port()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                str(SPARK_CLASS),
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(rpc),
                "--webui-port",
                str(ui),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        wait(lambda: master_json(ui).get("status") == "ALIVE")
        workers_started = time.perf_counter()
        for n in range(workers):
            procs.append(
                subprocess.Popen(
                    [
                        str(SPARK_CLASS),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(free_port()),
                        "--webui-port",
                        str(free_port()),
                        "--cores",
                        "1",
                        "--memory",
                        "1024m",
                        "--work-dir",
                        str(work / f"w{n}"),
                        f"spark://127.0.0.1:{rpc}",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        def alive() -> int:
            return int(master_json(ui).get("aliveworkers") or 0)  # type: ignore[call-overload]

        wait(lambda: alive() >= 1)
        first = time.perf_counter() - workers_started
        wait(lambda: alive() >= workers)
        return time.perf_counter() - started, first
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def cluster_state(http: httpx.Client, cluster_id: int) -> str:
    return str(http.get(f"/api/v1/clusters/{cluster_id}").json()["state"])


def create_to_running(http: httpx.Client, body: dict[str, object]) -> tuple[int, float]:
    started = time.perf_counter()
    cluster_id = int(http.post("/api/v1/clusters", json=body).json()["cluster_id"])
    wait(lambda: cluster_state(http, cluster_id) in ("RUNNING", "ERROR"), interval=0.05)
    if cluster_state(http, cluster_id) != "RUNNING":
        raise RuntimeError(f"cluster {cluster_id} failed: {http.get(f'/api/v1/clusters/{cluster_id}').json()}")
    return cluster_id, time.perf_counter() - started


def terminate(http: httpx.Client, cluster_id: int) -> None:
    http.post(f"/api/v1/clusters/{cluster_id}/terminate")
    wait(lambda: cluster_state(http, cluster_id) == "TERMINATED")


def registered_workers(http: httpx.Client, cluster_id: int) -> int:
    nodes = http.get(f"/api/v1/clusters/{cluster_id}/nodes").json()
    return sum(1 for n in nodes if n["role"] == "worker" and n["registered"])


def waiting_to_new_worker(http: httpx.Client) -> float:
    """A 1-worker autoscaling cluster, a session whose job wants 6 cores: time until the master lists worker 2."""
    cluster_id, _ = create_to_running(
        http, {"cluster_name": "autoscale", "autoscale": {"min_workers": 1, "max_workers": 2}}
    )
    session = http.post(
        "/api/v1/sessions",
        json={"kind": "pyspark", "cluster_id": cluster_id, "conf": {"spark.executor.memory": "512m"}},
    ).json()
    wait(lambda: http.get(f"/api/v1/sessions/{session['id']}").json()["state"] == "idle")
    started = time.perf_counter()
    code = "import time\nsc.parallelize(range(6), 6).map(lambda x: time.sleep(30)).count()"
    http.post(f"/api/v1/sessions/{session['id']}/statements", json={"code": code})
    wait(lambda: registered_workers(http, cluster_id) >= 2, interval=0.2)
    elapsed = time.perf_counter() - started
    http.delete(f"/api/v1/sessions/{session['id']}")
    terminate(http, cluster_id)
    return elapsed


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        hand = [by_hand(2, Path(tmp) / f"hand{i}") for i in range(args.runs)]
        data_dir = Path(tmp) / "up"
        data_dir.mkdir()
        env = {"SPARKPLANE_POOL_SIZE": "0", "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.25"}
        with (
            sparkplane_up(data_dir, PASSWORD, env) as url,
            httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60) as http,
        ):
            ours = []
            for i in range(args.runs):
                cluster_id, elapsed = create_to_running(http, {"cluster_name": f"bench-{i}", "num_workers": 2})
                ours.append(elapsed)
                terminate(http, cluster_id)
            autoscale = waiting_to_new_worker(http)
    figures = [
        Figure(
            "cluster create -> RUNNING, 2 workers (median)",
            median(ours),
            "s",
            "master + 2 workers by hand, ALIVE",
            median([h[0] for h in hand]),
        ),
        Figure(
            "waiting tasks -> added worker registered",
            autoscale,
            "s",
            "one worker by hand: start -> ALIVE",
            median([h[1] for h in hand]),
        ),
    ]
    report("Clusters (local provider, sp.small workers)", figures, "clusters")
    return figures


if __name__ == "__main__":
    main()
