"""The pure parts of clusters: validation, capacity, autoscaling and auto-termination decisions, node keys,
the master's /json/, and the local provider's state table."""

from __future__ import annotations

import pytest

from sparkplane.backends.clusters import NodeRole, NodeState, node_key, parse_master_json, parse_node_key
from sparkplane.backends.local.cluster import _STATE_MAP, map_node_state
from sparkplane.domain.clusters import (
    NODE_TYPES,
    Capacity,
    WorkerLoad,
    autoscale_decision,
    autotermination_due,
    check_capacity,
    cluster_spec,
    workers_for_resize,
)
from sparkplane.domain.errors import InvalidInput

# Measured from a Spark 4.1.1 master with one worker and one running application (trimmed).
MASTER_JSON = {
    "url": "spark://127.0.0.1:17077",
    "workers": [
        {
            "id": "worker-20261201211438-127.0.0.1-17078",
            "host": "127.0.0.1",
            "port": 17078,
            "webuiaddress": "http://127.0.0.1:18081",
            "cores": 1,
            "coresused": 1,
            "coresfree": 0,
            "memory": 1024,
            "memoryused": 512,
            "state": "ALIVE",
            "lastheartbeat": 1796159683497,
        }
    ],
    "aliveworkers": 1,
    "activeapps": [
        {
            "id": "app-20261201211534-0000",
            "name": "pyspark-shell",
            "cores": 1,
            "state": "RUNNING",
            "memoryperexecutor": 512,
        }
    ],
    "status": "ALIVE",
}


def autoscaling(low: int, high: int, node: str = "sp.small"):  # type: ignore[no-untyped-def]
    return cluster_spec(name="c", node_type_id=node, autoscale={"min_workers": low, "max_workers": high})


def decide(spec, workers, *, pending=0, waiting=0, after=60.0):  # type: ignore[no-untyped-def]
    return autoscale_decision(
        spec, workers=workers, pending_workers=pending, waiting_cores=waiting, scale_down_after_seconds=after
    )


def test_a_fixed_size_spec() -> None:
    spec = cluster_spec(name=" etl ", num_workers=2, spark_conf={"spark.sql.shuffle.partitions": "4"})
    assert (spec.name, spec.min_workers, spec.max_workers, spec.initial_workers()) == ("etl", 2, 2, 2)
    assert spec.node_type is NODE_TYPES["sp.small"] and spec.autotermination_minutes == 0


def test_resize_switches_between_fixed_and_autoscale() -> None:
    spec = cluster_spec(name="c", num_workers=2, custom_tags={"team": "x"})
    scaled = workers_for_resize(spec, None, {"min_workers": 1, "max_workers": 4})
    assert scaled.autoscale is not None and scaled.num_workers is None and scaled.custom_tags == {"team": "x"}
    with pytest.raises(InvalidInput, match="not both"):
        workers_for_resize(spec, 3, {"min_workers": 1, "max_workers": 4})


@pytest.mark.parametrize("count", [True, 1.5, "2", 101])
def test_worker_counts_must_be_small_whole_numbers(count: object) -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        cluster_spec(name="c", num_workers=count)  # type: ignore[arg-type]


def test_autoscale_needs_both_bounds_and_no_others() -> None:
    with pytest.raises(InvalidInput, match="both"):
        cluster_spec(name="c", autoscale={"min_workers": 1})
    with pytest.raises(InvalidInput, match="unknown field"):
        cluster_spec(name="c", autoscale={"min_workers": 1, "max_workers": 2, "target": 1})
    with pytest.raises(InvalidInput, match="at least 1"):
        cluster_spec(name="c", autoscale={"min_workers": 0, "max_workers": 0})


def test_capacity_counts_the_largest_size_next_to_what_runs() -> None:
    spec = autoscaling(1, 4, "sp.medium")  # up to 4 x 4 GiB
    check_capacity(spec, Capacity(memory_mb=16384))
    with pytest.raises(InvalidInput, match="at most 3 fit"):
        check_capacity(spec, Capacity(memory_mb=16384), in_use_mb=2048)
    with pytest.raises(InvalidInput, match="limit of 4 nodes"):
        check_capacity(spec, Capacity(max_nodes=4))
    check_capacity(spec, Capacity())  # no known limit


