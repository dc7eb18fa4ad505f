"""Batch submit -> success through sparkplane, against a bare spark-submit of the same script, same run.

    scripts/bench batch_submit [--runs N]

Both run examples/pi.py on local[1]. sparkplane's time is measured from the POST /livy/batches to the
moment GET /state first answers `success`, with the API polled every 50 ms, so it includes the queue,
the worker's launch, spark-submit itself and the watcher noticing the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, Figure, median, report, sparkplane_up

PI = ROOT / "examples" / "pi.py"
PASSWORD = "bench-admin-password"


def bare_spark_submit(workdir: Path) -> float:
    spark_home = os.environ["SPARK_HOME"]
    started = time.perf_counter()
    subprocess.run(
        [f"{spark_home}/bin/spark-submit", "--master", "local[1]", str(PI), "2"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def through_sparkplane(http: httpx.Client, uri: str) -> float:
    started = time.perf_counter()
    batch_id = http.post("/livy/batches", json={"file": uri, "args": ["2"]}).json()["id"]
    while True:
        state = http.get(f"/livy/batches/{batch_id}/state").json()["state"]
        if state in ("success", "dead", "killed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if state != "success":
        raise RuntimeError(f"batch {batch_id} ended {state}")
    return elapsed


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {"SPARKPLANE_SPARK_MASTER": "local[1]", "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.25"}
        with (
            sparkplane_up(data_dir, PASSWORD, env) as url,
            httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30) as http,
        ):
            with open(PI, "rb") as f:
                uri = http.post("/api/v1/files", files={"file": ("pi.py", f)}).json()["uri"]
            bare, ours = [], []
            for i in range(args.runs):  # interleaved, so machine noise hits both alike
                bare.append(bare_spark_submit(data_dir))
                ours.append(through_sparkplane(http, uri))
                print(f"run {i + 1}: bare spark-submit {bare[-1]:.2f}s, sparkplane submit->success {ours[-1]:.2f}s")
    figures = [Figure("sparkplane submit -> success", median(ours), "s", "bare spark-submit", median(bare))]
    report(f"Batch submit -> success, examples/pi.py on local[1], median of {args.runs}", figures, "batch_submit")
    return figures


if __name__ == "__main__":
    main()
