"""`sparkplane workspace …`: your notebooks from a terminal, through the SDK: list them, export one as
.ipynb or .py, import a file. Options and errors work as in client_commands (`--url`/`--token`, one red
line and exit 1 for a failure, `--json` for scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sparkplane.cli import client_commands as base
from sparkplane.cli.client_commands import JsonOpt, TokenOpt, UrlOpt
from sparkplane.client.workspace import FORMATS

workspace_app = typer.Typer(help="List, export and import notebooks.", no_args_is_help=True)


@workspace_app.command("ls")
@base._cli_errors
def list_workspace(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Your notebooks, with the folder each is in."""
    with base._client(url, token) as sp:
        tree = sp.workspace()
    if as_json:
        typer.echo(json.dumps(tree.model_dump(), indent=2))
        return
    if not tree.notebooks:
        typer.echo("No notebooks yet: import one with `sparkplane workspace import FILE`.")
    for notebook in sorted(tree.notebooks, key=lambda n: (tree.path_of(n.folder_id), n.name)):
        folder = tree.path_of(notebook.folder_id)
        attached = f"  (attached to session {notebook.session_id})" if notebook.session_id else ""
        typer.echo(f"{notebook.id:>5}  {folder.rstrip('/')}/{notebook.name}{attached}")


@workspace_app.command("export")
@base._cli_errors
def export(
    notebook_id: Annotated[int, typer.Argument(metavar="ID", help="Notebook id (see `sparkplane workspace ls`)")],
    file_format: Annotated[str, typer.Option("--format", "-f", help="ipynb (with outputs) or py")] = "ipynb",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; '-' for stdout (default: its name, here)")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Write a notebook to a file."""
    if file_format not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    with base._client(url, token) as sp:
        name, content = sp.export_notebook(notebook_id, file_format)
    if output is not None and str(output) == "-":
        typer.echo(content.decode(), nl=False)
        return
    target = output or Path(name)
    target.write_bytes(content)
    typer.echo(f"Wrote {target} ({len(content)} bytes)")


@workspace_app.command("import")
@base._cli_errors
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An .ipynb or .py file")],
    folder: Annotated[int | None, typer.Option("--folder", help="Folder id to put it in (default: the top)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Its name (default: the file's)")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a notebook from a file."""
    with base._client(url, token) as sp:
        made = sp.import_notebook(path, folder_id=folder, name=name)
    if as_json:
        typer.echo(json.dumps(made.model_dump(), indent=2))
    else:
        typer.echo(f"Notebook {made.id} ({made.name}) with {len(made.cells)} cells")
