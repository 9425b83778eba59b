"""The ``casebridge`` command line: serve, db, token, documents, jobs, clio, sandbox, openapi and demo.

Every failure a user can cause (a bad flag, a bad setting, an unreachable or unmigrated database) ends
with one line on stderr and a non-zero exit code, never a traceback:

* 0: done; 1: a user error (unknown token, unmigrated database, bad setting);
* 2: a usage error (bad flag or value, Click's convention) or a database that cannot be reached;
* 130: interrupted.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
import uvicorn
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from casebridge.config import Settings, load_settings
from casebridge.connectors.clio.cli import clio_app
from casebridge.db import migrate
from casebridge.db.engine import redact_url
from casebridge.db.session import Database, unit_of_work
from casebridge.kit.context import Role
from casebridge.models import ApiToken, User
from casebridge.sandbox.cli import sandbox_app

EXIT_USER_ERROR = 1
EXIT_USAGE_OR_DATABASE = 2
NOT_MIGRATED = "database is not at the newest migration; run `casebridge db upgrade`"

app = typer.Typer(
    name="casebridge",
    help="Casebridge: API-first case management for law firms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
documents_app = typer.Typer(help="Document maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(documents_app, name="documents")
jobs_app = typer.Typer(help="The job queue: inspect, retry and discard jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(clio_app, name="clio")


class CliError(Exception):
    """A failure the user can fix: printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class DatabaseUnreachable(CliError):
    def __init__(self, url: str, exc: BaseException) -> None:
        super().__init__(
            f"cannot reach the database at {redact_url(url)}: {short_reason(exc)}", EXIT_USAGE_OR_DATABASE
        )


def short_reason(exc: BaseException) -> str:
    """The first line of the driver's message (SQLAlchemy wraps it in ``orig``), without SQL or noise."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    return reason[:300]


# The URL of the database the running command talks to, for the last-resort error message in main().
_current_url: list[str] = []


# --- shared helpers ------------------------------------------------------------------------------


def get_settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "_".join(str(part) for part in err["loc"]).upper()
        raise CliError(f"bad setting CASEBRIDGE_{field}: {err['msg']}") from None


def open_database(settings: Settings) -> Database:
    """A Database whose server answered ``SELECT 1``; a clear error if it is unusable or unreachable."""
    url = settings.database_url
    _current_url[:] = [url]
    try:
        db = Database.from_url(url, pool_size=settings.db_pool_size)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CliError(
            f"CASEBRIDGE_DATABASE_URL is not a usable database URL ({redact_url(url)}): {short_reason(exc)}",
            EXIT_USAGE_OR_DATABASE,
        ) from None
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        db.dispose()
        raise DatabaseUnreachable(url, exc) from None
    return db


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    db = open_database(settings)
    try:
        yield db
    finally:
        db.dispose()


def _known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(migrate.alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def require_current(db: Database) -> None:
    current = migrate.current_revision(db.engine)
    if current == migrate.head_revision():
        return
    if current is not None and not _known_revision(current):
        raise CliError(
            f"database is at migration {current}, which this version of casebridge does not know "
            "(was it migrated by a newer version?)"
        )
    raise CliError(NOT_MIGRATED)


def check_port(host: str, port: int) -> None:
    """Fail early, with one line, when the address cannot be listened on (in use, bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class LogFormat(StrEnum):
    json = "json"
    text = "text"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        envvar="CASEBRIDGE_LOG_FORMAT",
        case_sensitive=False,
        help="json: one JSON object per line with request and job ids; text: for people.",
    ),
]


def log_config(fmt: LogFormat = LogFormat.json, level: str = "info") -> dict[str, Any]:
    """Logging for serve and worker (observability): every logger, uvicorn's included, through one
    handler; request and job ids on each line (docs/observability.md)."""
    from casebridge.observability.logging import log_config as observability_log_config

    return observability_log_config(fmt.value, level)


