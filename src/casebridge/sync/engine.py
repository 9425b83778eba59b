"""Reconcile one link: read both sides, decide per field, write, record. Level-triggered and idempotent.

``reconcile`` is what every trigger ends in (docs/sync.md). It holds the link's lease, then runs
rounds until a round completes: a 412 from the remote, a local record that changed under us, a record
just created on one side or a dependency synced first all end a round early and start the next with
what was learnt. Remote calls happen outside any database transaction; each local write commits with
the link's new base and snapshot and a journal entry, so a crash at any point leaves a state the next
reconcile continues from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casebridge.db.session import Database, unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.outbox import set_actor
from casebridge.models import Connection, SyncConflict, SyncLink
from casebridge.models.sync import CONFLICT, CONNECTED, ERROR, LINKED, NEEDS_REAUTHORIZATION, UNLINKED
from casebridge.sync import canonical, merge, repository
from casebridge.sync.entities import EntitySpec, LocalState, Refs, RemoteAdapter, RemoteRecord, StaleLocal
from casebridge.sync.errors import (
    LeaseBusy,
    NeedsDependency,
    NeedsPerson,
    NotFound,
    PreconditionFailed,
    RateLimited,
    SyncError,
    Transient,
    Unauthorized,
)
from casebridge.sync.local import sync_principal
from casebridge.sync.settings import SyncSettings

log = logging.getLogger("casebridge.sync")

MAX_ROUNDS = 6
MAX_DEPTH = 2  # a matter's client, and no deeper
CREATE_SEARCH_MARGIN = timedelta(minutes=10)  # clock skew allowed when looking for a record we created


class Connector(Protocol):
    """A vendor: how to get an API client for a connection and the remote adapter of an entity."""

    def client(self, connection_id: uuid.UUID, *, bulk: bool, calls: list[Any]) -> Any: ...

    def remote(self, entity: str) -> RemoteAdapter: ...


@dataclass
class SyncEnv:
    db: Database
    connectors: dict[str, Connector]
    specs: dict[str, EntitySpec]
    # Called with (point name) at moments a crash test wants to interrupt; a no-op in production.
    crash_point: Callable[[str], None] = lambda _name: None


@dataclass
class _View:
    """What a round read, detached from its session."""

    link_id: uuid.UUID
    owner: str  # whose lease this round runs under
    connection_id: uuid.UUID
    connection_name: str
    vendor: str
    entity: str
    local_id: uuid.UUID | None
    remote_id: int | None
    state: str
    base: dict[str, Any] | None
    snapshot: RemoteRecord | None
    snapshot_etag: str | None  # the link's remote etag when this round read it
    remote_stale: bool
    remote_deleted: bool
    intent: dict[str, Any] | None
    adopt: bool
    settings: SyncSettings
    history_before: datetime | None  # remote records created before this are history (Connection)
    local: LocalState | None
    resolutions: dict[str, Any]
    missing: NeedsDependency | None  # a reference of the local record not synced yet


@dataclass
class _Round:
    """What carries from one round to the next within a reconcile."""

    remote: RemoteRecord | None = None  # the freshest remote record this reconcile has read or written
    force_read: bool = False
    calls: list[Any] = field(default_factory=list)
    journaled_calls: int = 0


class _Again(Exception):
    """End this round and start the next."""


def reconcile(
    env: SyncEnv, link_id: uuid.UUID, *, trigger: str, owner: str, bulk: bool = False, depth: int = 0
) -> None:
    """Bring one link's two records into agreement (or record why not)."""
    with unit_of_work(env.db.writer) as session:
        if not repository.claim(session, link_id, owner):
            if session.get(SyncLink, link_id) is None:
                return  # gone: absorbed into the link that created its record
            raise LeaseBusy(f"link {link_id} is being reconciled by another worker")
    state = _Round()
    try:
        for _ in range(MAX_ROUNDS):
            try:
                _round(env, link_id, trigger, owner, bulk, depth, state)
                return
            except _Again:
                continue
            except (PreconditionFailed, NotFound):
                # Changed (412) or deleted (404) since we read it: read it again (a 404 then means deleted).
                state.remote, state.force_read = None, True
                continue
            except (StaleLocal, IntegrityError):
                continue  # someone changed the record or the links under us: read again
            except NeedsDependency as dep:
                if depth >= MAX_DEPTH:
                    raise NeedsPerson(str(dep)) from dep
                _sync_dependency(env, link_id, dep, owner=owner, bulk=bulk, depth=depth)
                continue
        raise Transient("the record kept changing while it was being synced; trying again shortly")
    except SyncError as exc:
        _record_failure(env, link_id, exc, trigger, state)
        raise
    finally:
        with unit_of_work(env.db.writer) as session:
            repository.release(session, link_id, owner)


