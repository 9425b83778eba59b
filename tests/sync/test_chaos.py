"""The seeded chaos test: random creates, edits and deletes of contacts and matters on both sides, with
the sandbox's faults on (5xx, dropped connections, timeouts, latency; lost, duplicated and reordered
webhooks) and the workers restarted now and then. Then quiesce, and assert that both sides converge
(every mapped field of every linked pair equal), that nothing is duplicated, and that the API calls
spent per change stay within a bound.

CI runs two seeds on each database. ``CASEBRIDGE_CHAOS_SEEDS=1-20`` runs twenty (docs/sync.md).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.sync.conftest import Connected

CALLS_PER_CHANGE = 4.0  # every request Casebridge sent to Clio, per change made on either side
WRITES_PER_CHANGE = 1.5  # Casebridge's POST/PATCH/DELETE to Clio, per change


def _seeds() -> list[int]:
    raw = os.environ.get("CASEBRIDGE_CHAOS_SEEDS", "1,2")
    seeds: list[int] = []
    for part in raw.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds += range(int(lo), int(hi) + 1)
        elif part.strip():
            seeds.append(int(part))
    return seeds


@dataclass
class Driver:
    """Changes made by people on both sides, counted."""

    connected: Connected
    rng: random.Random
    changes: int = 0
    clio_writes: int = 0  # the driver's own writes to Clio (not Casebridge's)
    clio_reads: int = 0
    serial: int = 0
    log: list[str] = field(default_factory=list)

    # --- Clio, through its API (faults apply) --------------------------------------------------

    def clio(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """A person's request to Clio; a fault (5xx, dropped connection) is retried, a POST only after
        checking it did not happen."""
        for _ in range(8):
            if method == "GET":
                self.clio_reads += 1
            else:
                self.clio_writes += 1
            try:
                r = self.connected.clio.user.request(method, path, timeout=10, **kwargs)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code < 500:
                return r
            if method == "POST":
                return None  # the caller checks whether it was created
            time.sleep(0.05)
        return None

    def clio_contacts(self) -> list[dict[str, Any]]:
        return self.connected.clio.records("contacts")

    def clio_matters(self) -> list[dict[str, Any]]:
        return self.connected.clio.records("matters")

    # --- Casebridge, through its API ------------------------------------------------------------

    def local(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A person's request here; a 412 (the sync changed the record while the request ran) is
        retried, as the person would."""
        for _ in range(10):
            r = self.connected.api.request(method, path, **kwargs)
            if r.status_code != 412:
                return r
            time.sleep(0.05)
        return r

    def here(self, kind: str) -> list[dict[str, Any]]:
        r = self.connected.api.get(f"/api/v1/{kind}", params={"limit": 200})
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()["data"]
        return rows

    # --- operations ---------------------------------------------------------------------------

    def name(self) -> str:
        self.serial += 1
        return f"N{self.serial:03d}"

    def create_contact_here(self) -> None:
        body = {
            "kind": "person",
            "first_name": self.rng.choice(["Ann", "Bob", "Cy"]),
            "last_name": self.name(),
        }
        if self.rng.random() < 0.5:
            body["emails"] = [{"address": f"{body['last_name'].lower()}@example.com"}]
        assert self.connected.api.post("/api/v1/contacts", json=body).status_code == 201

    def create_contact_in_clio(self) -> None:
        last = self.name()
        data: dict[str, Any] = {"type": "Person", "first_name": "Clio", "last_name": last}
        if self.rng.random() < 0.5:
            data["phone_numbers"] = [{"name": "Work", "number": f"+44 {self.serial:04d}"}]
        if self.clio("POST", "/contacts", json={"data": data}) is None and not any(
            c.get("last_name") == last for c in self.clio_contacts()
        ):
            self.clio("POST", "/contacts", json={"data": data})

    def edit_contact_here(self) -> None:
        contacts = self.here("contacts")
        if contacts:
            c = self.rng.choice(contacts)
            body = {"first_name": self.rng.choice(["Dee", "Eve", "Fay", "Gus"])}
            if self.rng.random() < 0.3:
                body["phones"] = [{"number": f"+1 555 {self.rng.randrange(1000, 9999)}", "kind": "mobile"}]
            r = self.local("PATCH", f"/api/v1/contacts/{c['id']}", json=body)
            assert r.status_code in (200, 409), r.text

    def edit_contact_in_clio(self) -> None:
        contacts = self.clio_contacts()
        if contacts:
            c = self.rng.choice(contacts)
            data: dict[str, Any] = {"first_name": self.rng.choice(["Hal", "Ivy", "Jo", "Kit"])}
            if self.rng.random() < 0.3:
                data["email_addresses"] = [
                    {"id": e["id"], "_destroy": True} for e in c.get("email_addresses") or []
                ] + [{"name": "Home", "address": f"x{self.rng.randrange(999)}@clio.example"}]
            self.clio("PATCH", f"/contacts/{c['id']}", json={"data": data})

    def _clients_here(self) -> set[str]:
        return {m["client_id"] for m in self.here("matters")}

    def delete_contact_here(self) -> None:
        clients = self._clients_here()
        contacts = [c for c in self.here("contacts") if c["id"] not in clients]
        if contacts:
            c = self.rng.choice(contacts)
            assert self.local("DELETE", f"/api/v1/contacts/{c['id']}").status_code == 200

    def delete_contact_in_clio(self) -> None:
        clients = {m.get("client_id") for m in self.clio_matters()}
        contacts = [c for c in self.clio_contacts() if c["id"] not in clients]
        if contacts:
            self.clio("DELETE", f"/contacts/{self.rng.choice(contacts)['id']}")

    def create_matter_here(self) -> None:
        contacts = self.here("contacts")
        if contacts:
            client = self.rng.choice(contacts)
            body = {"title": f"Matter {self.name()}", "client_id": client["id"]}
            if self.rng.random() < 0.4:
                body["practice_area"] = self.rng.choice(["Conveyancing", "Probate"])
            assert self.connected.api.post("/api/v1/matters", json=body).status_code == 201

    def create_matter_in_clio(self) -> None:
        contacts = self.clio_contacts()
        if contacts:
            title = f"Clio matter {self.name()}"
            data = {"description": title, "client": {"id": self.rng.choice(contacts)["id"]}}
            if self.clio("POST", "/matters", json={"data": data}) is None and not any(
                m.get("description") == title for m in self.clio_matters()
            ):
                self.clio("POST", "/matters", json={"data": data})

    def edit_matter_here(self) -> None:
        matters = self.here("matters")
        if matters:
            m = self.rng.choice(matters)
            body: dict[str, Any] = (
                {"status": self.rng.choice(["open", "pending", "closed"])}
                if self.rng.random() < 0.5
                else {"title": f"{m['title'].split(' (')[0]} ({self.rng.randrange(100)})"}
            )
            r = self.local("PATCH", f"/api/v1/matters/{m['id']}", json=body)
            assert r.status_code in (200, 409, 422), r.text

    def edit_matter_in_clio(self) -> None:
        matters = self.clio_matters()
        if matters:
            m = self.rng.choice(matters)
            data = (
                {"status": self.rng.choice(["open", "pending", "closed"])}
                if self.rng.random() < 0.5
                else {"description": f"{str(m['description']).split(' (')[0]} ({self.rng.randrange(100)})"}
            )
            self.clio("PATCH", f"/matters/{m['id']}", json={"data": data})

    def delete_matter_here(self) -> None:
        matters = self.here("matters")
        if matters:
            m = self.rng.choice(matters)
            assert self.local("DELETE", f"/api/v1/matters/{m['id']}").status_code == 200

    def delete_matter_in_clio(self) -> None:
        matters = self.clio_matters()
        if matters:
            self.clio("DELETE", f"/matters/{self.rng.choice(matters)['id']}")


