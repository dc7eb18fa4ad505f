"""Clusters under /api/v1/clusters: Databricks' operations (create, start, restart, resize, terminate,
permanent delete, events) as clean REST."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Response

from sparkplane.api.cluster_schemas import (
    Cluster,
    ClusterCreate,
    ClusterEvent,
    ClusterEventPage,
    ClusterNode,
    ClusterPage,
    ClusterResize,
    NodeReport,
    NodeType,
)
from sparkplane.api.deps import CtxDep, PrincipalDep
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.domain.clusters import NODE_TYPES
from sparkplane.domain.errors import Unauthenticated
from sparkplane.services import cluster_nodes, clusters

router = APIRouter(prefix="/api/v1/clusters", tags=["clusters"], responses=NATIVE_ERRORS)


@router.post("", status_code=201, response_model=Cluster)
def create(body: ClusterCreate, ctx: CtxDep, principal: PrincipalDep, response: Response) -> Cluster:
    view = clusters.create(ctx, principal, body.to_request())
    response.headers["Location"] = f"/api/v1/clusters/{view.id}"
    return Cluster.of(view)


@router.get("", response_model=ClusterPage)
def list_clusters(
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    state: str | None = Query(None, description="Only clusters in this state"),
) -> ClusterPage:
    views, total = clusters.page(ctx, principal, offset, limit, state)
    return ClusterPage(offset=offset, total=total, items=[Cluster.of(v) for v in views])


@router.get("/node-types", response_model=list[NodeType])
def node_types(principal: PrincipalDep) -> list[NodeType]:
    return [
        NodeType(node_type_id=n.id, num_cores=n.cores, memory_mb=n.memory_mb, description=n.description)
        for n in NODE_TYPES.values()
    ]


@router.get("/{cluster_id}", response_model=Cluster)
def get(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> Cluster:
    return Cluster.of(clusters.get(ctx, principal, cluster_id))


@router.post("/{cluster_id}/start", response_model=Cluster)
def start(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> Cluster:
    return Cluster.of(clusters.start(ctx, principal, cluster_id))


@router.post("/{cluster_id}/restart", response_model=Cluster)
def restart(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> Cluster:
    return Cluster.of(clusters.restart(ctx, principal, cluster_id))


@router.post("/{cluster_id}/resize", response_model=Cluster)
def resize(cluster_id: int, body: ClusterResize, ctx: CtxDep, principal: PrincipalDep) -> Cluster:
    scaling = body.autoscale.model_dump() if body.autoscale else None
    return Cluster.of(clusters.resize(ctx, principal, cluster_id, num_workers=body.num_workers, autoscale=scaling))


@router.post("/{cluster_id}/terminate", response_model=Cluster)
def terminate(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> Cluster:
    return Cluster.of(clusters.terminate(ctx, principal, cluster_id))


@router.delete("/{cluster_id}", status_code=204)
def delete(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Delete a terminated cluster for good (Databricks' permanent-delete); 409 while it still runs."""
    clusters.delete(ctx, principal, cluster_id)
    return Response(status_code=204)


@router.get("/{cluster_id}/events", response_model=ClusterEventPage)
def events(
    cluster_id: int,
    ctx: CtxDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
    order: str = Query("asc", pattern="^(asc|desc)$"),
) -> ClusterEventPage:
    found, total = clusters.events(ctx, principal, cluster_id, offset, limit, descending=order == "desc")
    return ClusterEventPage(offset=offset, total=total, events=[ClusterEvent.model_validate(e) for e in found])


@router.get("/{cluster_id}/nodes", response_model=list[ClusterNode])
def nodes(cluster_id: int, ctx: CtxDep, principal: PrincipalDep) -> list[ClusterNode]:
    return [ClusterNode.model_validate(n) for n in cluster_nodes.nodes(ctx, principal, cluster_id)]


@router.post("/by-uid/{cluster_uid}/report", status_code=204, include_in_schema=True)
def report(cluster_uid: str, body: NodeReport, ctx: CtxDep, authorization: str | None = Header(None)) -> Response:
    """A cloud cluster's node reports itself; authenticated by that cluster's report token, not a user."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send the cluster's report token as 'Authorization: Bearer <token>'")
    clusters.store_report(ctx, cluster_uid, token.strip(), body.model_dump())
    return Response(status_code=204)