# --- one round ------------------------------------------------------------------------------------


def _read(env: SyncEnv, session: Session, link: SyncLink, owner: str) -> _View | None:
    conn = session.get(Connection, link.connection_id)
    if conn is None or conn.state != CONNECTED or link.state == UNLINKED:
        return None
    spec = env.specs[link.entity]
    # Read loosely: a reference not synced yet matters only when the values are written or compared
    # (then ``missing`` is raised); a delete, say, needs no synced client.
    refs = Refs(session, conn.id, strict=False)
    local = spec.local.read(session, link.local_id, refs) if link.local_id is not None else None
    resolutions = {
        c.field: c.resolved_value for c in repository.conflicts_of(session, link.id) if c.state == "resolved"
    }
    return _View(
        link_id=link.id,
        owner=owner,
        connection_id=conn.id,
        connection_name=conn.name,
        vendor=conn.vendor,
        entity=link.entity,
        local_id=link.local_id,
        remote_id=link.remote_id,
        state=link.state,
        base=dict(link.base) if link.base is not None else None,
        snapshot=repository.snapshot_record(link),
        snapshot_etag=link.remote_etag,
        remote_stale=link.remote_stale,
        remote_deleted=link.remote_deleted_at is not None,
        intent=dict(link.intent) if link.intent is not None else None,
        adopt=link.adopt,
        settings=SyncSettings.model_validate(conn.settings or {}),
        history_before=conn.history_before,
        local=local,
        resolutions=resolutions,
        missing=refs.missing[0] if refs.missing else None,
    )


def _round(
    env: SyncEnv, link_id: uuid.UUID, trigger: str, owner: str, bulk: bool, depth: int, st: _Round
) -> None:
    with unit_of_work(env.db.reader) as session:
        link = session.get(SyncLink, link_id)
        if link is None:
            return
        view = _read(env, session, link, owner)
    if view is None:
        return
    spec = env.specs[view.entity]
    connector = env.connectors[view.vendor]
    remote = connector.remote(view.entity)
    client = connector.client(view.connection_id, bulk=bulk, calls=st.calls)
    live_local = view.local is not None and not view.local.archived
    if view.remote_id is None:
        if live_local and view.missing is not None:
            raise view.missing
        _create_remote(env, view, spec, remote, client, trigger, st)
        return
    if view.local_id is None:
        _create_local(env, view, spec, remote, client, trigger, st)
        return
    current = _remote_now(view, remote, client, st)
    if current is None:
        _remote_deleted(env, view, spec, trigger, st)
        return
    if not live_local:
        _local_deleted(env, view, spec, remote, client, trigger, st, current)
        return
    if view.missing is not None:
        raise view.missing
    _merge(env, view, spec, remote, client, trigger, st, current)


def _remote_now(view: _View, remote: RemoteAdapter, client: Any, st: _Round) -> RemoteRecord | None:
    """The remote record as it is now, reading it only when what we have may be out of date."""
    if view.remote_deleted:
        return None
    known = st.remote
    snap = view.snapshot
    if not st.force_read and not view.remote_stale:
        if known is not None and (snap is None or known.updated_at >= snap.updated_at):
            return known
        if snap is not None:
            return snap
    assert view.remote_id is not None
    try:
        st.remote = remote.get(client, view.remote_id)
    except NotFound:
        return None
    st.force_read = False
    return st.remote


def _calls(st: _Round) -> list[str]:
    new = [str(c) for c in st.calls[st.journaled_calls :]]
    st.journaled_calls = len(st.calls)
    return new