OPERATIONS: list[tuple[str, int]] = [
    ("create_contact_here", 6),
    ("create_contact_in_clio", 6),
    ("edit_contact_here", 5),
    ("edit_contact_in_clio", 5),
    ("delete_contact_here", 1),
    ("delete_contact_in_clio", 1),
    ("create_matter_here", 3),
    ("create_matter_in_clio", 3),
    ("edit_matter_here", 3),
    ("edit_matter_in_clio", 3),
    ("delete_matter_here", 1),
    ("delete_matter_in_clio", 1),
    ("restart_workers", 1),
]


def _quiesce(connected: Connected) -> None:
    connected.clio.faults()
    for _ in range(6):
        connected.run_now("sync.poll")
        connected.run_now("sync.full")
        time.sleep(0.2)
        connected.settle(90, also=("sync.full",))
        open_conflicts = connected.api.get(f"/api/v1/connections/{connected.id}/conflicts").json()["data"]
        for c in open_conflicts:
            connected.api.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"pick": "clio"})
        links = connected.api.get(f"/api/v1/connections/{connected.id}/links", params={"limit": 200}).json()[
            "data"
        ]
        unsettled = [x for x in links if x["state"] in ("pending", "error", "conflict")]
        if not open_conflicts and not unsettled:
            return
        for x in unsettled:
            r = connected.api.post(f"/api/v1/connections/{connected.id}/links/{x['id']}/retry")
            assert r.status_code == 202, r.text
        time.sleep(0.5)
    raise AssertionError(f"did not quiesce: {connected.diagnose()}")