def test_scale_up_adds_enough_workers_for_the_waiting_cores_up_to_max() -> None:
    spec = autoscaling(1, 3)
    busy = [WorkerLoad("w0", cores_used=1, idle_seconds=0)]
    decision = decide(spec, busy, waiting=5)
    assert decision is not None and decision.target == 3 and decision.remove == ()
    assert "5 core" in decision.reason


def test_no_scale_up_while_workers_are_still_starting_or_at_max() -> None:
    spec = autoscaling(1, 3)
    busy = [WorkerLoad("w0", cores_used=1, idle_seconds=0)]
    assert decide(spec, busy, pending=1, waiting=4) is None
    assert decide(spec, busy * 3, waiting=4) is None


def test_scale_down_stops_the_longest_idle_workers_never_below_min() -> None:
    spec = autoscaling(1, 4)
    workers = [
        WorkerLoad("w0", cores_used=0, idle_seconds=500),
        WorkerLoad("w1", cores_used=1, idle_seconds=0),
        WorkerLoad("w2", cores_used=0, idle_seconds=900),
        WorkerLoad("w3", cores_used=0, idle_seconds=30),  # not idle long enough
    ]
    decision = decide(spec, workers, after=120)
    assert decision is not None and decision.remove == ("w2", "w0") and decision.target == 2
    low = autoscaling(3, 4)
    decision = decide(low, workers, after=120)
    assert decision is not None and decision.remove == ("w2",) and decision.target == 3


def test_fixed_size_clusters_never_autoscale() -> None:
    spec = cluster_spec(name="c", num_workers=1)
    assert decide(spec, [], waiting=9, after=1) is None


def test_autotermination() -> None:
    assert autotermination_due(10, idle_seconds=601, active_work=0)
    assert not autotermination_due(10, idle_seconds=599, active_work=0)
    assert not autotermination_due(10, idle_seconds=10_000, active_work=1)
    assert not autotermination_due(0, idle_seconds=10_000, active_work=0)  # 0 means never


def test_node_keys_round_trip_and_reject_others() -> None:
    key = node_key("a1b2", 3, NodeRole.WORKER, 12)
    assert key == "a1b2-g3-w12"
    parsed = parse_node_key(key)
    assert parsed is not None and (parsed.cluster_uid, parsed.generation, parsed.role, parsed.index) == (
        "a1b2",
        3,
        NodeRole.WORKER,
        12,
    )
    master = parse_node_key(node_key("a1b2", 0, NodeRole.MASTER))
    assert master is not None and master.role is NodeRole.MASTER
    for other in ("a1b2-w1", "a1b2-g1-x", ".pool", "a1b2-g1-master.lock", "../a-g1-master"):
        assert parse_node_key(other) is None


def test_the_masters_json_as_measured() -> None:
    status = parse_master_json(MASTER_JSON, ports_to_keys={17078: "u-g0-w0"})
    assert status.master_url == "spark://127.0.0.1:17077" and status.status == "ALIVE"
    (worker,) = status.alive_workers()
    assert (worker.node_key, worker.cores, worker.cores_used, worker.memory_mb) == ("u-g0-w0", 1, 1, 1024)
    (app,) = status.apps
    assert (app.app_id, app.state, app.cores_granted) == ("app-20261201211534-0000", "RUNNING", 1)
    empty = parse_master_json({})
    assert empty.workers == () and empty.apps == () and empty.status == "UNKNOWN"


@pytest.mark.parametrize("native", sorted(_STATE_MAP))
def test_every_local_node_state_is_mapped(native: str) -> None:
    assert map_node_state(native) in NodeState


def test_an_unknown_local_node_state_waits_and_never_raises() -> None:
    assert map_node_state("SOMETHING_NEW") is NodeState.PENDING