def _when(value: datetime | None, empty: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else empty


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    header = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    return "\n".join([header, *lines])


def upgrade(db: Database) -> tuple[str | None, str | None]:
    """Migrate to head; the revisions before and after."""
    before = migrate.current_revision(db.engine)
    try:
        migrate.upgrade(db.engine)
    except CommandError as exc:
        raise CliError(f"cannot migrate: {short_reason(exc)}") from None
    return before, migrate.current_revision(db.engine)


# --- serve ---------------------------------------------------------------------------------------

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")]


@app.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Run the API without the embedded job worker (run `casebridge worker` processes instead).",
        ),
    ] = False,
    log_format: LogFormatOption = LogFormat.json,
) -> None:
    """Serve the API (checks first that the database is reachable and fully migrated)."""
    from casebridge.app import create_app

    settings = get_settings()
    if no_worker:
        settings = settings.model_copy(update={"embedded_worker": False})
    with database(settings) as db:
        require_current(db)
        check_port(host, port)
        application = create_app(settings, db=db)
        try:
            # observability: our access log line (with request id and route) replaces uvicorn's
            uvicorn.run(
                application, host=host, port=port, log_config=log_config(log_format), access_log=False
            )
        except KeyboardInterrupt:
            pass


# --- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (safe to run repeatedly and concurrently)."""
    settings = get_settings()
    with database(settings) as db:
        before, after = upgrade(db)
    if before == after:
        typer.echo(f"already at the newest migration ({after})")
    else:
        typer.echo(f"migrated {before or '(empty database)'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration and whether it is the newest."""
    settings = get_settings()
    with database(settings) as db:
        current = migrate.current_revision(db.engine)
    head = migrate.head_revision()
    if current == head:
        typer.echo(f"{current} (head: the newest migration)")
    elif current is None:
        typer.echo(f"(empty database) (not migrated; head is {head}; run `casebridge db upgrade`)")
    elif not _known_revision(current):
        typer.echo(f"{current} (unknown to this version of casebridge, whose head is {head})")
    else:
        typer.echo(f"{current} (behind head {head}; run `casebridge db upgrade`)")


# --- token ---------------------------------------------------------------------------------------


def _active_named(session: Session, name: str) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="What the token may do.", case_sensitive=False)],
    name: Annotated[str, typer.Option(help="A label, unique among active tokens (who or what uses it).")],
    user_id: Annotated[
        uuid.UUID | None, typer.Option(help="The firm user (fee earner) the token acts for.")
    ] = None,
) -> None:
    """Create a token and print its secret, alone, on stdout (it is shown only this once)."""
    from casebridge.auth.service import create_token

    name = name.strip()
    if not name:
        raise CliError("--name must not be empty")
    if len(name) > 200:
        raise CliError("--name must be at most 200 characters")
    settings = get_settings()
    with database(settings) as db:
        require_current(db)
        with unit_of_work(db.writer) as session:
            if _active_named(session, name):
                raise CliError(
                    f"an active token named '{name}' already exists; pick another name or revoke it"
                )
            if user_id is not None and session.get(User, user_id) is None:
                raise CliError(f"no user with id {user_id}")
            issued = create_token(session, name=name, role=role, user_id=user_id)
    typer.echo(issued.secret)
    typer.echo(
        f"Created {role.value} token '{name}' ({issued.token.prefix}…). "
        "This is the only time the secret is shown; store it now.",
        err=True,
    )


@token_app.command("list")
def token_list(
    active: Annotated[bool, typer.Option("--active", help="Hide revoked tokens.")] = False,
) -> None:
    """List tokens (never their secrets)."""
    from casebridge.auth.service import list_tokens

    settings = get_settings()
    with database(settings) as db:
        require_current(db)
        with unit_of_work(db.reader) as session:
            tokens = list_tokens(session, include_revoked=not active)
    if not tokens:
        typer.echo("no tokens; create one with `casebridge token create --role ROLE --name NAME`", err=True)
        return
    headers = ("id", "name", "role", "prefix", "created", "last used", "revoked")
    rows = [
        (
            str(t.id),
            t.name,
            t.role,
            t.prefix,
            _when(t.created_at),
            _when(t.last_used_at, "never"),
            _when(t.revoked_at),
        )
        for t in tokens
    ]
    typer.echo(_table(headers, rows))


