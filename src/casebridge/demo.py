"""``casebridge demo``: a small, believable firm seeded through the public API, then served.

The seed goes through HTTP like any other client (API-first): the server starts in a background
thread, the seed runs against it with a fresh admin token, and the server then keeps serving in the
foreground until Ctrl-C (or SIGTERM). The seed is deterministic: the same firm, matters, documents and
time entries every run.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import typer
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from casebridge.config import Settings
from casebridge.db.engine import normalise_url, redact_url
from casebridge.db.session import Database, unit_of_work
from casebridge.kit.context import Role
from casebridge.models import ApiToken, Contact

DEMO_TOKEN_NAME = "demo-admin"
API = "/api/v1"
FIRM = "Hartley Finch LLP"
FIRM_ADDRESS = "12 Park Row, Leeds LS1 5HD"
CURRENCY = "GBP"
# What a data dir holds; --reset refuses to delete a directory holding anything else.
CLIO_STATE = "clio-sandbox.db"  # the demo's Clio sandbox keeps its state beside ours
_DATA_DIR_ENTRIES = {"blobs", "tmp", "secret.key", CLIO_STATE, f"{CLIO_STATE}-wal", f"{CLIO_STATE}-shm"}


class DemoError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- database preparation ------------------------------------------------------------------------


def reset(settings: Settings) -> None:
    """Delete the SQLite database file and the data dir (only SQLite; only a data dir that is ours)."""
    url = make_url(normalise_url(settings.database_url))
    if url.get_backend_name() != "sqlite":
        raise DemoError(
            f"--reset only deletes a SQLite database; {redact_url(settings.database_url)} is not one "
            "(drop and recreate that database yourself, then run `casebridge demo`)"
        )
    data_dir = settings.data_dir
    if data_dir.exists():
        unexpected = sorted(p.name for p in data_dir.iterdir() if p.name not in _DATA_DIR_ENTRIES)
        if unexpected:
            raise DemoError(
                f"--reset will not delete {data_dir}: it holds files casebridge did not put there "
                f"({', '.join(unexpected[:3])})"
            )
        shutil.rmtree(data_dir)
    if url.database and url.database != ":memory:":
        path = Path(url.database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def is_empty(db: Database) -> bool:
    """True when the firm has no contacts yet (a fresh database: seed it)."""
    with unit_of_work(db.reader) as session:
        return session.scalar(select(func.count()).select_from(Contact)) == 0


def issue_token(db: Database) -> str:
    """A fresh admin token named demo-admin; earlier demo-admin tokens are revoked, so one stays active."""
    from casebridge.auth.service import create_token, revoke_token

    with unit_of_work(db.writer) as session:
        stale = select(ApiToken).where(ApiToken.name == DEMO_TOKEN_NAME, ApiToken.revoked_at.is_(None))
        for token in session.scalars(stale).all():
            revoke_token(session, token)
        return create_token(session, name=DEMO_TOKEN_NAME, role=Role.ADMIN).secret


# --- the server ----------------------------------------------------------------------------------


@dataclass
class BackgroundServer:
    """Uvicorn serving in a daemon thread; ``done`` is set when it has stopped, for any reason."""

    server: uvicorn.Server
    thread: threading.Thread
    done: threading.Event
    port: int

    def wait(self) -> None:
        """Block until the server stops. Ctrl-C raises KeyboardInterrupt here.

        An Event, not ``Thread.join``: on Python < 3.13 a join interrupted by Ctrl-C can mark a live
        thread as stopped, and a later join then returns at once, before the server has shut down.
        """
        _STOP.waiting = True
        try:
            while not self.done.wait(0.5):
                if _STOP.requested.is_set():
                    raise KeyboardInterrupt
        finally:
            _STOP.waiting = False

    def stop(self, timeout: float = 15) -> None:
        self.server.should_exit = True
        self.done.wait(timeout)


def start_server(
    app: Any, host: str, port: int, *, date_header: bool = True, access_log: bool = True
) -> BackgroundServer:
    """Uvicorn in a background thread; returns once it accepts connections, with the bound port.
    (The Clio sandbox sets ``Date`` from its own clock, ``date_header=False``, and keeps no access log:
    its traffic is the sync's own polls, which would bury what a person does.)"""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level="info",
        date_header=date_header,
        access_log=access_log,
    )
    server = uvicorn.Server(config)
    done = threading.Event()

    def _run() -> None:
        try:
            server.run()
        finally:
            done.set()

    thread = threading.Thread(target=_run, name="casebridge-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if done.is_set() or time.monotonic() > deadline:
            server.should_exit = True
            raise DemoError(f"the server did not start on {host}:{port} (see the log above)")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return BackgroundServer(server, thread, done, int(bound))


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        return True
    except OSError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _StopRequest:
    """Ctrl-C or SIGTERM while the demo serves. Raising KeyboardInterrupt from the signal handler in
    the middle of ``Event.wait`` can break the lock inside it (``RuntimeError: release unlocked
    lock``), so while waiting the handler only sets ``requested`` and the wait loop raises."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.waiting = False


_STOP = _StopRequest()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo as cleanly as Ctrl-C does (both go through the handler below)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        _STOP.requested.set()
        if not _STOP.waiting:
            raise KeyboardInterrupt

    _STOP.requested.clear()
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


CLIO_SEED: dict[str, Any] = {
    "settings": {"account_name": "Harbour & Vale LLP (Clio)"},
    "contacts": [
        {"type": "Person", "first_name": "Margaret", "last_name": "Okafor", "name": "Margaret Okafor"},
        {"type": "Person", "first_name": "Tom", "last_name": "Reyes", "name": "Tom Reyes"},
        {"type": "Company", "name": "Northwind Traders Ltd"},
    ],
}


@dataclass
class ClioSandbox:
    server: BackgroundServer
    base: str
    token: str


def start_clio_sandbox(settings: Settings, host: str, port: int) -> ClioSandbox:
    """The Clio Manage sandbox beside the API (state kept in the data dir), with a token to try it.
    If ``port`` is taken, any free port is used instead."""
    from casebridge.sandbox.clio import SandboxConfig, SandboxState
    from casebridge.sandbox.clio import create_app as create_clio
    from casebridge.sandbox.clio.admin import seed as seed_clio
    from casebridge.sandbox.clio.oauth import grant_for, issue_token, register_app

    state = SandboxState(
        SandboxConfig(state_file=Path(settings.data_dir) / CLIO_STATE, allow_http_webhooks=True)
    )
    app = create_clio(state)
    if not state.tables["contacts"]:
        seed_clio(state, CLIO_SEED)
    client = register_app(state, client_id="casebridge-demo", redirect_uris=["http://127.0.0.1/callback"])
    token = str(
        issue_token(state, grant_for(state, client, int(state.settings["sandbox_user_id"])))["access_token"]
    )
    if port and not _port_free(host, port):
        typer.echo(f"Port {port} is taken; the Clio sandbox takes any free port instead.", err=True)
        port = 0
    server = start_server(app, host, port, date_header=False, access_log=False)
    base = f"http://{_url_host(host)}:{server.port}"
    if not state.tables["matters"]:  # through the API, so the account's numbering scheme applies
        contacts = sorted(state.tables["contacts"])
        with httpx.Client(base_url=f"{base}/api/v4", headers={"Authorization": f"Bearer {token}"}) as clio:
            for client_id, description in zip(
                contacts, ("Purchase of 14 Quay Street", "Employment dispute"), strict=False
            ):
                body = {"data": {"description": description, "client": {"id": client_id}}}
                response = clio.post("/matters.json", json=body)
                if response.status_code != 201:
                    raise DemoError(f"the Clio sandbox refused a demo matter: {response.text}")
    return ClioSandbox(server, base, token)


def run(settings: Settings, db: Database, *, host: str, port: int, seed: bool, clio_port: int = 8765) -> None:
    """Issue the token, start the server, seed if asked, print how to use it, and serve until Ctrl-C."""
    from casebridge.app import create_app
    from casebridge.connectors.clio import demo as clio_demo

    secret = issue_token(db)
    background = start_server(create_app(settings, db=db), host, port)
    base = f"http://{_url_host(host)}:{background.port}"
    settings.public_url = settings.public_url or base  # where the sandbox sends Clio's webhooks
    clio = start_clio_sandbox(settings, host, clio_port)
    access_log = logging.getLogger("uvicorn.access")
    access_level = access_log.level
    try:
        with _sigterm_as_interrupt():
            access_log.setLevel("WARNING")  # the seed's requests are not news
            with httpx.Client(
                base_url=base + API, headers={"Authorization": f"Bearer {secret}"}, timeout=30
            ) as client:
                if seed:
                    started = time.monotonic()
                    try:
                        counts = seed_firm(client)
                    except DemoError as exc:
                        raise DemoError(f"{exc.message} (`casebridge demo --reset` starts afresh)") from None
                    typer.echo(
                        f"Seeded {FIRM}: {counts.summary()} in {time.monotonic() - started:.1f} s", err=True
                    )
                else:
                    typer.echo(
                        "The database already has data; not seeding (`--reset` starts afresh).", err=True
                    )
                matter_id = _first_matter_id(client)
                connection_id, new = clio_demo.connect(settings, db, base, clio.base)
                typer.echo(
                    "Connected to the Clio sandbox"
                    + ("; syncing the history both ways in the background" if new else " (as last time)"),
                    err=True,
                )
                crossings = clio_demo.show_crossings(client, clio.base, clio.token, time.strftime("%H%M%S"))
            typer.echo(banner(base, secret, settings, matter_id, clio, (connection_id, crossings)))
            access_log.setLevel(access_level)
            background.wait()
        raise DemoError("the server stopped unexpectedly (see the log above)")
    except KeyboardInterrupt:
        typer.echo("\nStopping…", err=True)
    finally:
        background.stop()
        clio.server.stop()
        access_log.setLevel(access_level)


def _first_matter_id(client: httpx.Client) -> str | None:
    try:
        response = client.get("/matters", params={"limit": 1})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    rows: list[dict[str, Any]] = response.json().get("data", [])
    return str(rows[0]["id"]) if rows else None


def banner(
    base: str,
    secret: str,
    settings: Settings,
    matter_id: str | None,
    clio: ClioSandbox | None = None,
    sync: tuple[Any, list[Any]] | None = None,
) -> str:
    auth = '-H "Authorization: Bearer $TOKEN"'
    contact = '{"kind":"person","first_name":"Jane","last_name":"Smith","party_types":["client"]}'
    examples = [
        "# list matters",
        f'curl -s {auth} "{base}{API}/matters?limit=5"',
    ]
    if matter_id:
        examples += ["# one matter", f'curl -s {auth} "{base}{API}/matters/{matter_id}"']
    examples += [
        "# create a contact",
        f'curl -s {auth} -H "Content-Type: application/json" \\\n     -d \'{contact}\' "{base}{API}/contacts"',
        "# time entries and expenses",
        f'curl -s {auth} "{base}{API}/activities?limit=5"',
        "# business events, in commit order",
        f'curl -s {auth} "{base}{API}/events?after=0&type=matter.*"',
    ]
    lines = [
        "",
        f"Casebridge demo: {FIRM}",
        "",
        f"  Base URL:  {base}{API}",
        f"  Docs:      {base}/docs",
        f"  Database:  {redact_url(settings.database_url)}  (files in {settings.data_dir})",
        "",
        f"Admin token '{DEMO_TOKEN_NAME}' (shown once; a new one each run, the previous one is revoked):",
        "",
        f"  export TOKEN={secret}",
        "",
        "Try:",
        "",
        *("  " + line for line in "\n".join(examples).splitlines()),
        "",
    ]
    if clio is not None:
        fields = "id,display_number,description,status,client{name}"
        lines += [
            "Clio sandbox (a local Clio Manage API v4; docs/clio-sandbox.md):",
            "",
            f"  Clio API:  {clio.base}/api/v4   (admin: {clio.base}/_sandbox/docs;"
            f" requests counted at {clio.base}/_sandbox/requests)",
            f"  export CLIO_TOKEN={clio.token}",
            f'  curl -s -H "Authorization: Bearer $CLIO_TOKEN" "{clio.base}/api/v4/contacts.json?fields=id,name,type"',
            f'  curl -s -H "Authorization: Bearer $CLIO_TOKEN" "{clio.base}/api/v4/matters.json?fields={fields}"',
            "",
        ]
    if sync is not None:
        connection_id, crossings = sync
        lines += ["Two-way sync with the Clio sandbox (docs/sync.md):", ""]
        for crossing in crossings:
            took = (
                f"in {crossing.seconds * 1000:.0f} ms" if crossing.seconds is not None else "still on its way"
            )
            lines.append(f"  {crossing.what}: {took}")
        lines += [
            "",
            "  Make or change a contact or matter on either side and watch it cross:",
            f'  curl -s {auth} "{base}{API}/connections/{connection_id}/health"',
            f'  curl -s {auth} "{base}{API}/contacts/<id>/sync"      # state, Clio id, journal',
            "",
        ]
    lines += [
        "Serving; press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


# --- the seed ------------------------------------------------------------------------------------


@dataclass
class SeedCounts:
    users: int = 0
    contacts: int = 0
    matters: int = 0
    documents: int = 0
    time_entries: int = 0
    expenses: int = 0

    def summary(self) -> str:
        return (
            f"{self.users} fee earners, {self.contacts} contacts, {self.matters} matters, "
            f"{self.documents} documents, {self.time_entries} time entries, {self.expenses} expenses"
        )


def _problem(method: str, path: str, response: httpx.Response) -> DemoError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    parts = [str(body.get("title") or response.reason_phrase)]
    if body.get("detail"):
        parts.append(str(body["detail"]))
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            parts.append(f"{err.get('field')}: {err.get('message')}")
    return DemoError(f"seeding failed: {method} {API}{path} -> {response.status_code} {'; '.join(parts)}")


def _call(
    client: httpx.Client,
    path: str,
    *,
    json: dict[str, Any] | None = None,
    content: bytes | None = None,
    content_type: str | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else None
    try:
        response = client.post(path, json=json, content=content, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise DemoError(f"seeding failed: POST {API}{path}: {exc}") from None
    if response.status_code >= 300:
        raise _problem("POST", path, response)
    body: dict[str, Any] = response.json()
    return body


def _money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": CURRENCY}


# Fee earners: key, name, email, initials, hourly rate.
USERS: list[tuple[str, str, str, str, str]] = [
    ("EH", "Eleanor Hartley", "eleanor.hartley@hartleyfinch.example", "EH", "295.00"),
    ("MF", "Marcus Finch", "marcus.finch@hartleyfinch.example", "MF", "275.00"),
    ("PR", "Priya Raman", "priya.raman@hartleyfinch.example", "PR", "210.00"),
    ("TO", "Tom Okafor", "tom.okafor@hartleyfinch.example", "TO", "140.00"),
]


def _person(
    first: str,
    last: str,
    email: str,
    phone: str,
    address: tuple[str, str, str, str],
    party: str,
    title: str | None = None,
) -> dict[str, Any]:
    street, city, region, postcode = address
    body: dict[str, Any] = {
        "kind": "person",
        "first_name": first,
        "last_name": last,
        "emails": [{"address": email, "kind": "home", "primary": True}],
        "phones": [{"number": phone, "kind": "mobile"}],
        "addresses": [
            {
                "kind": "home",
                "street": street,
                "city": city,
                "region": region,
                "postal_code": postcode,
                "country": "United Kingdom",
            }
        ],
        "party_types": [party],
    }
    if title:
        body["title"] = title
    return body


def _company(
    name: str,
    email: str,
    phone: str,
    address: tuple[str, str, str, str],
    party: str,
    country: str = "United Kingdom",
) -> dict[str, Any]:
    street, city, region, postcode = address
    return {
        "kind": "company",
        "company_name": name,
        "emails": [{"address": email, "kind": "work", "primary": True}],
        "phones": [{"number": phone, "kind": "work"}],
        "addresses": [
            {
                "kind": "work",
                "street": street,
                "city": city,
                "region": region,
                "postal_code": postcode,
                "country": country,
            }
        ],
        "party_types": [party],
    }


# Phone numbers are from Ofcom's ranges reserved for drama; emails use reserved example domains.
CONTACTS: dict[str, dict[str, Any]] = {
    # Clients.
    "whitfield": _person(
        "Sarah", "Whitfield", "sarah.whitfield@example.com", "07700 900123",
        ("3 Mill Court", "York", "North Yorkshire", "YO1 7HH"), "client", "Ms",
    ),
    "khan": _person(
        "Aisha", "Khan", "aisha.khan@example.net", "07700 900456",
        ("Flat 3, 22 Victoria Road", "Leeds", "West Yorkshire", "LS6 1DR"), "client", "Dr",
    ),
    "ellis": _person(
        "Margaret", "Ellis", "margaret.ellis@example.org", "07700 900789",
        ("The Old Vicarage, Church Lane", "Otley", "West Yorkshire", "LS21 3AB"), "client", "Mrs",
    ),
    "brooks": _person(
        "Hannah", "Brooks", "hannah.brooks@example.com", "07700 900234",
        ("41 Cardigan Road", "Leeds", "West Yorkshire", "LS6 3AG"), "client", "Ms",
    ),
    "grant": _person(
        "Oliver", "Grant", "oliver.grant@example.net", "07700 900567",
        ("8 Albion Street", "Wakefield", "West Yorkshire", "WF1 1AB"), "client", "Mr",
    ),
    "northgate": _company(
        "Northgate Logistics Ltd", "legal@northgate-logistics.example", "0113 496 0111",
        ("Unit 4, Stourton Business Park", "Leeds", "West Yorkshire", "LS10 1RS"), "client",
    ),
    "brightwater": _company(
        "Brightwater Cafés Ltd", "people@brightwater-cafes.example", "0113 496 0222",
        ("17 Call Lane", "Leeds", "West Yorkshire", "LS1 7BT"), "client",
    ),
    "kestrel": _company(
        "Kestrel Software Inc.", "counsel@kestrel-software.example", "+1 512 555 0147",
        ("600 Congress Avenue, Suite 1400", "Austin", "TX", "78701"), "client", "United States",
    ),
    # Other parties.
    "pemberton": _company(
        "Pemberton & Co Solicitors", "conveyancing@pemberton-co.example", "01632 960111",
        ("2 Station Parade", "Harrogate", "North Yorkshire", "HG1 1TT"), "other",
    ),
    "fenwick": _company(
        "Fenwick Foods plc", "contracts@fenwick-foods.example", "01632 960222",
        ("Fenwick House, Thorp Arch Estate", "Wetherby", "West Yorkshire", "LS23 7BJ"), "other",
    ),
    "mark_brooks": _person(
        "Mark", "Brooks", "mark.brooks@example.org", "07700 900890",
        ("9 Spencer Place", "Leeds", "West Yorkshire", "LS7 4DQ"), "other", "Mr",
    ),
    "rachel_ellis": _person(
        "Rachel", "Ellis", "rachel.ellis@example.com", "07700 900345",
        ("22 Grove Road", "Ilkley", "West Yorkshire", "LS29 9PF"), "other", "Ms",
    ),
    # Suppliers.
    "land_registry": _company(
        "HM Land Registry", "customersupport@landregistry.example", "0300 006 0411",
        ("Trafalgar House, 1 Bedford Park", "Croydon", "Surrey", "CR0 2AQ"), "supplier",
    ),
    "searches": _company(
        "Northbank Property Searches Ltd", "orders@northbank-searches.example", "01632 960333",
        ("5 Wellington Place", "Leeds", "West Yorkshire", "LS1 4AP"), "supplier",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class MatterSeed:
    key: str
    client: str
    title: str
    practice_area: str
    responsible: str
    status: str
    fee: str
    open_date: str
    description: str
    participants: tuple[tuple[str, str], ...] = ()
    pending_date: str | None = None


MATTERS: list[MatterSeed] = [
    MatterSeed(
        "purchase", "whitfield", "Purchase of 14 Orchard Lane, Harrogate", "Conveyancing", "EH", "open",
        "1450.00", "2026-09-14",
        "Freehold purchase at £425,000 with a mortgage from Yorkshire Building Society; chain of two.",
        (("pemberton", "seller's solicitor"),),
    ),
    MatterSeed(
        "sale", "khan", "Sale of Flat 3, 22 Victoria Road, Leeds", "Conveyancing", "EH", "pending",
        "1200.00", "2026-10-01",
        "Leasehold sale at £189,500; awaiting the management pack from the freeholder's agent.",
        (("pemberton", "buyer's solicitor"),), "2026-11-16",
    ),
    MatterSeed(
        "probate", "ellis", "Estate of the late Arthur Ellis", "Probate", "MF", "open",
        "3500.00", "2026-08-27",
        "Grant of probate and administration; estate of about £640,000, IHT400 required.",
        (("rachel_ellis", "beneficiary"),),
    ),
    MatterSeed(
        "divorce", "brooks", "Divorce and financial remedy", "Family", "PR", "open",
        "6000.00", "2026-09-03",
        "Divorce application issued; financial disclosure under way, FDA listed for January.",
        (("mark_brooks", "respondent"),),
    ),
    MatterSeed(
        "supply", "northgate", "Master supply agreement with Fenwick Foods", "Commercial", "MF", "pending",
        "8500.00", "2026-10-12",
        "Five-year chilled distribution contract; negotiating liability caps and service levels.",
        (("fenwick", "counterparty"),), "2026-11-18",
    ),
    MatterSeed(
        "tribunal", "brightwater", "Employment tribunal claim: R. Patel (unfair dismissal)", "Employment",
        "PR", "open", "7500.00", "2026-10-20",
        "Defending a claim by a former shift manager; ET3 due 2026-12-01.",
    ),
    MatterSeed(
        "settlement", "grant", "Settlement agreement review", "Employment", "PR", "open",
        "500.00", "2026-11-09",
        "Independent advice on a settlement agreement offered by his employer (fixed fee).",
    ),
]  # fmt: skip


def _letter(m: MatterSeed, matter: dict[str, Any], client_name: str, responsible: str) -> bytes:
    return (
        f"{FIRM}\n{FIRM_ADDRESS}\n\n{m.open_date}\n\nDear {client_name},\n\n"
        f"{m.title}\nOur reference: {matter['display_number']}\n\n"
        f"Thank you for instructing us. {responsible} will have conduct of this matter and will be "
        "your main point of contact.\n\n"
        f"Based on what you have told us, we estimate our fees at £{m.fee} plus VAT and disbursements. "
        "We will tell you promptly if that estimate needs to change.\n\n"
        "Our terms of business are enclosed. Please sign and return a copy.\n\n"
        f"Yours sincerely,\n\n{responsible}\n{FIRM}\n"
    ).encode()


# Documents beyond the client care letter: matter key -> (name, folder, filename, content type, body).
EXTRA_DOCUMENTS: dict[str, list[tuple[str, str, str, str, str]]] = {
    "purchase": [
        (
            "Completion statement", "Finance", "completion-statement.csv", "text/csv",
            "item,debit,credit\nPurchase price,425000.00,\nMortgage advance,,340000.00\n"
            "Deposit paid,,42500.00\nStamp duty land tax,11250.00,\nLand Registry fee,150.00,\n"
            "Search fees,145.00,\nLegal fees (incl. VAT),1740.00,\nBalance due from client,,55795.00\n",
        ),
    ],
    "sale": [
        (
            "Leasehold information notes", "Drafts", "leasehold-notes.md", "text/markdown",
            "# Flat 3, 22 Victoria Road\n\n- Lease: 125 years from 2004\n- Ground rent: £150 a year\n"
            "- Service charge: £1,320 a year, paid to date\n- Management pack: requested 2026-10-20\n",
        ),
    ],
    "probate": [
        (
            "Schedule of assets and liabilities", "Finance", "schedule-of-assets.csv", "text/csv",
            "asset,value\nThe Old Vicarage (half share),310000.00\nNationwide current account,18422.17\n"
            "Premium Bonds,50000.00\nShare portfolio (Hargreaves Lansdown),248310.55\n"
            "Funeral account,-4850.00\nHMRC income tax,-1220.40\n",
        ),
    ],
    "divorce": [
        (
            "Chronology", "Drafts", "chronology.md", "text/markdown",
            "# Brooks v Brooks: chronology\n\n| date | event |\n| --- | --- |\n"
            "| 2011-06-18 | Marriage |\n| 2014-03-02 | Birth of Ella |\n| 2025-12-01 | Separation |\n"
            "| 2026-09-15 | Divorce application issued |\n",
        ),
    ],
    "tribunal": [
        (
            "ET3 grounds of resistance (draft)", "Drafts", "et3-grounds.md", "text/markdown",
            "# Grounds of resistance\n\n1. The claimant was dismissed for gross misconduct on 2026-07-04.\n"
            "2. A fair procedure was followed: investigation, hearing and appeal.\n"
            "3. Dismissal was within the band of reasonable responses.\n",
        ),
    ],
}  # fmt: skip

SUPPLY_AGREEMENT_V1 = (
    "# Master supply agreement (draft 1)\n\nBetween Northgate Logistics Ltd and Fenwick Foods plc.\n\n"
    "1. Term: five years.\n2. Liability cap: 100% of annual charges.\n3. Service levels: Schedule 2.\n"
)
SUPPLY_AGREEMENT_V2 = (
    "# Master supply agreement (draft 2)\n\nBetween Northgate Logistics Ltd and Fenwick Foods plc.\n\n"
    "1. Term: five years, with a break at year three.\n2. Liability cap: 150% of annual charges.\n"
    "3. Service levels: Schedule 2 (on-time delivery 98.5%, service credits capped at 10%).\n"
)

# Time entries: matter, fee earner, date, minutes (None: flat fee), flat fee, narrative, final state.
TIME_ENTRIES: list[tuple[str, str, str, int | None, str | None, str, str]] = [
    ("purchase", "EH", "2026-09-14", 36, None, "Initial call with client; reviewed memorandum of sale", "approved"),
    ("purchase", "TO", "2026-09-21", 90, None, "Reviewed draft contract, title and plan; raised enquiries", "approved"),
    ("purchase", "EH", "2026-10-06", None, "450.00", "Fixed fee: searches review and report on title", "submitted"),
    ("sale", "EH", "2026-10-02", 48, None, "Took instructions on sale; identity and AML checks", "approved"),
    ("sale", "TO", "2026-10-15", 66, None, "Prepared contract pack and sent to buyer's solicitor", "submitted"),
    ("probate", "MF", "2026-08-27", 60, None, "Meeting with executor: will, assets and next steps", "approved"),
    ("probate", "TO", "2026-09-10", 120, None, "Wrote to banks and pension providers for valuations", "approved"),
    ("probate", "MF", "2026-11-05", 42, None, "Reviewed draft IHT400 and schedule of assets", "draft"),
    ("divorce", "PR", "2026-09-03", 72, None, "Initial consultation: children arrangements and finances", "approved"),
    ("divorce", "PR", "2026-10-22", 150, None, "Worked through Form E with client; reviewed disclosure", "submitted"),
    ("supply", "MF", "2026-10-12", 84, None, "Call with client; reviewed heads of terms", "approved"),
    ("supply", "MF", "2026-11-03", 210, None, "Drafted master supply agreement (draft 1)", "submitted"),
    ("supply", "PR", "2026-11-17", 96, None, "Revised liability cap and service levels (draft 2)", "draft"),
    ("tribunal", "PR", "2026-10-20", 66, None, "Reviewed ET1 and the dismissal file", "approved"),
    ("tribunal", "TO", "2026-11-12", 180, None, "Drafted ET3 grounds; collated witness list", "draft"),
    ("settlement", "PR", "2026-11-10", None, "500.00", "Fixed fee: advice on settlement agreement", "submitted"),
]  # fmt: skip

# Expenses: matter, date, amount, supplier (None: none), category, description, final state.
EXPENSES: list[tuple[str, str, str, str | None, str, str, str]] = [
    ("purchase", "2026-09-22", "3.00", "land_registry", "Land Registry fees", "Official copy of the register", "approved"),
    ("purchase", "2026-09-25", "145.00", "searches", "Search fees", "Local authority, drainage and environmental searches", "approved"),
    ("sale", "2026-10-02", "6.00", "land_registry", "Land Registry fees", "Official copies: register and title plan", "submitted"),
    ("probate", "2026-09-30", "300.00", None, "Court fees", "Probate application fee", "approved"),
    ("divorce", "2026-10-28", "593.00", None, "Court fees", "Financial remedy application (Form A) fee", "draft"),
]  # fmt: skip


def _advance(client: httpx.Client, activity_id: str, state: str) -> None:
    steps = {"draft": [], "submitted": ["submit"], "approved": ["submit", "approve"]}[state]
    for step in steps:
        _call(client, f"/activities/{activity_id}/{step}")


def seed_firm(client: httpx.Client) -> SeedCounts:
    """Create the demo firm through the API; a failed call raises DemoError with the problem's detail."""
    counts = SeedCounts()
    users: dict[str, dict[str, Any]] = {}
    rates: dict[str, str] = {}
    for key, name, email, initials, rate in USERS:
        users[key] = _call(client, "/users", json={"name": name, "email": email, "initials": initials})
        rates[key] = rate
        counts.users += 1

    contacts: dict[str, dict[str, Any]] = {}
    for key, body in CONTACTS.items():
        contacts[key] = _call(client, "/contacts", json=body)
        counts.contacts += 1

    matters: dict[str, dict[str, Any]] = {}
    for m in MATTERS:
        matter_body: dict[str, Any] = {
            "title": m.title,
            "description": m.description,
            "client_id": contacts[m.client]["id"],
            "practice_area": m.practice_area,
            "responsible_user_id": users[m.responsible]["id"],
            "status": m.status,
            "open_date": m.open_date,
            "fee_estimate": _money(m.fee),
            "participants": [{"contact_id": contacts[c]["id"], "role": role} for c, role in m.participants],
        }
        if m.pending_date:
            matter_body["pending_date"] = m.pending_date
        matters[m.key] = _call(client, "/matters", json=matter_body)
        counts.matters += 1

        client_body = CONTACTS[m.client]
        salutation = (
            f"{client_body.get('title')} {client_body['last_name']}"
            if client_body["kind"] == "person"
            else "Sir or Madam"
        )
        responsible = next(u[1] for u in USERS if u[0] == m.responsible)
        docs = [
            (
                "Client care letter",
                "Correspondence",
                "client-care-letter.txt",
                "text/plain",
                _letter(m, matters[m.key], salutation, responsible),
            )
        ]
        docs += [(n, f, fn, ct, text.encode()) for n, f, fn, ct, text in EXTRA_DOCUMENTS.get(m.key, [])]
        if m.key == "supply":
            docs.append(
                (
                    "Master supply agreement",
                    "Drafts",
                    "master-supply-agreement.md",
                    "text/markdown",
                    SUPPLY_AGREEMENT_V1.encode(),
                )
            )
        for name, folder, filename, content_type, data in docs:
            params = {"matter_id": str(matters[m.key]["id"]), "name": name, "folder_path": folder}
            params["filename"] = filename
            doc = _call(client, "/documents", content=data, content_type=content_type, params=params)
            counts.documents += 1
            if name == "Master supply agreement":
                _call(
                    client,
                    f"/documents/{doc['id']}/versions",
                    content=SUPPLY_AGREEMENT_V2.encode(),
                    content_type=content_type,
                    params={"filename": "master-supply-agreement-v2.md"},
                )

    for matter_key, user_key, day, minutes, flat, narrative, state in TIME_ENTRIES:
        entry: dict[str, Any] = {
            "kind": "time",
            "matter_id": matters[matter_key]["id"],
            "date": day,
            "user_id": users[user_key]["id"],
            "description": narrative,
        }
        if flat is not None:
            entry["flat_fee"] = _money(flat)
        else:
            entry["duration_seconds"] = (minutes or 0) * 60
            entry["rate"] = _money(rates[user_key])
        created = _call(client, "/activities", json=entry)
        _advance(client, str(created["id"]), state)
        counts.time_entries += 1

    for matter_key, day, amount, supplier, category, description, state in EXPENSES:
        expense: dict[str, Any] = {
            "kind": "expense",
            "matter_id": matters[matter_key]["id"],
            "date": day,
            "amount": _money(amount),
            "category": category,
            "description": description,
        }
        if supplier is not None:
            expense["supplier_id"] = contacts[supplier]["id"]
        created = _call(client, "/activities", json=expense)
        _advance(client, str(created["id"]), state)
        counts.expenses += 1
    return counts
