"""The agent's command line and driver confs (pure functions; Spark itself is covered by the e2e tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkplane.agent.main import parse_args, read_secret
from sparkplane.agent.spark import CONNECT_PLUGIN, driver_confs, free_port


def test_driver_confs_add_ours_keep_the_users_and_lock_connect_down(tmp_path: Path) -> None:
    user = {
        "spark.plugins": "com.example.Plugin",
        "spark.connect.grpc.binding.address": "0.0.0.0",
        "spark.connect.authenticate.token": "from-the-user",
        "spark.sql.shuffle.partitions": "4",
    }
    conf = driver_confs(user, connect_port=15999, events_dir=tmp_path / "events")
    assert conf["spark.plugins"] == f"com.example.Plugin,{CONNECT_PLUGIN}"
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert conf["spark.connect.grpc.binding.port"] == "15999"
    assert "spark.connect.authenticate.token" not in conf  # the token travels in the environment only
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == (tmp_path / "events").as_uri()
    assert conf["spark.ui.showConsoleProgress"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "4"


def test_a_users_event_log_is_left_alone(tmp_path: Path) -> None:
    conf = driver_confs({"spark.eventLog.dir": "s3a://logs/"}, connect_port=1, events_dir=tmp_path)
    assert conf["spark.eventLog.dir"] == "s3a://logs/" and "spark.eventLog.enabled" not in conf
    assert driver_confs({"spark.plugins": CONNECT_PLUGIN}, connect_port=1, events_dir=tmp_path)["spark.plugins"] == (
        CONNECT_PLUGIN
    )


def test_free_port_is_a_port() -> None:
    assert 1024 < free_port() < 65536


def test_arguments(tmp_path: Path) -> None:
    args = parse_args(["--run-dir", str(tmp_path), "--conf", "a.b=c=d", "--conf", "x=", "--claimed-by", "s1"])
    assert args.conf == {"a.b": "c=d", "x": ""}
    assert (args.master, args.claimed_by, args.orphan_after, args.sql_max_rows) == ("local[*]", "s1", 600.0, 1000)
    with pytest.raises(SystemExit):
        parse_args(["--run-dir", str(tmp_path), "--conf", "novalue"])


def test_secrets_are_read_stripped_and_must_not_be_empty(tmp_path: Path) -> None:
    (tmp_path / "agent.token").write_text("abc\n")
    assert read_secret(tmp_path / "agent.token") == "abc"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError):
        read_secret(tmp_path / "empty")
