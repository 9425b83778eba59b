"""``casebridge sandbox clio``: serve the Clio Manage API v4 emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

sandbox_app = typer.Typer(
    help="Local emulators of the systems Casebridge integrates with.", no_args_is_help=True
)


def _json_arg(value: str, what: str) -> dict[str, Any]:
    """A JSON object given inline or as @FILE."""
    raw = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise typer.BadParameter(f"{what}: no such file {path}")
        raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{what}: must be a JSON object")
    return data


@sandbox_app.command("clio")
def clio(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    rate_limit: Annotated[int, typer.Option(min=1, help="Requests per window per access token.")] = 50,
    rate_limit_window: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="Rate-limit window in seconds (Clio: 60).")
    ] = 60.0,
    seed: Annotated[
        Path | None, typer.Option(help="A JSON seed file: settings, apps and records to load.")
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option(help="Keep state in this SQLite file so it survives a restart.")
    ] = None,
    app: Annotated[
        list[str] | None,
        typer.Option(help="Register an OAuth app as CLIENT_ID:CLIENT_SECRET:REDIRECT_URI (repeatable)."),
    ] = None,
    allow_http_webhooks: Annotated[
        bool, typer.Option("--allow-http-webhooks", help="Accept http:// webhook URLs (Clio requires https).")
    ] = False,
    webhook_time_scale: Annotated[
        float,
        typer.Option(min=0.0, help="Multiply webhook retry delays (0.001: Clio's 2 minutes become 0.12 s)."),
    ] = 1.0,
    faults: Annotated[
        str | None, typer.Option(help="Fault injection settings as JSON or @FILE (see docs/clio-sandbox.md).")
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients reach the sandbox at (upload and paging links).")
    ] = None,
) -> None:
    """Serve the Clio Manage API v4 sandbox (docs/clio-sandbox.md)."""
    import uvicorn

    from casebridge.cli import check_port
    from casebridge.sandbox.clio import SandboxConfig, SandboxState, create_app
    from casebridge.sandbox.clio.admin import seed as load_seed
    from casebridge.sandbox.clio.oauth import register_app

    fault_settings = _json_arg(faults, "--faults") if faults else None
    seed_data = _json_arg(f"@{seed}", "--seed") if seed else None
    apps = []
    for spec in app or []:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise typer.BadParameter(f"--app {spec!r}: expected CLIENT_ID:CLIENT_SECRET:REDIRECT_URI")
        apps.append(parts)
    check_port(host, port)
    config = SandboxConfig(
        rate_limit=rate_limit,
        rate_limit_window=rate_limit_window,
        allow_http_webhooks=allow_http_webhooks,
        webhook_time_scale=webhook_time_scale,
        state_file=state_file,
        public_url=public_url.rstrip("/") if public_url else None,
    )
    state = SandboxState(config)
    application = create_app(state)
    if seed_data is not None:
        try:
            load_seed(state, seed_data)
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(f"--seed: {exc}") from None
    for client_id, secret, redirect in apps:
        register_app(state, client_id=client_id, client_secret=secret, redirect_uris=[redirect])
    if fault_settings is not None:
        try:
            application.state.faults.configure(fault_settings)
        except TypeError as exc:
            raise typer.BadParameter(f"--faults: {exc}") from None
    typer.echo(f"Clio sandbox on http://{host}:{port} (admin: /_sandbox/, API: /api/v4/)", err=True)
    try:
        uvicorn.run(application, host=host, port=port, log_level="warning", date_header=False)
    except KeyboardInterrupt:
        pass
    finally:
        state.close()