def _norm(value: Any) -> Any:
    return (value or None) if not isinstance(value, str) else (value.strip() or None)


def _assert_converged(connected: Connected) -> tuple[int, int]:
    links = connected.api.get(f"/api/v1/connections/{connected.id}/links", params={"limit": 200}).json()[
        "data"
    ]
    linked = [x for x in links if x["state"] == "linked"]
    clio_contacts = {c["id"]: c for c in connected.clio.records("contacts")}
    clio_matters = {m["id"]: m for m in connected.clio.records("matters")}
    remote_of = {x["local_id"]: x["remote_id"] for x in linked}
    # No duplicates: every live record on each side is linked to exactly one on the other.
    here_contacts = connected.api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]
    here_matters = connected.api.get("/api/v1/matters", params={"limit": 200}).json()["data"]
    for kind, here, there in (
        ("contact", here_contacts, clio_contacts),
        ("matter", here_matters, clio_matters),
    ):
        pairs = [(x["local_id"], x["remote_id"]) for x in linked if x["entity"] == kind]
        assert len({p[0] for p in pairs}) == len(pairs) == len({p[1] for p in pairs})
        live_linked = {p[0] for p in pairs}
        unlinked_here = [r["id"] for r in here if r["id"] not in live_linked]
        assert not unlinked_here, f"{kind}s here with no Clio twin: {unlinked_here}"
        orphans = set(there) - {p[1] for p in pairs}
        assert not orphans, f"Clio {kind}s with no twin here: {sorted(orphans)}"

    def explain(entity: str, local_id: str) -> str:
        status = connected.status(entity, local_id)
        journal = [
            (j["at"][11:23], j["trigger"], j["action"], j["summary"], j["detail"].get("calls"))
            for j in status["journal"]
        ]
        return f"{entity} {local_id} {status['state']}: " + "\n".join(map(str, reversed(journal)))

    for c in here_contacts:
        there = clio_contacts[remote_of[c["id"]]]
        why = explain("contact", c["id"])
        assert (_norm(c["first_name"]), _norm(c["last_name"])) == (
            _norm(there.get("first_name")),
            _norm(there.get("last_name")),
        ), why
        assert [e["address"] for e in c["emails"]] == [
            e["address"] for e in there.get("email_addresses") or []
        ], why
        assert [p["number"] for p in c["phones"]] == [
            p["number"] for p in there.get("phone_numbers") or []
        ], why
    for m in here_matters:
        there = clio_matters[remote_of[m["id"]]]
        why = explain("matter", m["id"])
        assert m["title"] == there["description"], why
        assert m["status"] == str(there["status"]).lower(), why
        assert m["display_number"] == there["display_number"], why
        assert remote_of[m["client_id"]] == there["client_id"], why
        assert m["open_date"] == there.get("open_date"), why
        if m["status"] == "closed":
            assert m["close_date"] == there.get("close_date"), why
        area = there.get("practice_area_id")
        names = {a["id"]: a["name"] for a in connected.clio.records("practice_areas")}
        assert m["practice_area"] == (names[area] if area else None), why
    return len(here_contacts), len(here_matters)


