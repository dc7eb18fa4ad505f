"""Wire shapes of clusters: Databricks' Clusters API field names, so its clients read them without surprise."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.domain.clusters import NODE_TYPES
from sparkplane.services.clusters import ClusterRequest, ClusterView


class Autoscale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_workers: int
    max_workers: int


class ClusterCreate(BaseModel):
    """POST /api/v1/clusters. Give num_workers (a fixed size) or autoscale, not both."""

    model_config = ConfigDict(extra="forbid")

    cluster_name: str
    node_type_id: str | None = Field(None, description=f"One of {', '.join(NODE_TYPES)}; sp.small when unset")
    num_workers: int | None = None
    autoscale: Autoscale | None = None
    spark_conf: dict[str, str] = Field(default_factory=dict)
    spark_env_vars: dict[str, str] = Field(default_factory=dict)
    autotermination_minutes: float | None = Field(None, description="Terminate after this long idle; 0 never")
    custom_tags: dict[str, str] = Field(default_factory=dict)
    spark_version: str | None = Field(None, description="Accepted for Databricks clients; the installed Spark runs")

    def to_request(self) -> ClusterRequest:
        data = self.model_dump()
        return ClusterRequest(**data)


class ClusterResize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_workers: int | None = None
    autoscale: Autoscale | None = None


class Cluster(BaseModel):
    cluster_id: int
    cluster_name: str
    state: str
    state_message: str | None
    creator_user_name: str
    provider: str
    node_type_id: str
    num_workers: int | None
    autoscale: Autoscale | None
    target_workers: int
    spark_conf: dict[str, str]
    spark_env_vars: dict[str, str]
    autotermination_minutes: float
    custom_tags: dict[str, str]
    master_url: str | None = Field(description="spark:// URL of the cluster's master")
    spark_ui_url: str | None = Field(description="The master's web UI")
    termination_reason: dict[str, Any] | None
    created_at: dt.datetime
    start_time: dt.datetime | None
    terminated_time: dt.datetime | None
    last_activity_time: dt.datetime

    @classmethod
    def of(cls, view: ClusterView) -> Cluster:
        spec = view.spec
        scaling = spec.get("autoscale")
        return cls(
            cluster_id=view.id,
            cluster_name=view.name,
            state=view.state.value,
            state_message=view.state_message,
            creator_user_name=view.owner,
            provider=view.provider,
            node_type_id=str(spec.get("node_type_id")),
            num_workers=spec.get("num_workers"),
            autoscale=Autoscale(**scaling) if scaling else None,
            target_workers=view.target_workers,
            spark_conf=dict(spec.get("spark_conf") or {}),
            spark_env_vars=dict(spec.get("spark_env_vars") or {}),
            autotermination_minutes=float(spec.get("autotermination_minutes") or 0),
            custom_tags=dict(spec.get("custom_tags") or {}),
            master_url=view.master_url,
            spark_ui_url=view.ui_url,
            termination_reason=dict(view.termination_reason) if view.termination_reason else None,
            created_at=view.created_at,
            start_time=view.started_at,
            terminated_time=view.terminated_at,
            last_activity_time=view.last_activity_at,
        )


class ClusterPage(BaseModel):
    offset: int
    total: int
    items: list[Cluster]


class ClusterEvent(BaseModel):
    cluster_id: int
    timestamp: dt.datetime
    type: str
    details: dict[str, Any]


class ClusterEventPage(BaseModel):
    offset: int
    total: int
    events: list[ClusterEvent]


class ClusterNode(BaseModel):
    key: str
    role: str
    state: str
    native_state: str
    host: str | None
    registered: bool = Field(description="The master lists this worker as ALIVE")
    cores: int | None
    cores_used: int | None
    memory_mb: int | None


class NodeType(BaseModel):
    node_type_id: str
    num_cores: int
    memory_mb: int
    description: str


class NodeReport(BaseModel):
    """What a node of a cloud cluster reports about itself (its bootstrap posts it every few seconds)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    role: str
    host: str | None = None
    spark_url: str | None = None
    ui_url: str | None = None
    master_json: dict[str, Any] | None = None
