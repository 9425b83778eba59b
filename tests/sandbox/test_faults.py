"""Fault injection: reproducible from a seed, 5xx in Clio's shape, forced 429 bursts, cut connections,
timeouts, latency, validation of the settings (admin API and CLI), and webhook plans.

Injected 5xx answers and broken-off responses are not in Clio's spec as such, so the clients that may
receive them do not validate against the spec (``check=False``); everything they do receive is asserted
here instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from casebridge.sandbox.clio.faults import Faults, WebhookPlan
from tests.sandbox.conftest import Sandbox, clio_client, ok
from tests.sandbox.test_cli_and_state_file import free_port, run, sandbox_process

CUT = (httpx.RemoteProtocolError, httpx.ReadError)


def set_faults(sandbox: Sandbox, **settings: Any) -> dict[str, Any]:
    with sandbox.admin() as admin:
        snapshot: dict[str, Any] = ok(admin.put("/faults", json=settings))
        return snapshot


def get_faults(sandbox: Sandbox) -> dict[str, Any]:
    with sandbox.admin() as admin:
        snapshot: dict[str, Any] = ok(admin.get("/faults"))
        return snapshot


def outcome(client: httpx.Client) -> int | str:
    """The status code of one request, or the name of the transport error it ended in."""
    try:
        return client.get("/users/who_am_i").status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def record_run(
    sandbox: Sandbox, token: str, seed: int, n: int = 40
) -> tuple[list[int | str], dict[str, Any]]:
    set_faults(
        sandbox,
        seed=seed,
        error_rate=0.25,
        reset_rate=0.15,
        latency={"distribution": "uniform", "min_ms": 0, "max_ms": 3},
    )
    with clio_client(sandbox, token, check=False) as clio:  # injected 5xx and cut responses expected
        outcomes = [outcome(clio) for _ in range(n)]
    return outcomes, get_faults(sandbox)


def test_the_same_seed_gives_the_same_faults_and_another_seed_others(sandbox: Sandbox) -> None:
    token = sandbox.token()
    first, counted = record_run(sandbox, token, seed=7)
    second, counted_again = record_run(sandbox, token, seed=7)
    other, _ = record_run(sandbox, token, seed=8)
    assert first == second
    assert counted["injected"] == counted_again["injected"]
    assert counted["injected_latency_ms"] == counted_again["injected_latency_ms"]
    assert other != first
    assert 200 in first
    assert {o for o in first if isinstance(o, int)} - {200} <= {500, 502, 503}
    server_errors = [o for o in first if o in (500, 502, 503)]
    cuts = [o for o in first if isinstance(o, str)]
    assert server_errors
    assert cuts
    assert set(cuts) <= {"RemoteProtocolError", "ReadError"}
    assert counted["injected"]["server_error"] == len(server_errors)
    assert counted["injected"]["reset"] == len(cuts)
    assert counted["injected"]["latency"] == 40
    assert counted["injected_server_errors"] == {str(s): server_errors.count(s) for s in (500, 502, 503)}


def test_error_rate_one_answers_5xx_in_clios_shape_and_writes_nothing(sandbox: Sandbox) -> None:
    set_faults(sandbox, seed=3, error_rate=1.0)
    statuses = []
    with clio_client(sandbox, check=False) as clio:  # every answer is an injected 5xx
        for _ in range(10):
            r = clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme Ltd"}})
            statuses.append(r.status_code)
            body = r.json()
            assert set(body) == {"error"}
            assert body["error"]["type"] == "ServerError"
            assert isinstance(body["error"]["message"], str)
            assert body["error"]["message"]
            assert r.headers["x-sandbox-fault"] == "server_error"
    assert set(statuses) <= {500, 502, 503}
    assert len(set(statuses)) > 1  # the status is drawn too
    snapshot = get_faults(sandbox)
    assert snapshot["injected"]["server_error"] == 10
    assert sum(snapshot["injected_server_errors"].values()) == 10
    with sandbox.admin() as admin:
        assert "contacts" not in ok(admin.get("/state"))["counts"]  # the handler never ran


def test_a_forced_429_burst_then_normal_answers(sandbox: Sandbox) -> None:
    assert set_faults(sandbox, rate_limit_burst=3)["rate_limit_burst_left"] == 3
    with clio_client(sandbox) as clio:  # a 429 is in the spec: validated
        limited = [clio.get("/users/who_am_i") for _ in range(3)]
        after = [clio.get("/users/who_am_i") for _ in range(2)]
    for r in limited:
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.json()["error"]["type"] == "RateLimited"
    assert [r.status_code for r in after] == [200, 200]
    snapshot = get_faults(sandbox)
    assert snapshot["rate_limit_burst_left"] == 0
    assert snapshot["injected"]["rate_limited"] == 3


def test_a_reset_breaks_the_response_off_and_the_server_keeps_serving(sandbox: Sandbox) -> None:
    token = sandbox.token()
    set_faults(sandbox, reset_rate=1.0)
    with clio_client(sandbox, token, check=False) as clio:  # the response never completes
        for _ in range(3):
            with pytest.raises(CUT):
                clio.get("/users/who_am_i")
    assert get_faults(sandbox)["injected"]["reset"] == 3
    # The first bytes arrive (status and headers), then the body breaks off.
    with httpx.Client(base_url=f"{sandbox.url}/api/v4", timeout=30) as raw:
        with raw.stream("GET", "/users/who_am_i", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.headers["x-sandbox-fault"] == "reset"
            with pytest.raises(CUT):
                r.read()
    set_faults(sandbox)
    with clio_client(sandbox, token) as clio:
        assert ok(clio.get("/users/who_am_i", params={"fields": "id"}))["data"]["id"] >= 1


def test_a_timeout_hangs_then_cuts(sandbox: Sandbox) -> None:
    token = sandbox.token()
    set_faults(sandbox, timeout_rate=1.0, timeout_seconds=1)
    headers = {"Authorization": f"Bearer {token}"}
    # Injected hangs end without a valid response: no spec validation on these clients.
    with httpx.Client(base_url=f"{sandbox.url}/api/v4", headers=headers, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/users/who_am_i")
    with httpx.Client(base_url=f"{sandbox.url}/api/v4", headers=headers, timeout=30) as patient:
        with pytest.raises(CUT):  # after the hang the connection is cut, not answered
            patient.get("/users/who_am_i")
    assert get_faults(sandbox)["injected"]["timeout"] == 2
    set_faults(sandbox)
    with clio_client(sandbox, token) as clio:
        assert clio.get("/users/who_am_i").status_code == 200


@pytest.mark.parametrize(
    "latency",
    [
        {"distribution": "fixed", "ms": 4},
        {"distribution": "uniform", "min_ms": 1, "max_ms": 5},
        {"distribution": "normal", "mean_ms": 3, "stddev_ms": 1},
        {"distribution": "exponential", "mean_ms": 2},
    ],
)
def test_latency_from_each_distribution_is_applied_reproducibly(
    sandbox: Sandbox, latency: dict[str, Any]
) -> None:
    token = sandbox.token()
    totals = []
    for _ in range(2):
        accepted = set_faults(sandbox, seed=11, latency=latency)
        assert accepted["latency"] == latency
        with clio_client(sandbox, token) as clio:  # delayed answers are ordinary ones: validated
            for _ in range(3):
                assert clio.get("/users/who_am_i").status_code == 200
        with sandbox.admin() as admin:  # admin calls are not delayed or counted
            ok(admin.get("/state"))
        snapshot = get_faults(sandbox)
        assert snapshot["injected"]["latency"] == 3
        assert snapshot["injected_latency_ms"] > 0
        totals.append(snapshot["injected_latency_ms"])
    assert totals[0] == totals[1]  # same seed, same delays
    if latency["distribution"] == "fixed":
        assert totals[0] == 12


BAD_SETTINGS = [
    ({"bogus": 1}, "unknown fault setting: bogus"),
    ({"latency": {"distribution": "zipf"}}, "latency.distribution must be one of fixed, uniform"),
    ({"latency": {"ms": 5}}, "latency.distribution must be one of"),
    ({"latency": {"distribution": ["fixed"]}}, "latency.distribution must be one of"),
    ({"latency": {"distribution": "uniform", "min_ms": 5}}, "missing max_ms"),
    ({"latency": {"distribution": "fixed", "ms": 5, "jitter_ms": 1}}, "unknown jitter_ms"),
    ({"latency": {"distribution": "uniform", "min_ms": 9, "max_ms": 1}}, "min_ms must not be greater"),
    ({"latency": {"distribution": "normal", "mean_ms": 5, "stddev_ms": -1}}, "stddev_ms must be at least 0"),
    ({"latency": {"distribution": "exponential", "mean_ms": 0}}, "greater than 0"),
    ({"latency": "slow"}, "latency must be an object"),
    ({"error_rate": 1.5}, "error_rate must be between 0 and 1"),
    ({"error_rate": True}, "error_rate must be a number"),
    ({"error_rate": 0.6, "reset_rate": 0.6}, "must not exceed 1"),
    ({"rate_limit_burst": -1}, "rate_limit_burst must be at least 0"),
    ({"timeout_seconds": "soon"}, "timeout_seconds must be a number"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"webhook_delay_seconds": -2}, "webhook_delay_seconds must be at least 0"),
]


def test_bad_settings_are_422_and_keep_the_old_ones(sandbox: Sandbox) -> None:
    set_faults(sandbox, seed=5, error_rate=0.5, latency={"distribution": "fixed", "ms": 1})
    with clio_client(sandbox, check=False) as clio:  # some answers are injected 5xx
        for _ in range(4):
            clio.get("/users/who_am_i")
    before = get_faults(sandbox)
    assert before["injected"]["latency"] == 4
    with sandbox.admin() as admin:
        for settings, message in BAD_SETTINGS:
            r = admin.put("/faults", json=settings)
            assert r.status_code == 422, settings
            assert message in r.json()["detail"], (settings, r.json())
        assert admin.put("/faults", json=[1, 2]).status_code == 422
        assert ok(admin.get("/faults")) == before  # settings, generator and counters untouched
        # A snapshot can be put back as it is: the counters in it are ignored, and reset.
        again = ok(admin.put("/faults", json=before))
        assert {k: again[k] for k in ("seed", "error_rate", "latency")} == {
            "seed": 5,
            "error_rate": 0.5,
            "latency": {"distribution": "fixed", "ms": 1.0},
        }
        assert again["injected"]["latency"] == 0


def test_webhook_plans_are_drawn_from_the_seed() -> None:
    # The dispatcher asks once per delivery attempt; its deliveries are tested with the webhooks.
    settings = {
        "seed": 42,
        "webhook_drop_rate": 0.2,
        "webhook_duplicate_rate": 0.3,
        "webhook_reorder_rate": 0.3,
        "webhook_delay_seconds": 1.5,
    }
    faults = Faults()
    faults.configure(settings)
    plans = [faults.webhook_plan() for _ in range(60)]
    faults.configure(settings)
    assert [faults.webhook_plan() for _ in range(60)] == plans
    assert any(p.drop for p in plans)
    assert any(p.duplicate for p in plans)
    assert any(p.reorder for p in plans)
    assert all(p == WebhookPlan(drop=True) for p in plans if p.drop)
    assert all(p.delay_seconds == 1.5 for p in plans if not p.drop)
    injected = faults.snapshot()["injected"]
    assert injected["webhook_drop"] == sum(p.drop for p in plans)
    assert injected["webhook_duplicate"] == sum(p.duplicate for p in plans)
    assert injected["webhook_delay"] == sum(not p.drop for p in plans)
    faults.configure({"seed": 43, **{k: v for k, v in settings.items() if k != "seed"}})
    assert [faults.webhook_plan() for _ in range(60)] != plans
    faults.configure({})
    assert {faults.webhook_plan() for _ in range(5)} == {WebhookPlan()}


def test_the_cli_rejects_bad_faults_in_one_line() -> None:
    cases = {
        '{"bogus": 1}': "unknown fault setting: bogus",
        '{"latency": {"distribution": "zipf"}}': "latency.distribution must be one of",
        '{"error_rate": 2}': "error_rate must be between 0 and 1",
    }
    for value, message in cases.items():
        result = run("--faults", value, "--port", str(free_port()))
        assert result.returncode != 0, value
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "--faults" in lines[0]
        assert message in lines[0]
        assert "Traceback" not in result.stderr


def test_the_cli_applies_faults_from_a_file(tmp_path: Path) -> None:
    settings = tmp_path / "faults.json"
    settings.write_text(json.dumps({"seed": 9, "error_rate": 1.0}))
    with sandbox_process(tmp_path / "sandbox.log", "--faults", f"@{settings}") as url:
        assert ok(httpx.get(f"{url}/_sandbox/faults"))["error_rate"] == 1.0
        token = ok(httpx.post(f"{url}/_sandbox/tokens", json={}), 201)["access_token"]
        r = httpx.get(f"{url}/api/v4/users/who_am_i", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code in (500, 502, 503)
        assert r.json()["error"]["type"] == "ServerError"