@pytest.mark.parametrize("seed", _seeds())
def test_chaos_converges_without_duplicates(connected: Connected, seed: int) -> None:
    rng = random.Random(seed)
    policy = rng.choice(["hold", "casebridge_wins", "clio_wins", "newest_wins"])
    connected.settings(
        poll_interval_seconds=1,
        poll_lag_seconds=2,
        conflict_policy={"contact": policy, "matter": policy},
        delete_policy={"contact": "propagate", "matter": "propagate"},
    )
    connected.run_now("sync.poll")
    connected.settle()
    before = connected.clio.requests()
    connected.clio.faults(
        seed=seed,
        latency={"distribution": "uniform", "min_ms": 0, "max_ms": 15},
        error_rate=0.05,
        reset_rate=0.02,
        timeout_rate=0.01,
        timeout_seconds=1,
        webhook_drop_rate=0.2,
        webhook_duplicate_rate=0.1,
        webhook_reorder_rate=0.1,
    )
    driver = Driver(connected, rng)
    names, weights = zip(*OPERATIONS, strict=True)
    for _ in range(60):
        op = rng.choices(names, weights)[0]
        driver.log.append(op)
        if op == "restart_workers":
            connected.workers.stop()
            time.sleep(rng.random() * 0.3)
            connected.workers.start()
            continue
        getattr(driver, op)()
        driver.changes += 1
        time.sleep(rng.random() * 0.05)
    _quiesce(connected)
    contacts, matters = _assert_converged(connected)
    after = connected.clio.requests()
    ours = _ours(before, after, connected.clio.user_token)
    writes = _our_writes(before, after) - driver.clio_writes
    assert ours["total"] <= CALLS_PER_CHANGE * driver.changes + 60, (ours, driver.changes)
    assert writes <= WRITES_PER_CHANGE * driver.changes, (writes, driver.changes, Counter(driver.log))
    logging.getLogger("tests.chaos").info(
        f"seed {seed} ({policy}): {driver.changes} changes, {contacts} contacts and {matters} matters converged; "
        f"{ours['total']} calls, {writes} writes by Casebridge"
    )


def _ours(before: dict[str, Any], after: dict[str, Any], user_token: str) -> dict[str, int]:
    total = sum(n for t, n in after["by_token"].items() if t != user_token) - sum(
        n for t, n in before["by_token"].items() if t != user_token
    )
    return {"total": total}


def _our_writes(before: dict[str, Any], after: dict[str, Any]) -> int:
    """POST/PATCH/DELETE on contacts, matters and practice areas by anyone (the driver's are taken off)."""

    def writes(body: dict[str, Any]) -> int:
        return sum(
            n
            for endpoint, n in body["by_endpoint"].items()
            if endpoint.split()[0] in ("POST", "PATCH", "DELETE")
            and any(k in endpoint for k in ("/contacts", "/matters", "/practice_areas"))
        )

    return writes(after) - writes(before)