def _resolve_token(session: Session, ref: str) -> ApiToken:
    from casebridge.auth.service import find_token

    found = find_token(session, ref)
    if found is not None:
        return found
    matches = list(session.scalars(select(ApiToken).where((ApiToken.name == ref) | (ApiToken.prefix == ref))))
    active = [t for t in matches if t.revoked_at is None]
    if len(active) == 1:
        return active[0]
    if len(matches) > 1:
        ids = ", ".join(str(t.id) for t in matches)
        raise CliError(f"'{ref}' matches {len(matches)} tokens ({ids}); give the id instead")
    raise CliError(f"no token matches '{ref}' (give its id, name or prefix; see `casebridge token list`)")


@token_app.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(help="The token's id, name or prefix (see `casebridge token list`).")],
) -> None:
    """Revoke a token: it stops working at once."""
    from casebridge.auth.service import revoke_token

    settings = get_settings()
    with database(settings) as db:
        require_current(db)
        with unit_of_work(db.writer) as session:
            token = _resolve_token(session, ref)
            already = token.revoked_at
            revoke_token(session, token)
            label = f"{token.role} token '{token.name}' ({token.prefix}…, id {token.id})"
    if already is not None:
        typer.echo(f"{label} was already revoked on {_when(already)}")
    else:
        typer.echo(f"revoked {label}")


# --- documents -----------------------------------------------------------------------------------


@documents_app.command("purge")
def documents_purge() -> None:
    """Delete documents trashed longer than CASEBRIDGE_TRASH_RETENTION_DAYS, and their unused files."""
    from casebridge.db.types import utcnow
    from casebridge.documents.service import purge_expired

    settings = get_settings()
    with database(settings) as db:
        require_current(db)
        with unit_of_work(db.writer) as session:
            purged = purge_expired(session, settings, utcnow())
    typer.echo(
        f"purged {purged} document{'s' if purged != 1 else ''} "
        f"trashed more than {settings.trash_retention_days} days ago"
    )


