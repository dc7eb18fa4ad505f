"""The agent's Spark: one classic driver that also serves Spark Connect (plugin mode, spark-notes gotcha 7).

The classic SparkSession is created first, in this process, with the Connect plugin bound to loopback behind
a token (gotcha 5). Statements get Livy's names `spark`, `sc` and `sqlContext` (PySpark 4.1 still has
SQLContext; it is built from `spark`, which does not warn).

Calls into the JVM from the HTTP threads (progress, cancel, claim, completion) go through one "spark-control"
thread: PySpark pins a JVM thread to each Python thread that calls it, and the HTTP server makes a thread per
request.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
CONNECT_ADDRESS = "spark.connect.grpc.binding.address"
CONNECT_PORT = "spark.connect.grpc.binding.port"
CONNECT_TOKEN = "spark.connect.authenticate.token"
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
SUBMIT_ARGS_ENV = "PYSPARK_SUBMIT_ARGS"  # PySpark appends these to the spark-submit that starts the driver
EVENT_LOG_PREFIX = "spark.eventLog."
CONSOLE_PROGRESS = "spark.ui.showConsoleProgress"
# A port picked free can be taken before Spark binds it; a few fresh picks make that vanishingly rare.
_PORT_ATTEMPTS = 5
_LISTEN_SECONDS = 30.0
_CONTROL_SECONDS = 10.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def driver_confs(user: Mapping[str, str], *, connect_port: int, events_dir: Path) -> dict[str, str]:
    """The driver's confs: our defaults, the user's, then the Connect settings nobody may override.

    The Connect token is not among them: confs reach the JVM's command line, which every local user can read
    in /proc, so it travels in the environment instead (`TOKEN_ENV`, read by Spark as the conf's default).
    """
    conf: dict[str, str] = {}
    if not any(key.startswith(EVENT_LOG_PREFIX) for key in user):
        # As for batches: the event log names the application, and the history server can read it later.
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = events_dir.absolute().as_uri()
    conf[CONSOLE_PROGRESS] = "false"  # the progress bar would fill driver.log with carriage returns
    conf.update(user)
    plugins = [p for p in conf.get("spark.plugins", "").split(",") if p.strip() and p.strip() != CONNECT_PLUGIN]
    conf["spark.plugins"] = ",".join([*plugins, CONNECT_PLUGIN])
    # Connect binds to every interface and lets anyone in by default (gotcha 5): loopback and a token, always.
    conf[CONNECT_ADDRESS] = "127.0.0.1"
    conf[CONNECT_PORT] = str(connect_port)
    conf.pop(CONNECT_TOKEN, None)  # it would beat the environment's token
    return conf


def submit_args(existing: str | None, properties_file: Path) -> str:
    """PYSPARK_SUBMIT_ARGS that make the driver's spark-submit read `properties_file` too.

    The builder's confs all become `--conf` flags of that spark-submit, on a command line every local user can
    read; the secret confs go through the file instead (and a `--conf` still wins over it, as on the batch side).
    `--load-spark-defaults` keeps spark-defaults.conf, which a properties file would otherwise replace.
    """
    rest = existing.strip() if existing and existing.strip() else "pyspark-shell"
    return f"--properties-file {shlex.quote(str(properties_file))} --load-spark-defaults {rest}"


@dataclass(frozen=True, slots=True)
class SparkRuntime:
    spark: Any
    sc: Any
    connect_port: int
    app_id: str
    ui_url: str | None

    def namespace(self) -> dict[str, Any]:
        from pyspark.sql import SQLContext

        return {"spark": self.spark, "sc": self.sc, "sqlContext": SQLContext(self.sc, sparkSession=self.spark)}


def start_spark(
    *,
    master: str,
    name: str | None,
    user_confs: Mapping[str, str],
    connect_token: str,
    events_dir: Path,
    properties_file: Path | None = None,
) -> SparkRuntime:
    from pyspark.sql import SparkSession

    events_dir.mkdir(parents=True, exist_ok=True)
    os.environ[TOKEN_ENV] = connect_token  # inherited by the JVM that getOrCreate starts
    if properties_file is not None:
        os.environ[SUBMIT_ARGS_ENV] = submit_args(os.environ.get(SUBMIT_ARGS_ENV), properties_file)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        builder = SparkSession.builder
        for key, value in driver_confs(user_confs, connect_port=port, events_dir=events_dir).items():
            builder = builder.config(key, value)
        builder = builder.master(master)
        if name:
            builder = builder.appName(name)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            if "BindException" in str(exc) and attempt < _PORT_ATTEMPTS:
                logger.warning("the Spark Connect port %d was taken; trying another (attempt %d)", port, attempt)
                continue
            raise
        if not _listening(port, _LISTEN_SECONDS):
            spark.stop()
            raise RuntimeError(f"Spark Connect did not listen on 127.0.0.1:{port}")
        sc = spark.sparkContext
        return SparkRuntime(spark, sc, port, str(sc.applicationId), sc.uiWebUrl)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _listening(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


class SparkControl:
    """The statement queue's `SparkJobs`, plus `call` for other JVM work from the HTTP threads."""

    def __init__(self, sc: Any) -> None:
        self._sc = sc
        self._control = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spark-control")

    def call(self, fn: Callable[[], T], timeout: float = _CONTROL_SECONDS) -> T:
        return self._control.submit(fn).result(timeout)

    # begin and end run on the statement's own (main) thread: a job group is a property of the calling thread.
    def begin(self, group: str) -> None:
        self._sc.setJobGroup(group, f"sparkplane statement {group}", interruptOnCancel=True)

    def end(self) -> None:
        self._sc._jsc.clearJobGroup()

    def progress(self, group: str) -> float:
        return self.call(lambda: _group_progress(self._sc, group), timeout=2.0)

    def cancel(self, group: str) -> None:
        self.call(lambda: self._sc.cancelJobGroup(group))

    def set_confs(self, spark: Any, confs: Mapping[str, str]) -> None:
        """Set runtime confs, all or none: on the first one Spark refuses, the ones set before are undone.

        (`isModifiable` cannot decide it up front: it is False for any key Spark does not know, and those
        set fine.)
        """

        def apply() -> None:
            previous: dict[str, str | None] = {}
            try:
                for key, value in confs.items():
                    previous[key] = spark.conf.get(key, None)
                    spark.conf.set(key, value)
            except Exception as exc:
                for key, old in previous.items():
                    with contextlib.suppress(Exception):
                        spark.conf.unset(key) if old is None else spark.conf.set(key, old)
                raise ValueError(f"Spark refused the conf '{key}': {exc}") from exc

        self.call(apply)

    def close(self) -> None:
        self._control.shutdown(wait=False, cancel_futures=True)


def _group_progress(sc: Any, group: str) -> float:
    tracker = sc.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                total += stage.numTasks
                done += stage.numCompletedTasks
    return done / total if total else 0.0


def stop_spark(runtime: SparkRuntime) -> None:
    with contextlib.suppress(Exception):
        runtime.spark.stop()
