"""The three-way merge, as a pure function: each rule, and properties over random values."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from casebridge.sync.merge import POLICIES, decide

FIELDS = ("a", "b", "c")
value = st.sampled_from([None, "x", "y", "z"])
record = st.fixed_dictionaries(dict.fromkeys(FIELDS, value))


def test_each_rule() -> None:
    base = {"a": "x", "b": "x", "c": "x", "d": "x"}
    local = {"a": "x", "b": "L", "c": "L", "d": "x"}
    remote = {"a": "R", "b": "x", "c": "R", "d": "x"}
    got = {d.field: d for d in decide(("a", "b", "c", "d"), base, local, remote)}
    assert (got["a"].action, got["a"].value) == ("pull", "R")
    assert (got["b"].action, got["b"].value) == ("push", "L")
    assert got["c"].action == "conflict"
    assert got["c"].value == "x"  # held: the base stays
    assert got["d"].action == "same"


def test_pull_only_fields_and_resolutions() -> None:
    got = decide(("n",), {"n": "1"}, {"n": "2"}, {"n": "1"}, pull_only=("n",))
    assert (got[0].action, got[0].value) == ("pull", "1")  # the remote owns it, even against a local change
    resolved = decide(("a",), {"a": "x"}, {"a": "L"}, {"a": "R"}, resolutions={"a": "V"})
    assert (resolved[0].push, resolved[0].pull, resolved[0].value) == (True, True, "V")


def test_no_base_means_differences_are_conflicts() -> None:
    got = decide(("a", "b"), None, {"a": "x", "b": "1"}, {"a": "x", "b": "2"})
    assert [d.action for d in got] == ["same", "conflict"]
    newest = decide(("b",), None, {"b": "1"}, {"b": "2"}, policy="newest_wins", local_is_newer=True)
    assert (newest[0].action, newest[0].value) == ("push", "1")


def test_a_coupled_field_is_held_with_the_field_it_goes_with() -> None:
    # Status changed on both sides (held); Clio's close date alone would be pulled onto an open matter.
    base = {"status": "open", "close_date": None}
    local = {"status": "pending", "close_date": None}
    remote = {"status": "closed", "close_date": "2026-11-30"}
    plain = {d.field: d.action for d in decide(("status", "close_date"), base, local, remote)}
    assert plain == {"status": "conflict", "close_date": "pull"}
    got = {
        d.field: d
        for d in decide(("status", "close_date"), base, local, remote, coupled={"close_date": "status"})
    }
    assert (got["status"].action, got["close_date"].action) == ("conflict", "conflict")
    assert got["close_date"].value is None  # the base stays
    assert "status" in got["close_date"].why

    def actions(resolutions: dict[str, Any]) -> dict[str, str]:
        decided = decide(
            ("status", "close_date"),
            base,
            local,
            remote,
            coupled={"close_date": "status"},
            resolutions=resolutions,
        )
        return {d.field: d.action for d in decided}

    # Once the status is settled (a person resolved it), the close date follows as usual.
    assert actions({"status": "closed"}) == {"status": "pull", "close_date": "pull"}
    # A close date a person resolved is written even while the status waits for its own answer.
    assert actions({"close_date": "2026-11-30"}) == {"status": "conflict", "close_date": "pull"}


@given(base=record, local=record, remote=record, policy=st.sampled_from(POLICIES), newer=st.booleans())
def test_after_applying_the_decisions_both_sides_agree(
    base: dict[str, Any], local: dict[str, Any], remote: dict[str, Any], policy: Any, newer: bool
) -> None:
    decisions = decide(FIELDS, base, local, remote, policy=policy, local_is_newer=newer)
    after_local, after_remote = dict(local), dict(remote)
    for d in decisions:
        if d.pull:
            after_local[d.field] = d.value
        if d.push:
            after_remote[d.field] = d.value
    for d in decisions:
        if d.held:
            assert policy == "hold"
            assert local[d.field] != remote[d.field]
            assert local[d.field] != base[d.field]
            assert remote[d.field] != base[d.field]
        else:
            assert after_local[d.field] == after_remote[d.field] == d.value
        # Nothing is written to a side that already holds the value (no echo writes).
        assert not (d.push and remote[d.field] == d.value)
        assert not (d.pull and local[d.field] == d.value)


@given(base=record, changed=record)
def test_a_change_on_one_side_only_is_never_a_conflict(base: dict[str, Any], changed: dict[str, Any]) -> None:
    for local, remote in ((changed, base), (base, changed)):
        decisions = decide(FIELDS, base, local, remote)
        assert not any(d.held for d in decisions)
        assert all(d.value == changed[d.field] for d in decisions)
