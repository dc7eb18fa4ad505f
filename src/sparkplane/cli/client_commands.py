"""The client half of the `sparkplane` CLI: `login`, `batches`, `users`, `tokens`. It talks to a server
through the SDK only (sparkplane.client), so it works against any sparkplane reachable over HTTP.

Output: human text and tables on stdout, errors as one red line on stderr with exit code 1 (2 for usage),
and `--json` for scripts. Every command takes `--url`/`--token` (or SPARKPLANE_URL/SPARKPLANE_TOKEN, or
the profile that `login` saves).
"""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, NoReturn, ParamSpec, Protocol, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text

from sparkplane.client import ApiError, Batch, Client, ClientError, config, display

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
M_co = TypeVar("M_co", bound=BaseModel, covariant=True)

# Seconds between polls while waiting or following a log: a batch's state changes on the server's reconcile
# tick (seconds), so polling faster only adds load. Module-level so tests can set it to 0.
POLL_SECONDS = 1.0


def make_client(
    url: str, *, token: str | None = None, username: str | None = None, password: str | None = None
) -> Client:
    """Every command gets its Client here, so tests can substitute one on an httpx.MockTransport."""
    return Client(url, token=token, username=username, password=password)


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", envvar=config.ENV_URL, help="Server URL (default: the saved profile's, else http://127.0.0.1:8998)"
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar=config.ENV_TOKEN, help="API token (default: the saved profile's)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]
ClusterOpt = Annotated[
    int | None, typer.Option("--cluster", metavar="ID", help="Run on this cluster (see `sparkplane clusters list`)")
]

batches_app = typer.Typer(help="Submit, watch, inspect and kill Spark batch jobs.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users (admins only, except for your own password).", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage your API tokens.", no_args_is_help=True)


def _out() -> Console:
    # Built per call, not at import: Rich binds sys.stdout lazily, but a fresh Console also re-reads the terminal.
    return Console(highlight=False)


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(Text(f"error: {message}", style="red"), soft_wrap=True)
    raise typer.Exit(1)


def _cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """One red line and exit 1 for every client-side failure: never a traceback for a user's mistake."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            _fail(f"{exc.message} (HTTP {exc.status})")
        except ClientError as exc:  # ServerUnreachable's message already names the URL and `sparkplane up`
            _fail(exc.message)

    return wrapper


def _client(url: str | None, token: str | None) -> Client:
    resolved = config.resolve(url, token)
    if resolved.token is None:
        # Every route but health needs a principal: say how to get one instead of sending a request bound to 401.
        _fail(f"not logged in to {resolved.url}: run `sparkplane login`, or pass --token or set {config.ENV_TOKEN}")
    return make_client(resolved.url, token=resolved.token)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# ---- login ------------------------------------------------------------------------------------------------


@_cli_errors
def login(
    url: UrlOpt = None,
    username: Annotated[str | None, typer.Option("--username", "-u", help="Log in with a password")] = None,
    password: Annotated[str | None, typer.Option("--password", help="Prompted, hidden, when missing")] = None,
    token: TokenOpt = None,
) -> None:
    """Save the server URL and an API token in your profile, so later commands need neither."""
    server = config.resolve(url, None).url
    if username is None and token is None:
        username = typer.prompt("Username")
    if username is not None:
        if password is None:
            password = typer.prompt("Password", hide_input=True)
        with make_client(server, username=username, password=password) as sp:
            user = sp.me()  # wrong credentials fail here, before a token is made
            _, secret = sp.create_token(f"cli@{socket.gethostname()}")
    else:
        assert token is not None
        with make_client(server, token=token) as sp:
            user = sp.me()
        secret = token
    path = config.save_profile(server, secret)
    _out().print(
        f"Logged in to {escape(server)} as [bold]{escape(user.username)}[/]; token saved in {escape(str(path))}"
    )


# ---- batches ----------------------------------------------------------------------------------------------


@batches_app.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@_cli_errors
def submit(
    file: Annotated[
        str, typer.Argument(help="The application: a local file (uploaded first), an upload URI or s3://…")
    ],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the application, '-' ones too")] = None,
    class_name: Annotated[str | None, typer.Option("--class", help="Main class of a JVM application")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the batch")] = None,
    conf: Annotated[list[str] | None, typer.Option("--conf", help="Spark configuration key=value; repeatable")] = None,
    jars: Annotated[str | None, typer.Option("--jars", help="Comma-separated jars; local ones are uploaded")] = None,
    py_files: Annotated[str | None, typer.Option("--py-files", help="Comma-separated .py/.zip/.egg files")] = None,
    files: Annotated[
        str | None, typer.Option("--files", help="Comma-separated files for the working directory")
    ] = None,
    archives: Annotated[str | None, typer.Option("--archives", help="Comma-separated archives to unpack")] = None,
    driver_memory: Annotated[str | None, typer.Option("--driver-memory", help="e.g. 2g")] = None,
    driver_cores: Annotated[int | None, typer.Option("--driver-cores")] = None,
    executor_memory: Annotated[str | None, typer.Option("--executor-memory", help="e.g. 4g")] = None,
    executor_cores: Annotated[int | None, typer.Option("--executor-cores")] = None,
    num_executors: Annotated[int | None, typer.Option("--num-executors")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Scheduler queue, where the backend has them")] = None,
    cluster: ClusterOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the end; exit 0 on success, 1 otherwise")] = False,
    no_logs: Annotated[bool, typer.Option("--no-logs", help="With --wait: show the state only, not the log")] = False,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit FILE with ARGS. Options go before FILE; everything after FILE is passed to the application."""
    if file.startswith("-"):
        # ignore_unknown_options turns a mistyped option before FILE into FILE itself; say so instead.
        raise typer.BadParameter(f"no such option: {file} (options go before FILE)", param_hint="FILE")
    spark_conf = _conf(conf or [])
    with _client(url, token) as sp:
        with _out().status(Text(f"submitting {file}…")):
            batch = sp.submit_batch(
                file,
                args or [],
                class_name=class_name,
                name=name,
                conf=spark_conf,
                jars=_csv(jars),
                py_files=_csv(py_files),
                files=_csv(files),
                archives=_csv(archives),
                driver_memory=driver_memory,
                driver_cores=driver_cores,
                executor_memory=executor_memory,
                executor_cores=executor_cores,
                num_executors=num_executors,
                queue=queue,
                cluster_id=cluster,
            )
        if json_out and not wait:
            _print_json(batch.model_dump(mode="json"))
            return
        _out().print(f"Submitted batch [bold]{batch.id}[/] ({batch.state})")
        if not wait:
            return
        final = _wait(sp, batch, logs=not no_logs)
    if json_out:
        _print_json(final.model_dump(mode="json"))
    raise typer.Exit(0 if final.succeeded else 1)


def _wait(sp: Client, batch: Batch, *, logs: bool) -> Batch:
    out = _out()
    status = display.WaitStatus(batch)
    try:
        with out.status(status):
            if logs:
                _print_lines(out, sp.follow_log(batch.id, poll=POLL_SECONDS, on_update=status.update))
                final = status.batch  # follow_log ends only after it has shown on_update a final state
            else:
                final = sp.wait_batch(batch.id, poll=POLL_SECONDS, on_update=status.update)
    except KeyboardInterrupt:
        Console(stderr=True, highlight=False).print(
            f"Stopped waiting; batch {batch.id} goes on running on the server. "
            f"Kill it with: sparkplane batches kill {batch.id}",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    out.print(display.finished_line(final), soft_wrap=True)
    return final


@batches_app.command("list")
@_cli_errors
def list_batches(
    state: Annotated[str | None, typer.Option("--state", help="Only batches in this state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many of the newest")] = 20,
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The newest batches, newest first."""
    with _client(url, token) as sp:
        page = functools.partial(sp.list_batches, state)
        _print_newest(page, limit, display.batches_table, json_out=json_out, none="No batches.")


@batches_app.command()
@_cli_errors
def show(
    batch_id: Annotated[int, typer.Argument(metavar="ID")],
    json_out: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A batch's details and the timeline of its states."""
    with _client(url, token) as sp:
        batch = sp.get_batch(batch_id)
        events = sp.batch_events(batch_id)
    if json_out:
        _print_json(
            {
                "batch": batch.model_dump(mode="json"),
                "events": [e.model_dump(mode="json", by_alias=True) for e in events],
            }
        )
        return
    _out().print(display.batch_details(batch, events))


@batches_app.command()
@_cli_errors
def logs(
    batch_id: Annotated[int, typer.Argument(metavar="ID")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the batch ends")
    ] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines (default: all)")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The driver log of a batch."""
    out = _out()
    with _client(url, token) as sp:
        offset = 0
        if tail is not None:
            page = sp.batch_log(batch_id, limit=tail)  # no offset: the server answers with the tail
            _print_lines(out, page.lines)
            offset = page.end
        elif not follow:
            _print_lines(out, sp.read_log(batch_id))
        if follow:
            try:
                _print_lines(out, sp.follow_log(batch_id, poll=POLL_SECONDS, offset=offset))
            except KeyboardInterrupt:
                raise typer.Exit(130) from None


@batches_app.command()
@_cli_errors
def kill(batch_id: Annotated[int, typer.Argument(metavar="ID")], url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Kill a batch. Killing a finished batch changes nothing and is not an error."""
    with _client(url, token) as sp:
        batch = sp.kill_batch(batch_id)
    if batch.is_final:
        _out().print(Text.assemble(f"Batch {batch.id} is ", display.state_text(batch.state)))
    else:
        _out().print(f"Kill requested for batch {batch.id}; `sparkplane batches show {batch.id}` shows when it ends")


# ---- users ------------------------------------------------------------------------------------------------

UserRef = Annotated[str, typer.Argument(metavar="USER", help="Username or numeric id")]


@users_app.command("list")
@_cli_errors
def list_users(json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Every user."""
    with _client(url, token) as sp:
        users = sp.list_users()
    if json_out:
        _print_json([u.model_dump(mode="json") for u in users])
        return
    _out().print(display.users_table(users))


@users_app.command()
@_cli_errors
def create(
    username: str,
    password: Annotated[str | None, typer.Option("--password", help="Prompted, hidden, when missing")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a user."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _client(url, token) as sp:
        user = sp.create_user(username, password, role="admin" if admin else "user")
    _out().print(f"Created {user.role} [bold]{escape(user.username)}[/] (id {user.id})")


def _update_user(ref: str, url: str | None, token: str | None, **changes: Any) -> None:
    with _client(url, token) as sp:
        user = sp.update_user(_user_id(sp, ref), **changes)
    state = "active" if user.is_active else "disabled"
    _out().print(f"User [bold]{escape(user.username)}[/] (id {user.id}) is now {state}, role {user.role}")


def _user_id(sp: Client, ref: str) -> int:
    if ref.isdigit():  # usernames start with a letter, so digits are always an id
        return int(ref)
    for user in sp.list_users():
        if user.username == ref:
            return user.id
    _fail(f"no user named {ref!r}")


@users_app.command()
@_cli_errors
def disable(user: UserRef, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Disable a user: their password and tokens stop working."""
    _update_user(user, url, token, is_active=False)


@users_app.command()
@_cli_errors
def enable(user: UserRef, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Enable a disabled user again."""
    _update_user(user, url, token, is_active=True)


@users_app.command("make-admin")
@_cli_errors
def make_admin(user: UserRef, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Give a user the admin role."""
    _update_user(user, url, token, role="admin")


# ---- tokens -----------------------------------------------------------------------------------------------


@tokens_app.command("create")
@_cli_errors
def create_token(name: str, json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Create an API token. Its secret is printed this once and never again."""
    with _client(url, token) as sp:
        created, secret = sp.create_token(name)
    if json_out:
        _print_json({**created.model_dump(mode="json"), "token": secret})
        return
    out = _out()
    name = escape(created.name)
    out.print(f"Created token [bold]{name}[/] (id {created.id}). Copy the secret now; it is not shown again:")
    out.out(secret, highlight=False)


@tokens_app.command("list")
@_cli_errors
def list_tokens(json_out: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Your API tokens (an admin sees everyone's)."""
    with _client(url, token) as sp:
        tokens = sp.list_tokens()
    if json_out:
        _print_json([t.model_dump(mode="json") for t in tokens])
        return
    _out().print(display.tokens_table(tokens))


@tokens_app.command("revoke")
@_cli_errors
def revoke_token(
    token_id: Annotated[int, typer.Argument(metavar="ID")], url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Revoke an API token: it stops working at once."""
    with _client(url, token) as sp:
        revoked = sp.revoke_token(token_id)
    _out().print(f"Revoked token [bold]{escape(revoked.name)}[/] (id {revoked.id})")


# ---- formatting -------------------------------------------------------------------------------------------


class _Page(Protocol[M_co]):
    @property
    def total(self) -> int: ...
    @property
    def items(self) -> Sequence[M_co]: ...


def _print_newest(
    page: Callable[[int, int], _Page[M]],
    limit: int,
    table: Callable[[list[M]], RenderableType],
    *,
    json_out: bool,
    none: str,
) -> None:
    """Print the `limit` newest items (`page(offset, limit)` reads them) newest first, as `table` or as JSON.
    The API pages oldest first, so this reads the total, then the last page."""
    total = page(0, 1).total
    items = list(reversed(page(max(0, total - limit), limit).items))
    if json_out:
        _print_json([item.model_dump(mode="json") for item in items])
        return
    _out().print(table(items) if items else none)


def _print_lines(out: Console, lines: Iterable[str]) -> None:
    for line in lines:
        out.out(line, highlight=False)


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _conf(pairs: list[str], *, option: str = "--conf") -> dict[str, str]:
    """Repeated key=value options as a dict; a pair without "=" is a usage error of `option`."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint=option)
        conf[key.strip()] = value
    return conf