def _commit_link(
    env: SyncEnv, view: _View, write: Callable[[Session, SyncLink], None], st: _Round | None = None
) -> None:
    """One transaction: lock the link, ``write`` (local changes, link, journal), commit. The sync
    principal is the actor of any local change, so the events it raises are recognised as ours."""
    mark = st.journaled_calls if st is not None else 0
    try:
        with unit_of_work(env.db.writer) as session:
            set_actor(session, sync_principal(view.connection_id, view.connection_name), None)
            link = repository.lock(session, view.link_id)
            if link is None:
                return
            if link.lease_owner != view.owner:
                # Our lease ran out (a long wait for the rate limit) and another worker took the record:
                # it carries on from what is recorded (an intent makes it look before creating again).
                raise LeaseBusy(f"link {view.link_id} was taken over by another worker")
            link.lease_until = utcnow() + repository.LEASE
            write(session, link)
    except BaseException:
        if st is not None:
            st.journaled_calls = mark  # the journal entry rolled back: its calls go in the next one
        raise


def _journal(
    session: Session, link: SyncLink, st: _Round, *, trigger: str, action: str, summary: str, **detail: Any
) -> None:
    """The link's journal entry for this step, with the API calls made since the last entry."""
    repository.journal(
        session, link, trigger=trigger, action=action, summary=summary, detail={**detail, "calls": _calls(st)}
    )


def _settled(link: SyncLink, now: datetime) -> None:
    link.error = None
    link.error_count = 0
    link.next_retry_at = None
    link.last_synced_at = now


# --- creating on the other side ---------------------------------------------------------------


def _create_remote(
    env: SyncEnv, view: _View, spec: EntitySpec, remote: RemoteAdapter, client: Any, trigger: str, st: _Round
) -> None:
    local = view.local
    if local is None or local.archived:

        def unlink(_: Session, link: SyncLink) -> None:
            if view.local_id is not None:
                again = spec.local.read(_, view.local_id, Refs(_, view.connection_id, strict=False))
                if again is not None and not again.archived:
                    raise StaleLocal("restored while it was being synced")  # the next round creates it
            link.state = UNLINKED
            link.unlinked_reason = "archived in Casebridge before it was synced"
            link.intent = None
            _settled(link, utcnow())
            repository.journal(
                _, link, trigger=trigger, action="skip", summary=link.unlinked_reason, detail={}
            )

        _commit_link(env, view, unlink, st)
        return
    values = {f: local.values[f] for f in spec.fields if f not in spec.pull_only}
    created: RemoteRecord | None = None
    how = "created"
    sent = values  # what the record in Clio was made from: the merge base
    if view.intent is not None:
        # A create may have happened without us recording it: look before creating again.
        since = datetime.fromisoformat(view.intent["at"]) - CREATE_SEARCH_MARGIN
        taken = _taken_remote_ids(env, view)
        found = [
            r for r in remote.find_created(client, view.intent["values"], since) if r.remote_id not in taken
        ]
        if found:
            created, how = min(found, key=lambda r: r.remote_id), "found (created by an earlier attempt)"
            # Made from the values of that attempt: an edit here since then is pushed by the next round.
            sent = dict(view.intent["values"])
    if created is None:
        intent = {"at": utcnow().isoformat(), "values": values}

        def record_intent(_: Session, link: SyncLink) -> None:
            link.intent = intent

        _commit_link(env, view, record_intent, st)
        try:
            created = remote.create(client, values)
        except NeedsPerson:
            _commit_link(env, view, lambda _s, link: setattr(link, "intent", None))
            raise
        env.crash_point("sync.after_remote_create")
    record = created
    st.remote = record

    def finish(session: Session, link: SyncLink) -> None:
        _absorb(session, link, record.remote_id)
        link.remote_id = record.remote_id
        repository.advance_snapshot(link, record, authoritative=True, read_etag=view.snapshot_etag)
        link.base = {f: sent[f] for f in spec.merged if f in sent}
        link.intent = None
        link.state = LINKED
        _settled(link, utcnow())
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="create_remote",
            summary=f"{how} in Clio as {spec.name} {record.remote_id}",
            sent=sent,
        )

    _commit_link(env, view, finish, st)
    raise _Again  # the next round pulls what the remote side assigned (a matter's number)


def _absorb(session: Session, link: SyncLink, remote_id: int) -> None:
    try:
        repository.absorb_placeholder(session, link, remote_id)
    except ValueError as exc:
        raise NeedsPerson(f"{exc}: two Casebridge records stand for one Clio record; merge them") from None


