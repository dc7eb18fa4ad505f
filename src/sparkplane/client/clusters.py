"""Clusters: the SDK's part for /api/v1/clusters (Spark standalone clusters, managed as Databricks' are).

    with Client(url, token=token) as sp:
        cluster = sp.create_cluster("etl", autoscale=(1, 4), node_type="sp.medium")   # waits until RUNNING
        print(cluster.master_url, cluster.spark_ui_url)
        sp.submit_batch("jobs/etl.py", cluster_id=cluster.cluster_id)
        sp.terminate_cluster(cluster.cluster_id, wait=True)

`create_cluster` waits by default, since a cluster is of use only once it runs; the other changes answer at
once unless asked to `wait`. Every wait polls through `Client._poll`, so it rides out a short server outage.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sparkplane.client._plumbing import ClientPlumbing
from sparkplane.client.errors import ClientError
from sparkplane.client.models import (
    CLUSTER_STATES,
    ClusterEventPage,
    ClusterInfo,
    ClusterNode,
    ClusterPage,
    NodeType,
)

OnClusterUpdate = Callable[[ClusterInfo], None]

# A cluster takes tens of seconds (local processes) to minutes (cloud machines) to start or resize: a look
# every two seconds shows a person the change soon enough at half the requests of the sessions' one second.
CLUSTER_POLL_SECONDS = 2.0
_PATH = "/api/v1/clusters"
_RUNNING = ("RUNNING",)


class ClusterFailed(ClientError):
    """The cluster ended ERROR or TERMINATED while it was waited for, before it reached the wanted state."""

    def __init__(self, cluster: ClusterInfo) -> None:
        reason = cluster.termination_reason.code if cluster.termination_reason else None
        why = ", ".join(p for p in (cluster.detail, reason) if p)
        super().__init__(f"cluster {cluster.cluster_id} ended {cluster.state}" + (f": {why}" if why else ""))
        self.cluster = cluster


class ClustersMixin(ClientPlumbing):
    """The cluster routes of `Client`."""

    def create_cluster(
        self,
        name: str,
        *,
        num_workers: int | None = None,
        autoscale: tuple[int, int] | None = None,
        node_type: str | None = None,
        spark_conf: Mapping[str, str] | None = None,
        spark_env_vars: Mapping[str, str] | None = None,
        autotermination_minutes: float | None = None,
        custom_tags: Mapping[str, str] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Create a cluster of `num_workers` workers, or of `autoscale=(min, max)`; with `wait` (the default),
        return once it is RUNNING. `node_type` is one of `node_types()` (the server's default: sp.small);
        `autotermination_minutes` idle minutes end it (0: never).

        Raises `ClusterFailed` when it ends ERROR or TERMINATED instead. A `WaitTimeout` leaves the cluster
        starting (its id is in the message): unlike a session, a slow cluster is still worth having, and
        `autotermination_minutes` ends a forgotten one."""
        body: dict[str, Any] = {
            "cluster_name": name,
            **_scaling(num_workers, autoscale),
            "node_type_id": node_type,
            "spark_conf": _strings(spark_conf),
            "spark_env_vars": _strings(spark_env_vars),
            "autotermination_minutes": autotermination_minutes,
            "custom_tags": _strings(custom_tags),
        }
        body = {k: v for k, v in body.items() if v is not None}  # unset options keep the server's defaults
        info = self._parse(self._request("POST", _PATH, json=body), ClusterInfo)
        return self._settle(info, _RUNNING, wait=wait, timeout=timeout, on_update=on_update, poll=poll)

    def list_clusters(self, state: str | None = None, offset: int = 0, limit: int = 100) -> ClusterPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = state
        return self._parse(self._request("GET", _PATH, params=params), ClusterPage)

    def get_cluster(self, cluster_id: int) -> ClusterInfo:
        return self._parse(self._request("GET", f"{_PATH}/{cluster_id}"), ClusterInfo)

    def start_cluster(
        self,
        cluster_id: int,
        *,
        wait: bool = False,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Start a TERMINATED cluster again (one that is starting or running is left as it is); with `wait`,
        return once it is RUNNING."""
        return self._act(
            cluster_id, "start", None, _RUNNING, wait=wait, timeout=timeout, on_update=on_update, poll=poll
        )

    def restart_cluster(
        self,
        cluster_id: int,
        *,
        wait: bool = False,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Restart a RUNNING or ERROR cluster on fresh processes; with `wait`, return once it is RUNNING."""
        return self._act(
            cluster_id, "restart", None, _RUNNING, wait=wait, timeout=timeout, on_update=on_update, poll=poll
        )

    def resize_cluster(
        self,
        cluster_id: int,
        *,
        num_workers: int | None = None,
        autoscale: tuple[int, int] | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Give a RUNNING cluster a fixed size or a new autoscale range; with `wait`, return once it is
        RUNNING at that size."""
        body = _scaling(num_workers, autoscale)
        return self._act(
            cluster_id, "resize", body, _RUNNING, wait=wait, timeout=timeout, on_update=on_update, poll=poll
        )

    def terminate_cluster(
        self,
        cluster_id: int,
        *,
        wait: bool = False,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Stop the cluster's machines, keeping its definition (start it again later). Idempotent. With `wait`,
        return once it is TERMINATED; `ClusterFailed` if it ends ERROR instead."""
        return self._act(
            cluster_id, "terminate", None, ("TERMINATED",), wait=wait, timeout=timeout, on_update=on_update, poll=poll
        )

    def delete_cluster(self, cluster_id: int) -> None:
        """Delete a TERMINATED cluster for good, with its timeline; the server refuses (409) while it runs."""
        self._request("DELETE", f"{_PATH}/{cluster_id}")

    def cluster_events(
        self, cluster_id: int, *, offset: int = 0, limit: int = 50, newest_first: bool = False
    ) -> ClusterEventPage:
        """A page of the cluster's timeline, oldest first unless `newest_first`; at most 500 per page."""
        params = {"offset": offset, "limit": limit, "order": "desc" if newest_first else "asc"}
        return self._parse(self._request("GET", f"{_PATH}/{cluster_id}/events", params=params), ClusterEventPage)

    def cluster_nodes(self, cluster_id: int) -> list[ClusterNode]:
        return self._parse(self._request("GET", f"{_PATH}/{cluster_id}/nodes"), list[ClusterNode])

    def node_types(self) -> list[NodeType]:
        return self._parse(self._request("GET", f"{_PATH}/node-types"), list[NodeType])

    def wait_cluster(
        self,
        cluster_id: int,
        states: Collection[str] = _RUNNING,
        *,
        timeout: float | None = None,
        on_update: OnClusterUpdate | None = None,
        poll: float = CLUSTER_POLL_SECONDS,
    ) -> ClusterInfo:
        """Poll until the cluster is in one of `states` and return it; `ClusterFailed` if it ends (ERROR,
        TERMINATED) in another first, `WaitTimeout` after `timeout` seconds."""
        unknown = set(states) - set(CLUSTER_STATES)
        if unknown or not states:
            raise ValueError(f"wait for one or more of {', '.join(CLUSTER_STATES)}, not {sorted(unknown)}")

        def read() -> ClusterInfo:
            info = self.get_cluster(cluster_id)
            if on_update is not None:
                on_update(info)
            if info.is_final and info.state not in states:
                raise ClusterFailed(info)
            return info

        delays = itertools.repeat(poll)
        what = f"cluster {cluster_id}"
        return self._poll(read, lambda c: c.state in states, delays=delays, timeout=timeout, what=what)

    # ---- plumbing -------------------------------------------------------------------------------------

    def _act(
        self,
        cluster_id: int,
        action: str,
        body: dict[str, Any] | None,
        states: Collection[str],
        *,
        wait: bool,
        timeout: float | None,
        on_update: OnClusterUpdate | None,
        poll: float,
    ) -> ClusterInfo:
        """POST one of the cluster's actions; then, with `wait`, wait for `states`."""
        response = self._request("POST", f"{_PATH}/{cluster_id}/{action}", json=body)
        info = self._parse(response, ClusterInfo)
        return self._settle(info, states, wait=wait, timeout=timeout, on_update=on_update, poll=poll)

    def _settle(
        self,
        info: ClusterInfo,
        states: Collection[str],
        *,
        wait: bool,
        timeout: float | None,
        on_update: OnClusterUpdate | None,
        poll: float,
    ) -> ClusterInfo:
        """The server's answer to a change, shown to `on_update`; with `wait`, the cluster once in `states`."""
        if on_update is not None:
            on_update(info)
        if not wait or info.state in states:
            return info
        return self.wait_cluster(info.cluster_id, states, timeout=timeout, on_update=on_update, poll=poll)


def _scaling(num_workers: int | None, autoscale: tuple[int, int] | None) -> dict[str, Any]:
    """The size part of a create or resize body: a fixed size or an autoscale range, exactly one of them."""
    if (num_workers is None) == (autoscale is None):
        raise ValueError("give num_workers (a fixed size) or autoscale=(min_workers, max_workers), one of them")
    if autoscale is not None:
        low, high = autoscale
        return {"autoscale": {"min_workers": low, "max_workers": high}}
    return {"num_workers": num_workers}


def _strings(values: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Values as strings, as the API takes them; None (left out of the body) for none at all."""
    return {str(k): str(v) for k, v in values.items()} if values else None