# --- openapi -------------------------------------------------------------------------------------


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (JSON); needs no database."""
    from casebridge.app import create_app

    with tempfile.TemporaryDirectory(prefix="casebridge-openapi-") as tmp:
        settings = Settings(database_url="sqlite://", data_dir=Path(tmp))
        db = Database.from_url(settings.database_url)
        try:
            document = create_app(settings, db=db).openapi()
        finally:
            db.dispose()
    typer.echo(json.dumps(document, indent=2))


# --- worker and jobs -----------------------------------------------------------------------------


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs run at once (threads).")] = 4,
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues to take jobs from (default: all).")
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(min=0.5, help="Seconds a job is leased (default CASEBRIDGE_JOB_LEASE_SECONDS)."),
    ] = None,
    log_format: LogFormatOption = LogFormat.json,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve this process's job metrics at http://HOST:PORT/metrics."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run a job worker. Any number may run, on any number of machines sharing one PostgreSQL database.

    SIGTERM or Ctrl-C: stop claiming, let running jobs finish (25 s), hand back the rest."""
    import logging.config
    import signal
    import threading

    from casebridge.jobs.builtin import build_registry
    from casebridge.jobs.worker import Worker

    settings = get_settings()
    with database(settings) as db:
        require_current(db)
        # observability: structured logs, and this process's job metrics on a port of its own
        logging.config.dictConfig(log_config(log_format))
        if metrics_port is not None:
            from casebridge.observability.exporter import start_metrics_server
            from casebridge.observability.routes import configured_token

            check_port(metrics_host, metrics_port)
            start_metrics_server(metrics_host, metrics_port, configured_token())
        runner = Worker(
            db,
            build_registry(settings),
            settings=settings,
            queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
            concurrency=concurrency,
            lease_seconds=lease or settings.job_lease_seconds,
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        runner.start()  # logs "worker ... started"; stderr carries only log lines from here on
        stop.wait()
        logging.getLogger("casebridge.jobs").info("stopping: finishing running jobs")
        runner.stop()


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        str | None, typer.Option(help="available, running, completed, dead or cancelled")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Jobs, newest first, with their last error."""
    from casebridge.models import Job

    settings = get_settings()
    with database(settings) as db, unit_of_work(db.reader) as session:
        stmt = select(Job).order_by(Job.id.desc()).limit(limit)
        if state:
            stmt = stmt.where(Job.state == state)
        rows = [
            [
                str(j.id),
                j.kind,
                j.queue,
                j.state,
                f"{j.attempts}/{j.max_attempts}",
                _when(j.run_at),
                (j.last_error or "").splitlines()[0][:60] if j.last_error else "",
            ]
            for j in session.scalars(stmt)
        ]
    typer.echo(_table(["id", "kind", "queue", "state", "attempts", "run at", "last error"], rows))


def _job_action(job_id: int, action: str) -> None:
    from casebridge.jobs import queue

    settings = get_settings()
    with database(settings) as db, unit_of_work(db.writer) as session:
        done = queue.retry(session, job_id) if action == "retry" else queue.discard(session, job_id)
    if not done:
        allowed = "dead or cancelled" if action == "retry" else "waiting or dead"
        raise CliError(f"job {job_id} does not exist or is not {allowed}")
    typer.echo(f"job {job_id}: {'queued again' if action == 'retry' else 'discarded'}")


@jobs_app.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """Queue a dead (or cancelled) job again with fresh attempts."""
    _job_action(job_id, "retry")


@jobs_app.command("discard")
def jobs_discard(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """Cancel a waiting or dead job."""
    _job_action(job_id, "discard")


# --- demo ----------------------------------------------------------------------------------------


@app.command()
def demo(
    host: HostOption = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port to listen on (0: any free port).")
    ] = 8000,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete the SQLite database and data dir first, then re-seed.")
    ] = False,
    clio_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port of the Clio sandbox started beside it (0: any free port)."),
    ] = 8765,
) -> None:
    """Migrate a local database, seed a small firm, print an admin token and serve (what `make demo` runs),
    with the Clio Manage sandbox beside it."""
    from casebridge import demo as demo_module

    settings = get_settings()
    if port:
        check_port(host, port)
    if reset:
        demo_module.reset(settings)
    with database(settings) as db:
        before, after = upgrade(db)
        if before != after:
            typer.echo(
                f"Migrated {redact_url(settings.database_url)}: {before or '(empty)'} -> {after}", err=True
            )
        demo_module.run(
            settings, db, host=host, port=port, seed=reset or demo_module.is_empty(db), clio_port=clio_port
        )


# --- entry point ---------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    sys.exit(code)


def _usage_line(exc: typer.TyperException | click.ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    command = str(ctx.command_path) if ctx is not None else "casebridge"
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    hint = f" (see `{command} --help`)" if ctx is not None else ""
    return f"{command}: {message}{hint}"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line; user errors end as one line on stderr, never a traceback."""
    from casebridge.demo import DemoError

    # libpq otherwise waits indefinitely for a host that drops packets.
    os.environ.setdefault("PGCONNECT_TIMEOUT", "10")
    try:
        result = app(
            args=list(argv) if argv is not None else None, prog_name="casebridge", standalone_mode=False
        )
    # Recent Typer vendors Click (typer._click); older Typer raises Click's own exceptions: catch both.
    except (typer.TyperException, click.ClickException) as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as Click prints it
            _fail(exc.format_message(), exc.exit_code)
        _fail(_usage_line(exc), exc.exit_code)
    except (typer.Abort, click.Abort):
        _fail("casebridge: aborted", EXIT_USER_ERROR)
    except (CliError, DemoError) as exc:
        _fail(f"casebridge: {exc.message}", exc.exit_code)
    except (OperationalError, InterfaceError) as exc:
        url = _current_url[0] if _current_url else "(unknown)"
        _fail(f"casebridge: {DatabaseUnreachable(url, exc).message}", EXIT_USAGE_OR_DATABASE)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"casebridge: {exc.strerror or exc}{where}", EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
