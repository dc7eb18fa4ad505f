"""The cluster routes of the FakeServer (fake_server.py), with the server's wire shapes (api/cluster_schemas.py).

Each GET of a cluster moves it one step along its script, the way the server's converge loop moves a real
one between polls: creation and start go PENDING -> RUNNING, restart RESTARTING -> RUNNING, resize RESIZING ->
RUNNING, terminate TERMINATING -> TERMINATED. Changes the server refuses (409) are refused here too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import httpx

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
MASTER_URL = "spark://10.0.0.5:7077"
MASTER_UI = "http://10.0.0.5:8080"
# A cluster's states, one per GET after the POST that created it (PENDING); a step is a state or (state, fields).
CLUSTER_STARTS = ("PENDING", "RUNNING")
MASTER_DIED = "the Spark master stopped (exited 1): java.net.BindException: Address already in use"
CLUSTER_FAILS = ("PENDING", ("ERROR", {"state_message": MASTER_DIED}))
CLUSTER_STATES = ("PENDING", "RUNNING", "RESIZING", "RESTARTING", "TERMINATING", "TERMINATED", "ERROR")
ClusterStep = str | tuple[str, dict[str, Any]]
CREATE_FIELDS = frozenset(
    {
        "cluster_name", "node_type_id", "num_workers", "autoscale", "spark_conf", "spark_env_vars",
        "autotermination_minutes", "custom_tags", "spark_version",
    }
)  # fmt: skip
NODE_TYPES = [
    {"node_type_id": "sp.small", "num_cores": 1, "memory_mb": 1024, "description": "1 core, 1 GiB"},
    {"node_type_id": "sp.medium", "num_cores": 2, "memory_mb": 4096, "description": "2 cores, 4 GiB"},
]


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": message})


class FakeClusters:
    def init_clusters(self) -> None:
        self.cluster_script: list[ClusterStep] = list(CLUSTER_STARTS)
        self.clusters: dict[int, dict[str, Any]] = {}
        self.cluster_steps: dict[int, list[ClusterStep]] = {}
        self.cluster_events: dict[int, list[dict[str, Any]]] = {}
        self.cluster_bodies: list[dict[str, Any]] = []  # every create and resize body, as sent

    def add_cluster(self, state: str = "PENDING", **fields: Any) -> dict[str, Any]:
        cluster_id = len(self.clusters) + 1
        cluster = {
            "cluster_id": cluster_id, "cluster_name": f"c{cluster_id}", "state": state, "state_message": None,
            "creator_user_name": "alice", "provider": "local", "node_type_id": "sp.small", "num_workers": 2,
            "autoscale": None, "target_workers": 2, "spark_conf": {}, "spark_env_vars": {},
            "autotermination_minutes": 0.0, "custom_tags": {}, "master_url": None, "spark_ui_url": None,
            "termination_reason": None, "created_at": NOW.isoformat(), "start_time": None, "terminated_time": None,
            "last_activity_time": NOW.isoformat(),
        } | fields  # fmt: skip
        self.clusters[cluster_id] = cluster
        self.cluster_steps[cluster_id] = list(self.cluster_script)
        self.cluster_events[cluster_id] = []
        self._event(cluster_id, "CREATING", {"user": "alice", "workers": cluster["target_workers"]})
        if state == "RUNNING":
            self._move_cluster(cluster_id, "RUNNING")
        return cluster

    def _clusters(self, method: str, path: str, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if path == "/api/v1/clusters" and method == "POST":
            return self._create_cluster(json.loads(request.content))
        if path == "/api/v1/clusters":
            state = params.get("state")
            if state is not None and state not in CLUSTER_STATES:
                return _error(400, f"state must be one of {', '.join(CLUSTER_STATES)}")
            offset, limit = int(params["offset"]), int(params["limit"])
            items = [c for c in self.clusters.values() if state in (None, c["state"])]
            return httpx.Response(200, json={"offset": offset, "total": len(items), "items": items[offset:][:limit]})
        if path == "/api/v1/clusters/node-types":
            return httpx.Response(200, json=NODE_TYPES)
        m = re.fullmatch(r"/api/v1/clusters/(\d+)(?:/(start|restart|resize|terminate|events|nodes))?", path)
        if m is None or int(m[1]) not in self.clusters:
            return _error(404, f"Cluster {m[1] if m else '?'} not found.")
        cluster_id, tail = int(m[1]), m[2]
        cluster = self.clusters[cluster_id]
        if tail == "events":
            return self._events_page(cluster_id, params)
        if tail == "nodes":
            return httpx.Response(200, json=self._nodes(cluster))
        if tail is not None:
            return self._change(cluster_id, tail, json.loads(request.content) if request.content else None)
        if method == "DELETE":
            if cluster["state"] != "TERMINATED":
                return _error(409, f"Cluster {cluster_id} is {cluster['state']}; terminate it first, then delete it")
            del self.clusters[cluster_id]
            return httpx.Response(204)
        if self.cluster_steps[cluster_id]:
            step = self.cluster_steps[cluster_id].pop(0)
            state, extra = (step, {}) if isinstance(step, str) else step
            self._move_cluster(cluster_id, state, **extra)
        return httpx.Response(200, json=cluster)

    def _create_cluster(self, body: dict[str, Any]) -> httpx.Response:
        self.cluster_bodies.append(body)
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            return _error(400, f'Unrecognized field "{unknown[0]}"')
        if ("num_workers" in body) == ("autoscale" in body):
            return _error(400, "give num_workers (a fixed size) or autoscale {min_workers, max_workers}")
        scale = body.get("autoscale")
        fields = {
            "cluster_name": body["cluster_name"],
            "num_workers": body.get("num_workers"),
            "autoscale": scale,
            "target_workers": scale["min_workers"] if scale else body["num_workers"],
            "node_type_id": body.get("node_type_id", "sp.small"),
            "autotermination_minutes": float(body.get("autotermination_minutes", 0)),
        } | {k: body.get(k, {}) for k in ("spark_conf", "spark_env_vars", "custom_tags")}
        return httpx.Response(201, json=self.add_cluster("PENDING", state_message="starting", **fields))

    def _change(self, cluster_id: int, action: str, body: dict[str, Any] | None) -> httpx.Response:
        """The four actions, as services/clusters.py takes them (the same states refused with 409)."""
        cluster = self.clusters[cluster_id]
        state = cluster["state"]
        if action == "start" and state == "TERMINATED":
            self._move_cluster(cluster_id, "PENDING", state_message="starting", termination_reason=None)
            self.cluster_steps[cluster_id] = ["RUNNING"]
        elif action == "start" and state not in ("PENDING", "RUNNING", "RESIZING", "RESTARTING"):
            return _error(409, f"Cluster {cluster_id} is {state}; it can be started once it is TERMINATED")
        elif action == "restart":
            if state not in ("RUNNING", "RESIZING", "ERROR"):
                return _error(409, f"Cluster {cluster_id} is {state}; only a RUNNING or ERROR cluster can be restarted")
            self._move_cluster(cluster_id, "RESTARTING", state_message="restarting", master_url=None)
            self.cluster_steps[cluster_id] = ["RUNNING"]
        elif action == "resize":
            assert body is not None
            self.cluster_bodies.append(body)
            if state not in ("RUNNING", "RESIZING"):
                return _error(409, f"Cluster {cluster_id} is {state}; only a RUNNING cluster can be resized")
            scale = body.get("autoscale")
            target = body.get("num_workers")
            if scale is not None:  # a new range keeps the current size when it lies inside it, as the server does
                target = min(max(cluster["target_workers"], scale["min_workers"]), scale["max_workers"])
            cluster.update(num_workers=body.get("num_workers"), autoscale=scale, target_workers=target)
            self._move_cluster(cluster_id, "RESIZING", state_message=f"resizing to {target} workers")
            self.cluster_steps[cluster_id] = ["RUNNING"]
        elif action == "terminate" and state not in ("TERMINATING", "TERMINATED"):
            reason = {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": "alice"}}
            self._move_cluster(cluster_id, "TERMINATING", state_message="terminating", termination_reason=reason)
            self.cluster_steps[cluster_id] = ["TERMINATED"]
        return httpx.Response(200, json=cluster)

    def _move_cluster(self, cluster_id: int, state: str, **fields: Any) -> None:
        cluster = self.clusters[cluster_id]
        arrival: dict[str, Any] = {}
        if state == "RUNNING":
            workers = cluster["target_workers"]
            arrival = {"master_url": MASTER_URL, "spark_ui_url": MASTER_UI, "start_time": NOW.isoformat()}
            arrival["state_message"] = f"running with {workers} worker(s)"
        elif state == "TERMINATED":
            arrival = {"master_url": None, "spark_ui_url": None, "terminated_time": NOW.isoformat()}
            arrival["state_message"] = "terminated"
        cluster.update(state=state, **(arrival | fields))
        self._event(cluster_id, state, {"workers": cluster["target_workers"]} if state == "RUNNING" else fields)

    def _event(self, cluster_id: int, kind: str, details: dict[str, Any]) -> None:
        at = (NOW + dt.timedelta(seconds=len(self.cluster_events[cluster_id]))).isoformat()
        self.cluster_events[cluster_id].append(
            {"cluster_id": cluster_id, "timestamp": at, "type": kind, "details": details}
        )

    def _events_page(self, cluster_id: int, params: httpx.QueryParams) -> httpx.Response:
        found = self.cluster_events[cluster_id]
        if params.get("order", "asc") == "desc":
            found = found[::-1]
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 50))
        return httpx.Response(200, json={"offset": offset, "total": len(found), "events": found[offset:][:limit]})

    def _nodes(self, cluster: dict[str, Any]) -> list[dict[str, Any]]:
        if cluster["state"] not in ("RUNNING", "RESIZING"):
            return []
        uid = f"c{cluster['cluster_id']}"
        master = {
            "key": f"{uid}-g1-master", "role": "master", "state": "RUNNING", "native_state": "running",
            "host": "10.0.0.5", "registered": True, "cores": None, "cores_used": None, "memory_mb": None,
        }  # fmt: skip
        worker = master | {"role": "worker", "cores": 1, "cores_used": 0, "memory_mb": 1024}
        workers = [
            worker | {"key": f"{uid}-g1-worker-{i}", "host": f"10.0.0.{6 + i}"}
            for i in range(cluster["target_workers"])
        ]
        return [master, *workers]
