"""`sparkplane clusters …`: Spark standalone clusters from a terminal, through the SDK.

`create` waits until the cluster runs (a live state line meanwhile) and prints its master and Spark UI;
`start`, `restart`, `resize` and `terminate` answer at once unless given `--wait`. A wait that ends in ERROR
exits 1 with the server's state message. Options and errors work as in client_commands: `--url`/`--token`,
one red line and exit 1 for a failure, exit 2 for a usage error, `--json` for scripts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from sparkplane.cli import client_commands as base
from sparkplane.cli.client_commands import JsonOpt, TokenOpt, UrlOpt
from sparkplane.client import Client, ClusterInfo, cluster_display, display

# Seconds between polls while waiting: a cluster changes state in tens of seconds at best, so this is the
# SDK's own pace. Module-level so tests can set it to 0.
POLL_SECONDS = 2.0

clusters_app = typer.Typer(
    help="Create, resize, inspect and terminate Spark standalone clusters.", no_args_is_help=True
)
ClusterArg = Annotated[int, typer.Argument(metavar="ID", help="Cluster id")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=0, help="A fixed number of workers")]
AutoscaleOpt = Annotated[
    str | None, typer.Option("--autoscale", metavar="MIN:MAX", help="Scale between MIN and MAX workers with demand")
]
Wait = Callable[[cluster_display.ClusterStatus], ClusterInfo]


def _scaling(workers: int | None, autoscale: str | None) -> tuple[int | None, tuple[int, int] | None]:
    """--workers N or --autoscale MIN:MAX, exactly one: a usage error (exit 2) otherwise."""
    if (workers is None) == (autoscale is None):
        raise typer.BadParameter("give --workers N or --autoscale MIN:MAX (one of them)", param_hint="--workers")
    if autoscale is None:
        return workers, None
    low, sep, high = autoscale.partition(":")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()):
        raise typer.BadParameter(f"{autoscale!r} is not MIN:MAX, e.g. 1:4", param_hint="--autoscale")
    if int(low) > int(high):
        raise typer.BadParameter(f"MIN ({int(low)}) is larger than MAX ({int(high)})", param_hint="--autoscale")
    return None, (int(low), int(high))


def _waiting(cluster: ClusterInfo | None, wait: Wait, *, doing: str) -> ClusterInfo:
    """Run `wait` behind a live state line. Ctrl-C stops the waiting only: the cluster goes on `doing`."""
    status = cluster_display.ClusterStatus(cluster)
    try:
        with base._out().status(status):
            return wait(status)
    except KeyboardInterrupt:
        seen = status.cluster
        if seen is None:
            said = "Stopped waiting; `sparkplane clusters list` shows whether the cluster was created."
        else:
            cid = seen.cluster_id
            said = f"Stopped waiting; cluster {cid} goes on {doing}: `sparkplane clusters show {cid}` shows it"
            said += "." if doing == "terminating" else f", `sparkplane clusters terminate {cid}` stops it."
        Console(stderr=True, highlight=False).print(said, soft_wrap=True)
        raise typer.Exit(130) from None


def _report(cluster: ClusterInfo) -> None:
    """A running cluster's line, master URL, Spark UI and how to use it; for any other state, its line."""
    out = base._out()
    out.print(cluster_display.cluster_ready(cluster), soft_wrap=True)
    if not cluster.is_running:
        return
    cid = cluster.cluster_id
    for label, value in (("master", cluster.master_url), ("spark ui", cluster.spark_ui_url)):
        if value:
            out.print(Text(f"  {label + ':':<11}{value}"), soft_wrap=True)
    out.print(f"  {'session:':<11}sparkplane sessions create --cluster {cid}")
    out.print(f"  {'batch:':<11}sparkplane batches submit --cluster {cid} FILE")
    out.print(f"  {'terminate:':<11}sparkplane clusters terminate {cid}")


def _changed(sp: Client, cluster: ClusterInfo, *, wait: bool, until: str, doing: str) -> None:
    """After start/restart/resize/terminate: with --wait, wait for `until`; then say where it stands."""
    if wait and cluster.state != until:
        cid = cluster.cluster_id

        def wait_for(status: cluster_display.ClusterStatus) -> ClusterInfo:
            return sp.wait_cluster(cid, (until,), on_update=status.update, poll=POLL_SECONDS)

        cluster = _waiting(cluster, wait_for, doing=doing)
    if cluster.state == until or cluster.is_final:
        _report(cluster)
    else:
        cid = cluster.cluster_id
        line = Text.assemble(f"Cluster {cid} is ", display.state_text(cluster.state))
        base._out().print(line, f"; `sparkplane clusters show {cid}` shows when it is {until}", sep="", soft_wrap=True)


# ---- create, list, show -----------------------------------------------------------------------------------


