"""``casebridge clio connect | status | disconnect``: connect this Casebridge to Clio Manage from a shell.

``connect --region us|ca|eu|au`` (with your Clio app's client id and secret) prints Clio's authorize URL
and waits for the browser to come back to a listener on ``127.0.0.1`` (register
``http://127.0.0.1:<port>/callback`` as a redirect URI on the app). ``connect --base-url URL`` against a
Casebridge Clio sandbox completes unattended: it registers an app there and approves it itself.

The connection is stored in the database; the worker of ``casebridge serve`` (or ``casebridge worker``)
does the syncing.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import typer

from casebridge.kit.problems import Problem

clio_app = typer.Typer(help="The Clio Manage connection: connect, status, disconnect.", no_args_is_help=True)

SANDBOX_CLIENT_ID = "casebridge-cli"


def _cli() -> Any:
    from casebridge import cli

    return cli


def _env() -> tuple[Any, Any, Any]:
    cli = _cli()
    settings = cli.get_settings()
    db = cli.open_database(settings)
    try:
        cli.require_current(db)
    except Exception:
        db.dispose()
        raise
    from casebridge.sync.runtime import sync_env

    return settings, db, sync_env(db, settings)


def _is_sandbox(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/_sandbox/settings", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class _Callback(BaseHTTPRequestHandler):
    """The loopback listener Clio sends the browser back to."""

    received: ClassVar[dict[str, str]] = {}
    done: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        type(self).received = query
        ok = "code" in query
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        message = "Connected: you can close this tab." if ok else "Not connected: Clio did not authorize."
        self.wfile.write(f"<!doctype html><title>Casebridge</title><p>{message}</p>".encode())
        type(self).done.set()

    def log_message(self, format: str, *args: Any) -> None:
        return


@clio_app.command("connect")
def connect(
    region: Annotated[str | None, typer.Option(help="Clio's data region: us, ca, eu or au.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Clio's host instead of a region, e.g. a sandbox: http://127.0.0.1:8765"),
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(envvar="CASEBRIDGE_CLIO_CLIENT_ID", help="Your Clio app's client id.")
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(envvar="CASEBRIDGE_CLIO_CLIENT_SECRET", help="Your Clio app's client secret."),
    ] = None,
    redirect_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the loopback listener for Clio's redirect.")
    ] = 8976,
    name: Annotated[str, typer.Option(help="A name for the connection.")] = "Clio Manage",
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the browser to come back.")
    ] = 600,
) -> None:
    """Connect to Clio Manage (OAuth 2.0) and start syncing contacts and matters."""
    cli = _cli()
    from casebridge.connectors.clio import oauth, service
    from casebridge.db.session import unit_of_work

    if region and base_url:
        raise cli.CliError("give --region or --base-url, not both", cli.EXIT_USAGE_OR_DATABASE)
    if region is not None and region not in oauth.REGIONS:
        raise cli.CliError(f"--region must be one of {', '.join(oauth.REGIONS)}", cli.EXIT_USAGE_OR_DATABASE)
    host = (base_url or oauth.REGIONS[region or "us"]).rstrip("/")
    sandbox = base_url is not None and _is_sandbox(host)
    redirect = f"http://127.0.0.1:{redirect_port}/callback"
    if sandbox and not client_id:
        client_id, client_secret = SANDBOX_CLIENT_ID, uuid.uuid4().hex
        r = httpx.post(
            f"{host}/_sandbox/apps",
            json={
                "name": "Casebridge",
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": [redirect],
            },
            timeout=10,
        )
        if r.status_code != 201:
            raise cli.CliError(f"the sandbox refused to register an app: {r.text[:200]}")
    if not client_id or not client_secret:
        raise cli.CliError(
            "give your Clio app's --client-id and --client-secret (or CASEBRIDGE_CLIO_CLIENT_ID and "
            "CASEBRIDGE_CLIO_CLIENT_SECRET); create the app in Clio's developer portal with the redirect "
            f"URI {redirect}"
        )
    settings, db, env = _env()
    try:
        with unit_of_work(db.writer) as session:
            try:
                started = service.begin(
                    session,
                    env,
                    name=name,
                    region=None if base_url else (region or "us"),
                    base_url=base_url,
                    client_id=client_id,
                    client_secret=client_secret,
                    redirect_uri=redirect,
                    sandbox_auto_approve=sandbox,
                )
            except Problem as problem:
                raise cli.CliError(problem.detail or "cannot connect") from None
            connection_id = started.connection.id
        if sandbox:
            answer = httpx.get(started.authorize_url, timeout=10)
            location = answer.headers.get("location", "")
            params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        else:
            params = _wait_for_browser(started.authorize_url, redirect_port, timeout)
        if "code" not in params or "state" not in params:
            raise cli.CliError(f"Clio did not authorize the connection: {params.get('error', 'no code')}")
        try:
            service.complete(env, state=params["state"], code=params["code"])
        except Problem as problem:
            raise cli.CliError(problem.detail or "the authorization failed") from None
        _print_status(db, connection_id)
        if not settings.public_url:
            typer.echo(
                "CASEBRIDGE_PUBLIC_URL is not set: Clio cannot send webhooks, so changes in Clio arrive by "
                "polling (every 60 s by default).",
                err=True,
            )
    finally:
        db.dispose()


def _wait_for_browser(authorize_url: str, port: int, timeout: float) -> dict[str, str]:
    cli = _cli()
    try:
        server = HTTPServer(("127.0.0.1", port), _Callback)
    except OSError as exc:
        raise cli.CliError(
            f"cannot listen on 127.0.0.1:{port} for Clio's redirect: {exc.strerror or exc}"
        ) from None
    _Callback.done.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    typer.echo("Open this address in a browser and approve the connection in Clio:\n")
    typer.echo(f"  {authorize_url}\n")
    typer.echo(f"Waiting for Clio to send the browser back to http://127.0.0.1:{port}/callback ...", err=True)
    try:
        if not _Callback.done.wait(timeout):
            raise cli.CliError(f"nobody approved the connection within {timeout:.0f} s")
        return dict(_Callback.received)
    finally:
        server.shutdown()


def _print_status(db: Any, connection_id: uuid.UUID | None = None, *, as_json: bool = False) -> None:
    from sqlalchemy import select

    from casebridge.db.session import unit_of_work
    from casebridge.models import Connection
    from casebridge.sync import service as sync_service

    with unit_of_work(db.reader) as session:
        query = select(Connection).order_by(Connection.created_at.desc())
        conn = session.get(Connection, connection_id) if connection_id else session.scalars(query).first()
        if conn is None:
            typer.echo("Not connected to Clio (casebridge clio connect).")
            return
        health = sync_service.health(session, conn)
    if as_json:
        typer.echo(json.dumps(health.model_dump(mode="json"), indent=2))
        return
    c = health.connection
    typer.echo(f"{c.name}: {c.state} ({c.base_url}, API {c.api_version})")
    if c.remote_account_name:
        typer.echo(f"  account: {c.remote_account_name}, as {c.remote_user_name}")
    for hook in health.webhooks:
        typer.echo(
            f"  {hook.model} webhook: {hook.status}, expires {hook.expires_at}, {hook.deliveries} deliveries"
        )
    for stream in health.streams:
        typer.echo(
            f"  {stream.entity}s: last poll {stream.last_poll_at}, last full reconcile {stream.last_full_at}"
        )
    for entity, states in health.links.items():
        typer.echo(f"  {entity}s: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    for problem in health.problems:
        typer.echo(f"  problem: {problem}")


@clio_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="The full health report as JSON.")] = False,
) -> None:
    """The connection's state and health."""
    _, db, _ = _env()
    try:
        _print_status(db, as_json=as_json)
    finally:
        db.dispose()


@clio_app.command("disconnect")
def disconnect() -> None:
    """Stop syncing, delete our webhooks in Clio and revoke the grant."""
    from sqlalchemy import select

    from casebridge.connectors.clio import service
    from casebridge.db.session import unit_of_work
    from casebridge.models import Connection
    from casebridge.models.sync import DISCONNECTED

    _, db, env = _env()
    try:
        with unit_of_work(db.reader) as session:
            ids = list(session.scalars(select(Connection.id).where(Connection.state != DISCONNECTED)))
        if not ids:
            typer.echo("Not connected to Clio.")
            return
        for connection_id in ids:
            service.disconnect(env, connection_id)
        typer.echo("Disconnected from Clio.")
    finally:
        db.dispose()