def _taken_remote_ids(env: SyncEnv, view: _View) -> set[int]:
    from sqlalchemy import select

    with unit_of_work(env.db.reader) as session:
        rows = session.scalars(
            select(SyncLink.remote_id).where(
                SyncLink.connection_id == view.connection_id,
                SyncLink.entity == view.entity,
                SyncLink.remote_id.is_not(None),
                SyncLink.local_id.is_not(None),
            )
        )
        return {int(r) for r in rows if r is not None}


def _create_local(
    env: SyncEnv, view: _View, spec: EntitySpec, remote: RemoteAdapter, client: Any, trigger: str, st: _Round
) -> None:
    record = _remote_now(view, remote, client, st)
    if record is None:

        def unlink(session: Session, link: SyncLink) -> None:
            link.state = UNLINKED
            link.remote_deleted_at = utcnow()
            link.unlinked_reason = "deleted in Clio before it was synced"
            _settled(link, utcnow())
            _journal(
                session,
                link,
                st,
                trigger=trigger,
                action="skip",
                summary=link.unlinked_reason,
            )

        _commit_link(env, view, unlink, st)
        return

    with unit_of_work(env.db.reader) as session:
        ours = [
            intent
            for intent in repository.open_intents(session, view.connection_id, view.entity)
            if all(record.values.get(f) == v for f, v in intent.values.items() if f not in spec.pull_only)
        ]
    if ours:
        # Probably our own create, made by a reconcile that has not recorded it yet (or died before it
        # could): that link's reconcile finds the record and takes this placeholder in. This link stays
        # pending (looked at again later if nothing takes it). An owner nobody is working on is asked
        # now; one under a lease (running, or a dead worker's job that will be rescued and reclaim it)
        # or waiting for its retry time is left to it.
        def wait(session: Session, link: SyncLink) -> None:
            for intent in ours:
                if intent.idle:
                    repository.enqueue_reconcile(session, intent.link_id, trigger="found-by-placeholder")
            _journal(
                session,
                link,
                st,
                trigger=trigger,
                action="wait",
                summary=f"a create of this {view.entity} in Clio is being recorded by another link",
                links=[str(i.link_id) for i in ours],
            )

        _commit_link(env, view, wait, st)
        return

    if _history(view, record):
        _link_history(env, view, spec, trigger, st, record)  # raises _Again when it found the same record

    def create(session: Session, link: SyncLink) -> None:
        refs = Refs(session, view.connection_id)
        local_id = spec.local.create(session, record.values, refs)
        link.local_id = local_id
        repository.advance_snapshot(link, record, authoritative=True, read_etag=view.snapshot_etag)
        link.base = {f: record.values.get(f) for f in spec.merged}
        link.state = LINKED
        _settled(link, utcnow())
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="create_local",
            summary=f"created in Casebridge from Clio {spec.name} {record.remote_id}",
            received=record.values,
        )

    _commit_link(env, view, create, st)
    raise _Again  # compare what Casebridge stored (its rules may have filled in a value) with Clio


def _history(view: _View, record: RemoteRecord) -> bool:
    boundary, created = view.history_before, record.created_at
    return boundary is not None and created is not None and created < boundary


def _link_history(
    env: SyncEnv, view: _View, spec: EntitySpec, trigger: str, st: _Round, record: RemoteRecord
) -> None:
    """A remote record from before the connection that is synced anyway (a new Clio matter's client)
    may already be here: link it to the one same record (as a backfill would) rather than copy it."""
    with unit_of_work(env.db.reader) as session:
        refs = Refs(session, view.connection_id, strict=False)
        same = []
        for local_id in spec.local.candidates(session, view.connection_id, record.values):
            state = spec.local.read(session, local_id, refs)
            if state is not None and canonical.same_record(spec.name, state.values, record.values):
                same.append(local_id)
    if len(same) != 1:
        return

    def adopt(session: Session, link: SyncLink) -> None:
        link.local_id = same[0]
        repository.advance_snapshot(link, record, authoritative=True, read_etag=view.snapshot_etag)
        link.base, link.adopt = None, True  # no base: where the two differ, the conflict policy decides
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="link",
            summary=f"linked to the same {spec.name} here: both existed before the connection",
            received=record.values,
        )

    _commit_link(env, view, adopt, st)
    raise _Again