@clusters_app.command("create")
@base._cli_errors
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A name for the cluster")],
    workers: WorkersOpt = None,
    autoscale: AutoscaleOpt = None,
    node_type: Annotated[
        str | None, typer.Option("--node-type", help="Worker size, e.g. sp.small (the default); see node-types")
    ] = None,
    conf: Annotated[list[str] | None, typer.Option("--conf", help="Spark configuration key=value; repeatable")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="Environment variable K=V; repeatable")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag key=value for its machines; repeatable")] = None,
    autoterminate: Annotated[
        float | None,
        typer.Option("--autoterminate", metavar="MINUTES", min=0, help="Terminate after this long idle; 0 never"),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the cluster is RUNNING")] = True,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a cluster of --workers N or --autoscale MIN:MAX workers; wait until it runs (exit 1 on ERROR)."""
    num_workers, scaling = _scaling(workers, autoscale)
    spark_conf = base._conf(conf or [])
    env_vars, tags = base._conf(env or [], option="--env"), base._conf(tag or [], option="--tag")
    with base._client(url, token) as sp:

        def make(status: cluster_display.ClusterStatus | None) -> ClusterInfo:
            return sp.create_cluster(
                name,
                num_workers=num_workers,
                autoscale=scaling,
                node_type=node_type,
                spark_conf=spark_conf,
                spark_env_vars=env_vars,
                autotermination_minutes=autoterminate,
                custom_tags=tags,
                wait=status is not None,
                on_update=None if status is None else status.update,
                poll=POLL_SECONDS,
            )

        cluster = _waiting(None, make, doing="starting") if wait else make(None)
    if json_out:
        base._print_json(cluster.model_dump(mode="json"))
    elif cluster.is_running:
        _report(cluster)
    else:
        cid = cluster.cluster_id
        base._out().print(
            f"Created cluster [bold]{cid}[/] ({cluster.state}); `sparkplane clusters show {cid}` shows it"
        )


@clusters_app.command("list")
@base._cli_errors
def list_clusters(
    state: Annotated[str | None, typer.Option("--state", help="Only clusters in this state, e.g. RUNNING")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many of the newest")] = 20,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The newest clusters, newest first."""
    state = state.upper() if state else None  # Databricks' states are upper case; take "running" too
    with base._client(url, token) as sp:
        page = functools.partial(sp.list_clusters, state)
        base._print_newest(page, limit, cluster_display.clusters_table, json_out=json_out, none="No clusters.")


@clusters_app.command("show")
@base._cli_errors
def show(cluster_id: ClusterArg, json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """A cluster's details and its machines."""
    with base._client(url, token) as sp:
        cluster = sp.get_cluster(cluster_id)
        nodes = sp.cluster_nodes(cluster_id)
    if json_out:
        base._print_json(
            {"cluster": cluster.model_dump(mode="json"), "nodes": [n.model_dump(mode="json") for n in nodes]}
        )
        return
    base._out().print(cluster_display.cluster_details(cluster, nodes))


# ---- start, restart, resize, terminate, delete -------------------------------------------------------------

WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until it is done (exit 1 if it ends in ERROR)")]


@clusters_app.command("start")
@base._cli_errors
def start(cluster_id: ClusterArg, wait: WaitOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Start a TERMINATED cluster again, with its definition as it was."""
    with base._client(url, token) as sp:
        _changed(sp, sp.start_cluster(cluster_id), wait=wait, until="RUNNING", doing="starting")


@clusters_app.command("restart")
@base._cli_errors
def restart(cluster_id: ClusterArg, wait: WaitOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Restart a RUNNING or ERROR cluster: a new master and new workers, with its definition as it is."""
    with base._client(url, token) as sp:
        _changed(sp, sp.restart_cluster(cluster_id), wait=wait, until="RUNNING", doing="restarting")


@clusters_app.command("resize")
@base._cli_errors
def resize(
    cluster_id: ClusterArg,
    workers: WorkersOpt = None,
    autoscale: AutoscaleOpt = None,
    wait: WaitOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Give a RUNNING cluster --workers N or a new --autoscale MIN:MAX range."""
    num_workers, scaling = _scaling(workers, autoscale)
    with base._client(url, token) as sp:
        cluster = sp.resize_cluster(cluster_id, num_workers=num_workers, autoscale=scaling)
        _changed(sp, cluster, wait=wait, until="RUNNING", doing="resizing")


@clusters_app.command("terminate")
@base._cli_errors
def terminate(cluster_id: ClusterArg, wait: WaitOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Stop a cluster's machines and the work on them; its definition stays (`start` it again later)."""
    with base._client(url, token) as sp:
        _changed(sp, sp.terminate_cluster(cluster_id), wait=wait, until="TERMINATED", doing="terminating")


@clusters_app.command("delete")
@base._cli_errors
def delete(cluster_id: ClusterArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a TERMINATED cluster for good, with its timeline."""
    with base._client(url, token) as sp:
        sp.delete_cluster(cluster_id)
    base._out().print(f"Deleted cluster {cluster_id}")


# ---- events, node types -----------------------------------------------------------------------------------


@clusters_app.command("events")
@base._cli_errors
def events(
    cluster_id: ClusterArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many of the newest")] = 50,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The newest events of a cluster's timeline, oldest of them first."""
    with base._client(url, token) as sp:
        page = sp.cluster_events(cluster_id, limit=limit, newest_first=True)
    found = list(reversed(page.events))
    if json_out:
        base._print_json([e.model_dump(mode="json") for e in found])
        return
    base._out().print(cluster_display.cluster_events_table(found) if found else f"No events for cluster {cluster_id}.")


@clusters_app.command("node-types")
@base._cli_errors
def node_types(json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """The worker sizes a cluster can have (--node-type)."""
    with base._client(url, token) as sp:
        found = sp.node_types()
    if json_out:
        base._print_json([n.model_dump(mode="json") for n in found])
        return
    base._out().print(cluster_display.node_types_table(found))
