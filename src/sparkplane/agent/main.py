"""The agent's life: read the secrets, start Spark, serve HTTP, run statements, stop cleanly.

    python -m sparkplane.agent --run-dir D [--master local[*]] [--conf k=v ...] [--name N]
                               [--claimed-by KEY] [--orphan-after SECONDS] [--properties-file F]

The launcher (LocalSessionBackend) writes D/agent.token and D/connect.token (mode 0600) before starting us,
and F (0600) when the session has secret confs (a user's credentials), which the driver's spark-submit reads;
we write D/agent.json (url, pid, connect_port, spark_app_id, ui_url, started_at) once Spark and both servers
are up. The process ends with 0 after POST /shutdown, after a statement's SystemExit, or when the control
plane has not been heard from for --orphan-after seconds; whatever then remains of it, the supervisor kills.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sparkplane.agent.capture import FdPump, OutputCapture
from sparkplane.agent.runner import DEFAULT_MAX_OUTPUT_CHARS, DEFAULT_SQL_MAX_ROWS, Runner
from sparkplane.agent.server import AgentAPI, AgentInfo, serve
from sparkplane.agent.spark import SparkControl, SparkRuntime, start_spark, stop_spark
from sparkplane.agent.statements import StatementQueue

logger = logging.getLogger("sparkplane.agent")

AGENT_TOKEN = "agent.token"
CONNECT_TOKEN = "connect.token"
AGENT_JSON = "agent.json"
EVENTS_DIR = "events"
DEFAULT_ORPHAN_AFTER = 600.0
# After a statement's SystemExit the agent waits this long for the control plane to read that statement.
DEFAULT_EXIT_LINGER = 10.0
# spark.stop() normally takes a second or two; a driver that hangs in it must still end.
_STOP_DEADLINE = 60.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sparkplane.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark conf (repeat)")
    parser.add_argument("--name", help="the Spark application name")
    parser.add_argument("--claimed-by", help="the session this agent serves; a pooled agent has none yet")
    parser.add_argument(
        "--properties-file",
        type=Path,
        help="secret Spark confs (0600) for the driver's spark-submit; removed once read",
    )
    parser.add_argument("--orphan-after", type=float, default=DEFAULT_ORPHAN_AFTER)
    parser.add_argument("--sql-max-rows", type=int, default=DEFAULT_SQL_MAX_ROWS)
    parser.add_argument("--max-output-chars", type=int, default=DEFAULT_MAX_OUTPUT_CHARS)
    parser.add_argument("--exit-linger", type=float, default=DEFAULT_EXIT_LINGER)
    args = parser.parse_args(argv)
    confs = {}
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--conf {item!r} is not KEY=VALUE")
        confs[key] = value
    args.conf = confs
    return args


def read_secret(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log_format = "%(asctime)s %(levelname)s agent[%(process)d] %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=log_format, stream=sys.stderr)
    # py4j logs every connection it opens and closes at INFO; a cancelled statement closes a few.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    run_dir: Path = args.run_dir.absolute()
    try:
        agent_token = read_secret(run_dir / AGENT_TOKEN)
        connect_token = read_secret(run_dir / CONNECT_TOKEN)
    except (OSError, ValueError) as exc:
        logger.error("cannot read the agent's secrets: %s", exc)
        return 2
    # %matplot renders off screen; the driver has no display.
    os.environ.setdefault("MPLBACKEND", "Agg")
    started = time.monotonic()
    pump = FdPump(1)  # before Spark: the JVM must inherit the pipe as its stdout
    runtime = start_spark(
        master=args.master,
        name=args.name,
        user_confs=args.conf,
        connect_token=connect_token,
        events_dir=run_dir / EVENTS_DIR,
        properties_file=args.properties_file,
    )
    if args.properties_file is not None:
        # The driver has read it; a session may live for hours, and its secrets need not stay on disk meanwhile.
        args.properties_file.unlink(missing_ok=True)
    control = SparkControl(runtime.sc)
    if args.claimed_by is None:
        _warm_up(runtime, control)
    namespace = runtime.namespace()
    runner = Runner(
        namespace,
        capture=OutputCapture(pump),
        max_output_chars=args.max_output_chars,
        sql_max_rows=args.sql_max_rows,
    )
    queue = StatementQueue(runner, control)
    info = AgentInfo(spark_app_id=runtime.app_id, ui_url=runtime.ui_url, claimed_by=args.claimed_by)
    api = AgentAPI(
        queue,
        info,
        namespace=namespace,
        set_confs=lambda confs: control.set_confs(runtime.spark, confs),
        call=control.call,
        # Runs inside `call` already (completion is on the control thread): no second hop.
        table_names=lambda: [table.name for table in runtime.spark.catalog.listTables()],
        on_shutdown=queue.request_stop,
    )
    server, _ = serve(api, agent_token)
    record = {
        "url": server.url,
        "pid": os.getpid(),
        "connect_port": runtime.connect_port,
        "spark_app_id": runtime.app_id,
        "ui_url": runtime.ui_url,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomic(run_dir / AGENT_JSON, json.dumps(record))
    logger.info("ready in %.1fs: %s, application %s", time.monotonic() - started, server.url, runtime.app_id)
    watchdog = threading.Thread(target=_orphan_watch, args=(info, queue, args.orphan_after), daemon=True)
    watchdog.start()
    try:
        queue.run_forever()
    finally:
        _arm_deadline()
        if queue.exit_requested:
            # Give the control plane a moment to read the statement that ended the session.
            api.result_read.wait(args.exit_linger)
        stop_spark(runtime)
        server.shutdown()
        server.server_close()
        control.close()
        logger.info("stopped")
    return 0


def _warm_up(runtime: SparkRuntime, control: SparkControl) -> None:
    """A pooled agent has time to spare: pay the first query's JIT and connection costs before anyone waits.

    (Measured: a claim took ~270 ms when /claim was the control thread's first JVM call, and a driver's first
    statement takes seconds where later ones take milliseconds, spark-notes.)
    """
    runtime.sc.setJobGroup("sparkplane-warm-up", "sparkplane: warming up a pooled driver")
    runtime.spark.range(1).count()
    runtime.sc._jsc.clearJobGroup()
    control.call(lambda: runtime.spark.conf.get("spark.app.id"))


def _orphan_watch(info: AgentInfo, queue: StatementQueue, orphan_after: float) -> None:
    """Stop the agent when the control plane is gone: nothing else would ever stop it."""
    interval = max(0.05, min(5.0, orphan_after / 4))
    while not queue.stopping:
        time.sleep(interval)
        with info.lock:
            silent = time.monotonic() - info.last_contact
        if silent > orphan_after:
            logger.warning("no contact from the control plane for %.0fs: stopping", silent)
            queue.request_stop()
            return


def _arm_deadline() -> None:
    def expire() -> None:
        logger.error("the agent did not stop within %.0fs; exiting hard", _STOP_DEADLINE)
        os._exit(1)

    timer = threading.Timer(_STOP_DEADLINE, expire)
    timer.daemon = True
    timer.start()
