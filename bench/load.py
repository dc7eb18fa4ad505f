"""Load: many concurrent API clients against `sparkplane api` on PostgreSQL + RabbitMQ, fake backend.

    scripts/bench load [--clients 200] [--seconds 60] [--api-workers N] [--paced-rate R ...]

Every role (api, worker, both watchers) runs as its own process on a fresh database and vhost. Four phases,
each with every client at once, one after the other:
- baseline: GET /healthz, the same server and client with no database, no auth: the floor of the stack;
- session GET: GET /api/v1/sessions/{id} in a hot loop over a few live sessions: the top rate. With clients
  that never pause, latency is only clients / rate (Little's law: 200 clients at 1,500 req/s wait 133 ms);
- session GET, paced: the same GET, the clients together offering fixed rates, half the phase time each
  (--paced-rate; by default 40%, 60% and 80% of the top rate): the latency a client sees when the server is
  busy but not saturated, and where it turns. Beside each, the generator's own lateness (how late its event
  loop woke up): the part of that p99 that is the client's, not the server's;
- lifecycle: each client creates a session, polls it to idle, runs a statement, deletes it and polls it to
  its end; then creates a batch, polls it to success, or deletes one batch in four while it runs.
Reported per operation: requests/s, p50 and p99 latency, errors. Zero errors is the bar: any non-2xx answer,
transport error or wrong final state counts. Bearer tokens throughout (Basic costs an argon2 hash a request).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from bench.common import Figure, report
from bench.plane import Plane, production_plane

SESSION_END = {"killed", "dead", "success", "error"}
BATCH_END = {"success", "dead", "killed"}
# The GET phases' first second is not timed: 200 clients opening their connections at once is not the steady
# state they measure (it put up to 500 requests of a 1,000 req/s phase over 50 ms). The lifecycle phase is timed
# from its start: its clients' rounds are counted whole.
WARMUP = 1.0
PACED_SHARES = (0.4, 0.6, 0.8)  # of the top rate: the paced phases' offered load
POLL = 0.05  # seconds between polls of one client: a person's script polls far less often
T = TypeVar("T")


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    record_from: float = 0.0  # perf_counter: latencies of requests started earlier are warm-up (errors count)
    # How late the generator's own event loop woke up (see _probe_loop): a request it was late to send or
    # read is charged to the server, so this is the part of a p99 that is the client's.
    loop_lags: list[float] = field(default_factory=list)

    def count(self, op: str) -> int:
        return len(self.latencies[op])

    def rate(self, op: str) -> float:
        return self.count(op) / self.elapsed if self.elapsed else 0.0

    def percentile(self, op: str, q: float) -> float:
        return _quantile(self.latencies[op], q)

    def loop_lag(self, q: float) -> float:
        return _quantile(self.loop_lags, q)

    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            op: {
                "requests": self.count(op),
                "per_second": round(self.rate(op), 1),
                "p50_ms": round(self.percentile(op, 0.5) * 1000, 2),
                "p99_ms": round(self.percentile(op, 0.99) * 1000, 2),
            }
            for op in sorted(self.latencies)
        }


class Connection:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams: one per simulated user.

    Why not httpx here: on this 2-core machine httpx's async client needs more CPU per request than the server
    does (measured: 182 req/s at 50 clients for /healthz, the client process at 100% CPU and the server at
    12%), so it measured itself. This one parses just what sparkplane's JSON answers are: a status line,
    headers, a Content-Length body.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parts.netloc, **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = b"" if body is None else json.dumps(body).encode()
        extra = f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if body is not None else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.headers}{extra}\r\n".encode() + payload)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise ConnectionError(f"the server closed the connection: {exc}") from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            await self.close()
            raise ConnectionError(f"an answer without Content-Length: {lines[0]}")
        content = await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, content

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


class Client:
    """One simulated user: every request is timed under its operation's name; a failure is recorded."""

    def __init__(self, http: Connection, stats: Stats) -> None:
        self.http = http
        self.stats = stats

    async def call(
        self, op: str, method: str, path: str, expect: int = 200, body: object = None, since: float | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter() if since is None else since
        try:
            status, content = await self.http.request(method, path, body)
        except (OSError, ValueError) as exc:
            self.stats.errors.append(f"{op}: {type(exc).__name__}: {exc}")
            raise Failed from exc
        if started >= self.stats.record_from:
            self.stats.latencies[op].append(time.perf_counter() - started)
        if status != expect:
            self.stats.errors.append(f"{op}: {status} {content[:200]!r}")
            raise Failed
        return dict(json.loads(content)) if content else {}

    async def poll(self, op: str, path: str, done: set[str]) -> str:
        deadline = time.monotonic() + 60
        while True:
            state = str((await self.call(op, "GET", path))["state"])
            if state in done:
                return state
            if time.monotonic() > deadline:
                self.stats.errors.append(f"{op}: {path} still {state} after 60 s")
                return state
            await asyncio.sleep(POLL)


class Failed(Exception):
    """A request that failed; already recorded in the stats."""


async def _run_clients(
    plane: Plane, clients: int, seconds: float, body: Callable[[Client, int], Awaitable[None]], warmup: float = 0.0
) -> Stats:
    """`warmup`: seconds at the start whose latencies are not kept (every request and error still happens)."""
    stats = Stats()
    stop_at = time.monotonic() + seconds

    async def one(number: int) -> None:
        http = Connection(plane.url, plane.auth)
        client = Client(http, stats)
        try:
            while time.monotonic() < stop_at:
                try:
                    await body(client, number)
                except Failed:
                    await asyncio.sleep(0.1)  # recorded already; keep the load on
        finally:
            await http.close()

    stats.record_from = time.perf_counter() + warmup
    probe = asyncio.create_task(_probe_loop(stats, stop_at))
    await asyncio.gather(*(one(n) for n in range(clients)))
    await probe
    stats.elapsed = time.perf_counter() - stats.record_from
    return stats


async def _probe_loop(stats: Stats, stop_at: float, tick: float = 0.005) -> None:
    while time.monotonic() < stop_at:
        asked = time.perf_counter()
        await asyncio.sleep(tick)
        if asked >= stats.record_from:
            stats.loop_lags.append(time.perf_counter() - asked - tick)


async def healthz(client: Client, number: int) -> None:
    await client.call("GET /healthz", "GET", "/healthz")


def session_get(session_ids: list[int]) -> Callable[[Client, int], Awaitable[None]]:
    async def body(client: Client, number: int) -> None:
        await client.call("GET session", "GET", f"/api/v1/sessions/{session_ids[number % len(session_ids)]}")

    return body


def paced_session_get(session_ids: list[int], clients: int, rate: float) -> Callable[[Client, int], Awaitable[None]]:
    """Each client sends one GET every clients/rate seconds, on a fixed schedule: together they offer `rate`
    requests per second whatever the server does. A request's latency counts from when it was due, not
    from when it went out, so a server that falls behind is charged for the wait it caused."""
    interval = clients / rate
    due: dict[int, float] = {}

    async def body(client: Client, number: int) -> None:
        now = time.perf_counter()
        at = due.setdefault(number, now + interval * number / clients)  # spread the clients' first requests
        if at > now:
            await asyncio.sleep(at - now)
        due[number] = at + interval
        await client.call("GET session", "GET", f"/api/v1/sessions/{session_ids[number % len(session_ids)]}", since=at)

    return body


def lifecycle(file_uri: str) -> Callable[[Client, int], Awaitable[None]]:
    rounds: dict[int, int] = defaultdict(int)

    async def body(client: Client, number: int) -> None:
        rounds[number] += 1
        await session_lifecycle(client)
        await batch_lifecycle(client, file_uri, kill=(rounds[number] + number) % 4 == 0)  # one batch in four is killed

    return body


async def session_lifecycle(client: Client) -> None:
    session = await client.call("create session", "POST", "/api/v1/sessions", 201, body={"kind": "pyspark"})
    path = f"/api/v1/sessions/{session['id']}"
    state = await client.poll("GET session", path, {"idle", *SESSION_END})
    if state != "idle":
        client.stats.errors.append(f"session {session['id']} ended {state} before it was idle")
        return
    statement = await client.call("run statement", "POST", f"{path}/statements", 201, body={"code": "1 + 1"})
    result = await client.poll("GET statement", f"{path}/statements/{statement['id']}", {"available", "cancelled"})
    if result != "available":
        client.stats.errors.append(f"statement {statement['id']} of session {session['id']} ended {result}")
    await client.call("delete session", "DELETE", path)
    state = await client.poll("GET session", path, SESSION_END)
    if state != "dead":  # Livy: DELETE gives shutting_down, then dead
        client.stats.errors.append(f"session {session['id']} ended {state}, not dead")


async def batch_lifecycle(client: Client, file_uri: str, kill: bool) -> None:
    # A batch to kill runs 30 s on the fake backend (its first argument), so the kill always comes first.
    args = ["30"] if kill else []
    batch = await client.call("create batch", "POST", "/api/v1/batches", 201, body={"file": file_uri, "args": args})
    path = f"/api/v1/batches/{batch['id']}"
    if kill:
        await client.call("delete batch", "DELETE", path)
    state = await client.poll("GET batch", path, BATCH_END)
    wanted = "killed" if kill else "success"
    if state != wanted:
        client.stats.errors.append(f"batch {batch['id']} ended {state}, not {wanted}")


def prepare(plane: Plane, live_sessions: int) -> tuple[list[int], str]:
    """A few idle sessions for the GET loop, and an uploaded file for the batches."""
    with httpx.Client(base_url=plane.url, headers=plane.auth, timeout=30) as http:
        uploaded = http.post("/api/v1/files", files={"file": ("job.py", b"print('load')\n", "text/x-python")})
        uploaded.raise_for_status()
        ids = []
        for _ in range(live_sessions):
            created = http.post("/api/v1/sessions", json={"kind": "pyspark"})
            created.raise_for_status()
            ids.append(int(created.json()["id"]))
        deadline = time.monotonic() + 60
        while any(http.get(f"/api/v1/sessions/{i}").json()["state"] != "idle" for i in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the load's sessions did not become idle")
            time.sleep(0.2)
        return ids, str(uploaded.json()["uri"])


@dataclass
class LoadResult:
    clients: int
    seconds: float
    phases: dict[str, Stats]
    paced_rates: list[float]

    @property
    def errors(self) -> list[str]:
        return [e for s in self.phases.values() for e in s.errors]

    def figures(self) -> list[Figure]:
        base, hot = self.phases["baseline"], self.phases["session GET"]
        base_rate = base.rate("GET /healthz")
        figures = [
            Figure(
                f"session GET, {self.clients} clients",
                hot.rate("GET session"),
                "req/s",
                "GET /healthz",
                base_rate,
                ">= 1500 req/s on 2 cores",
            ),
            Figure(
                "session GET p50",
                hot.percentile("GET session", 0.5) * 1000,
                "ms",
                "GET /healthz p50",
                base.percentile("GET /healthz", 0.5) * 1000,
            ),
            Figure(
                "session GET p99, clients never pausing",
                hot.percentile("GET session", 0.99) * 1000,
                "ms",
                "GET /healthz p99",
                base.percentile("GET /healthz", 0.99) * 1000,
            ),
        ]
        figures += [
            Figure(
                f"session GET p99, paced at {rate:.0f} req/s",
                self.phases[_paced(rate)].percentile("GET session", 0.99) * 1000,
                "ms",
                "the load generator's own lateness p99",
                self.phases[_paced(rate)].loop_lag(0.99) * 1000,
                f"< 50 ms at {self.clients} clients",
            )
            for rate in self.paced_rates
        ]
        mixed = self.phases["lifecycle"]
        for op in ("create session", "delete session", "create batch", "GET batch"):
            if mixed.count(op):
                figures.append(
                    Figure(
                        f"lifecycle: {op} p99",
                        mixed.percentile(op, 0.99) * 1000,
                        "ms",
                        "GET /healthz p99",
                        base.percentile("GET /healthz", 0.99) * 1000,
                    )
                )
        figures.append(
            Figure("lifecycle: requests/s, all ops", mixed.total() / mixed.elapsed, "req/s", "GET /healthz", base_rate)
        )
        figures.append(Figure("errors, all phases", float(len(self.errors)), "count", "zero is the bar", 0.0, "0"))
        return figures


def run_load(
    plane: Plane, *, clients: int, seconds: float, live_sessions: int = 10, paced_rates: list[float] | None = None
) -> LoadResult:
    """`paced_rates`: what the paced phases offer, in requests/s; None: PACED_SHARES of the top rate just measured."""
    ids, file_uri = prepare(plane, live_sessions)
    phases = {
        "baseline": _on_own_loop(lambda: _run_clients(plane, clients, seconds, healthz, WARMUP)),
        "session GET": _on_own_loop(lambda: _run_clients(plane, clients, seconds, session_get(ids), WARMUP)),
    }
    top = phases["session GET"].rate("GET session")
    rates = paced_rates or [max(1.0, round(share * top, -1)) for share in PACED_SHARES]
    for rate in rates:
        paced = paced_session_get(ids, clients, rate)
        phases[_paced(rate)] = _on_own_loop(lambda: _run_clients(plane, clients, seconds / 2, paced, WARMUP))  # noqa: B023
    phases["lifecycle"] = _on_own_loop(lambda: _run_clients(plane, clients, seconds, lifecycle(file_uri)))
    return LoadResult(clients, seconds, phases, rates)


def _paced(rate: float) -> str:
    return f"session GET, paced at {rate:.0f} req/s"


def _on_own_loop(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the clients on an event loop of their own thread: the caller's thread may have one running
    already (Playwright's sync API keeps one on pytest's main thread), where asyncio.run refuses."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--api-workers", type=int, default=os.cpu_count() or 1, help="SPARKPLANE_API_WORKERS (default: one per core)"
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        nargs="+",
        default=None,
        help="req/s the paced phases offer (default: 40%%, 60%% and 80%% of the top rate)",
    )
    args = parser.parse_args(argv)
    extra = {"SPARKPLANE_API_WORKERS": str(args.api_workers)}
    with tempfile.TemporaryDirectory() as tmp, production_plane(Path(tmp), extra_env=extra) as plane:
        result = run_load(plane, clients=args.clients, seconds=args.seconds, paced_rates=args.paced_rate)
    for name, stats in result.phases.items():
        print(f"{name}: {json.dumps(stats.summary())}")
    for error in result.errors[:20]:
        print(f"error: {error}")
    figures = result.figures()
    report(
        f"Load: {args.clients} clients, {args.seconds:.0f} s per phase, {args.api_workers} api processes on "
        f"{os.cpu_count()} cores, PostgreSQL + RabbitMQ, fake backend",
        figures,
        "load",
    )
    return figures


if __name__ == "__main__":
    main()
