"""The `sparkplane` command: server roles and the client commands."""

from __future__ import annotations

import typer

from sparkplane import __version__
from sparkplane.cli import client_commands, cluster_commands, server, session_commands, up, workspace_commands

app = typer.Typer(
    name="sparkplane",
    help="A self-hosted control plane for Apache Spark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("up")(up.up)
app.command("api")(server.api)
app.command("worker")(server.worker)
app.command("cleanup")(server.cleanup)
app.command("config")(server.config)
app.add_typer(server.watch_app, name="watch")
app.add_typer(server.db_app, name="db")


app.command("login")(client_commands.login)
app.add_typer(client_commands.batches_app, name="batches", help="Submit and follow Spark batches.")
app.add_typer(client_commands.users_app, name="users", help="Manage users (admins).")
app.add_typer(client_commands.tokens_app, name="tokens", help="Manage your API tokens.")
app.add_typer(session_commands.sessions_app, name="sessions", help="Start and use interactive Spark sessions.")
app.command("shell")(session_commands.shell)
app.add_typer(cluster_commands.clusters_app, name="clusters", help="Create and manage Spark standalone clusters.")
app.add_typer(workspace_commands.workspace_app, name="workspace", help="List, export and import notebooks.")


@app.command("version")
def version() -> None:
    """Print sparkplane's version."""
    typer.echo(__version__)


def main() -> None:
    app()
