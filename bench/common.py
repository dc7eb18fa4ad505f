"""Shared helpers for benchmarks: a `sparkplane up` to measure against, timing, and the report table."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    target: str | None = None  # the goal, reported (never asserted: the machine is shared)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sparkplane_up(data_dir: Path, password: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SPARKPLANE_ADMIN_PASSWORD": password, **(extra_env or {})}
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115  (closed in finally)
    process = subprocess.Popen(
        [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                tail = (data_dir / "up.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"sparkplane up exited with {process.returncode}:\n{tail}")
            time.sleep(0.2)
        else:
            raise RuntimeError("sparkplane up did not become ready")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def report(title: str, figures: list[Figure], name: str) -> None:
    print(f"\n{title}")
    print(f"{'figure':<44} {'value':>14} {'baseline':>14} {'ratio':>7}  baseline is")
    for f in figures:
        target = f"  (target {f.target})" if f.target else ""
        value, baseline = f"{f.value:.3f} {f.unit}", f"{f.baseline:.3f} {f.unit}"
        print(f"{f.name:<44} {value:>14} {baseline:>14} {f.ratio:>7.2f}  {f.baseline_name}{target}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps([{**asdict(f), "ratio": f.ratio} for f in figures], indent=2))
    print(f"(written to {out.relative_to(ROOT)})")