# --- deletes --------------------------------------------------------------------------------------


def _remote_deleted(env: SyncEnv, view: _View, spec: EntitySpec, trigger: str, st: _Round) -> None:
    policy = view.settings.on_delete(view.entity)
    now = utcnow()

    def apply(session: Session, link: SyncLink) -> None:
        archived = False
        in_use = None
        if policy == "propagate" and view.local is not None and not view.local.archived:
            assert view.local_id is not None
            in_use = spec.local.in_use(session, view.local_id)
            if in_use is None:
                spec.local.archive(session, view.local_id)
                archived = True
        link.remote_deleted_at = link.remote_deleted_at or now
        link.state = UNLINKED
        link.unlinked_reason = {
            "propagate": f"deleted in Clio on {now:%Y-%m-%d %H:%M} UTC; archived here too",
            "unlink": f"deleted in Clio on {now:%Y-%m-%d %H:%M} UTC; kept here, no longer synced",
            "ignore": f"deleted in Clio on {now:%Y-%m-%d %H:%M} UTC (ignored by policy)",
        }[policy]
        if in_use is not None:
            link.unlinked_reason = (
                f"deleted in Clio on {now:%Y-%m-%d %H:%M} UTC; kept here because it is {in_use} "
                "(it is created in Clio again when that is synced)"
            )
        _settled(link, now)
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="archive_local" if archived else "unlink",
            summary=link.unlinked_reason,
            policy=policy,
        )

    _commit_link(env, view, apply, st)


def _local_deleted(
    env: SyncEnv,
    view: _View,
    spec: EntitySpec,
    remote: RemoteAdapter,
    client: Any,
    trigger: str,
    st: _Round,
    current: RemoteRecord,
) -> None:
    policy = view.settings.on_delete(view.entity)
    if policy == "ignore":

        def note(session: Session, link: SyncLink) -> None:
            _settled(link, utcnow())
            _journal(
                session,
                link,
                st,
                trigger=trigger,
                action="skip",
                summary="archived in Casebridge: the delete policy is ignore, so Clio keeps it and the link "
                "stays; nothing syncs until it is restored here",
                policy=policy,
            )

        _commit_link(env, view, note, st)
        return
    if policy == "propagate":
        try:
            remote.delete(client, current.remote_id)
        except NeedsPerson as refused:
            _undo_local_delete(env, view, spec, trigger, st, refused)
            return
    now = utcnow()

    def apply(session: Session, link: SyncLink) -> None:
        link.state = UNLINKED
        if policy == "propagate":
            link.remote_deleted_at = now
            link.unlinked_reason = f"archived in Casebridge on {now:%Y-%m-%d %H:%M} UTC; deleted in Clio too"
        else:
            link.unlinked_reason = (
                f"archived in Casebridge on {now:%Y-%m-%d %H:%M} UTC; kept in Clio, no longer synced"
            )
        _settled(link, now)
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="delete_remote" if policy == "propagate" else "unlink",
            summary=link.unlinked_reason,
            policy=policy,
        )

    _commit_link(env, view, apply, st)


def _undo_local_delete(
    env: SyncEnv, view: _View, spec: EntitySpec, trigger: str, st: _Round, refused: NeedsPerson
) -> None:
    """Clio refused to delete the record (a contact that is still a matter's client there): the delete
    cannot cross, so it is undone here rather than leaving the two sides apart."""
    assert view.local_id is not None
    local_id = view.local_id

    def restore(session: Session, link: SyncLink) -> None:
        spec.local.restore(session, local_id)
        _settled(link, utcnow())
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="restore_local",
            summary=f"Clio refused to delete it ({refused}); restored in Casebridge",
        )

    _commit_link(env, view, restore, st)
    raise _Again


# --- the merge ------------------------------------------------------------------------------------


def _merge(
    env: SyncEnv,
    view: _View,
    spec: EntitySpec,
    remote: RemoteAdapter,
    client: Any,
    trigger: str,
    st: _Round,
    current: RemoteRecord,
) -> None:
    local = view.local
    assert local is not None
    assert view.local_id is not None
    decisions = merge.decide(
        spec.merged,
        None if view.adopt else view.base,
        local.values,
        current.values,
        policy=view.settings.conflict(view.entity),
        pull_only=spec.pull_only,
        # Clio's timestamps are whole seconds: compare at that precision; a tie goes to Clio.
        local_is_newer=local.updated_at.replace(microsecond=0) > current.updated_at,
        resolutions=view.resolutions,
        coupled=spec.coupled,
    )
    pushes = {d.field: d.value for d in decisions if d.push and d.field not in spec.pull_only}
    final = current
    if pushes:
        final = remote.update(client, current, pushes)
        st.remote = final
    pulls = {d.field: d.value for d in decisions if d.pull}
    # Whatever the remote stored for a field we pushed is what both sides end with.
    for f, sent in pushes.items():
        if final.values.get(f) != sent:
            pulls[f] = final.values.get(f)
    agreed = {d.field: d.value for d in decisions if not d.held}
    agreed.update({f: final.values.get(f) for f in pushes})
    agreed.update(pulls)
    held = [d for d in decisions if d.held]
    now = utcnow()

    def apply(session: Session, link: SyncLink) -> None:
        if pulls:
            spec.local.update(session, view.local_id, local.version, pulls, Refs(session, view.connection_id))  # type: ignore[arg-type]
        base = dict(link.base or {}) if not view.adopt else {}
        base.update(agreed)
        link.base = base
        link.adopt = False
        repository.advance_snapshot(link, final, authoritative=bool(pushes), read_etag=view.snapshot_etag)
        _conflicts(session, link, view, held, decisions, now)
        link.state = CONFLICT if held else LINKED
        _settled(link, now)
        changed = [d for d in decisions if d.action != "same"]
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action=_action(pushes, pulls, held),
            summary=_summary(pushes, pulls, held),
            decisions=[
                {
                    "field": d.field,
                    "action": d.action,
                    "why": d.why,
                    "local": d.local,
                    "remote": d.remote,
                    "base": d.base,
                }
                for d in changed
            ],
        )

    _commit_link(env, view, apply, st)


def _action(pushes: dict[str, Any], pulls: dict[str, Any], held: list[merge.Decision]) -> str:
    parts = [name for name, on in (("push", pushes), ("pull", pulls), ("conflict", held)) if on]
    return "+".join(parts) or "noop"


def _summary(pushes: dict[str, Any], pulls: dict[str, Any], held: list[merge.Decision]) -> str:
    parts = []
    if pushes:
        parts.append(f"sent {', '.join(sorted(pushes))} to Clio")
    if pulls:
        parts.append(f"took {', '.join(sorted(pulls))} from Clio")
    if held:
        parts.append(f"held {', '.join(d.field for d in held)} for review (changed on both sides)")
    return "; ".join(parts) or "in sync: nothing to do"


def _conflicts(
    session: Session,
    link: SyncLink,
    view: _View,
    held: list[merge.Decision],
    decisions: list[merge.Decision],
    now: datetime,
) -> None:
    existing = {c.field: c for c in repository.conflicts_of(session, link.id)}
    held_fields = {d.field for d in held}
    for d in held:
        row = existing.get(d.field)
        if row is None or row.state != "open":
            row = SyncConflict(
                connection_id=link.connection_id,
                link_id=link.id,
                entity=link.entity,
                local_id=link.local_id,
                remote_id=link.remote_id,
                field=d.field,
                state="open",
            )
            session.add(row)
        row.base_value, row.local_value, row.remote_value = d.base, d.local, d.remote
    for name, row in existing.items():
        if name in held_fields:
            continue
        if row.state == "resolved":
            row.applied_at = now
        elif row.state == "open":
            row.state = "resolved"
            row.resolution = (
                "agreed" if any(d.field == name and d.action == "same" for d in decisions) else "policy"
            )
            row.resolved_at = row.applied_at = now
            row.resolved_by = "sync"


# --- dependencies and failures -------------------------------------------------------------------


def _sync_dependency(
    env: SyncEnv, link_id: uuid.UUID, dep: NeedsDependency, *, owner: str, bulk: bool, depth: int
) -> None:
    """Sync the record a reference points at (a matter's client), under its own lease."""
    with unit_of_work(env.db.writer) as session:
        link = session.get(SyncLink, link_id)
        assert link is not None
        conn = session.get(Connection, link.connection_id)
        assert conn is not None
        settings = SyncSettings.model_validate(conn.settings or {})
        if dep.local_id is not None:
            existing = repository.find(session, conn.id, dep.entity, local_id=dep.local_id)  # type: ignore[arg-type]
            if existing is None and not settings.auto_sync_clients:
                raise NeedsPerson(
                    f"the client contact {dep.local_id} is not synced with Clio; sync it first "
                    f"(POST /api/v1/contacts/{dep.local_id}/sync) or turn on auto_sync_clients"
                )
            target = existing or repository.ensure_link(session, conn.id, dep.entity, local_id=dep.local_id)  # type: ignore[arg-type]
        else:
            target = repository.ensure_link(session, conn.id, dep.entity, remote_id=dep.remote_id)
        if target.state == UNLINKED:
            if not settings.auto_sync_clients:
                raise NeedsPerson(
                    f"the {dep.entity} this record refers to is no longer synced ({target.unlinked_reason}); "
                    "sync it again, or turn on auto_sync_clients"
                )
            repository.resync(target)
            repository.journal(
                session,
                target,
                trigger="dependency",
                action="resync",
                summary=f"synced again: {link.entity} {link.local_id or link.remote_id} refers to it",
                detail={},
            )
        if target.local_id is not None and settings.auto_sync_clients:
            # A live record uses it (a matter, here or in Clio, whose client was archived here): the
            # archive cannot stand — in Clio a matter's client cannot be deleted — so it is undone.
            state = env.specs[dep.entity].local.read(
                session, target.local_id, Refs(session, conn.id, strict=False)
            )
            if state is not None and state.archived:
                set_actor(session, sync_principal(conn.id, conn.name), None)
                env.specs[dep.entity].local.restore(session, target.local_id)
                if target.state == UNLINKED:
                    repository.resync(target)
                repository.journal(
                    session,
                    target,
                    trigger="dependency",
                    action="restore_local",
                    summary=f"restored in Casebridge: {link.entity} {link.local_id or link.remote_id} refers to it",
                    detail={},
                )
        target_id = target.id
    reconcile(env, target_id, trigger="dependency", owner=owner, bulk=bulk, depth=depth + 1)
    with unit_of_work(env.db.reader) as session:
        after = session.get(SyncLink, target_id)
        if after is not None and after.state == UNLINKED:
            if after.local_id is not None:
                refs = Refs(session, after.connection_id, strict=False)
                state = env.specs[dep.entity].local.read(session, after.local_id, refs)
                if state is not None and not state.archived:
                    # Restored above while another worker was ending its link (it had read it archived):
                    # the next round starts it again. (Rounds are bounded: this cannot loop for ever.)
                    return
            # It could not be synced (archived here and deleted in Clio, say): looping cannot help.
            raise NeedsPerson(
                f"the {dep.entity} this record refers to cannot be synced ({after.unlinked_reason}); "
                f"restore it or refer to another {dep.entity}"
            )


def _record_failure(env: SyncEnv, link_id: uuid.UUID, exc: SyncError, trigger: str, st: _Round) -> None:
    if isinstance(exc, LeaseBusy | RateLimited):
        return
    now = utcnow()
    with unit_of_work(env.db.writer) as session:
        link = repository.lock(session, link_id)
        if link is None:
            return
        if isinstance(exc, Unauthorized):
            conn = session.get(Connection, link.connection_id)
            if conn is not None and conn.state == CONNECTED:  # not one disconnected while we worked
                conn.state = NEEDS_REAUTHORIZATION
                conn.last_error, conn.last_error_at = str(exc), now
        link.error_count += 1
        link.error = str(exc)[:2000]
        if isinstance(exc, NeedsPerson) or link.error_count >= 3:
            link.state = ERROR if link.state != UNLINKED else UNLINKED
        # A refusal is retried slowly (its cause may be fixed elsewhere); anything else with backoff.
        # (10 minutes, 20, 40, … up to 6 hours; 2 s, 4 s, … for the rest.)
        base = 600 if isinstance(exc, NeedsPerson) else 1
        step = 2 ** min(link.error_count - 1 if base > 1 else link.error_count, 12)
        link.next_retry_at = now + timedelta(seconds=min(6 * 3600, base * step))
        _journal(
            session,
            link,
            st,
            trigger=trigger,
            action="error",
            summary=str(exc)[:500],
            error=type(exc).__name__,
        )
