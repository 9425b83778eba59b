"""A value a person gives to resolve a conflict is checked against its field and put in canonical form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from casebridge.sync import canonical

ITEM_TEXT = st.one_of(st.none(), st.text(max_size=12))
EMAILS = st.lists(
    st.fixed_dictionaries(
        {
            "address": st.text(min_size=1, max_size=20).filter(str.strip),
            "kind": ITEM_TEXT,
            "primary": st.booleans(),
        }
    ),
    max_size=4,
)


@for_all(EMAILS)
def test_a_list_given_is_canonical_and_stays_so(items: list[dict[str, Any]]) -> None:
    once = canonical.given("contact", "emails", items)
    assert once == canonical.emails(items)
    assert canonical.given("contact", "emails", once) == once
    assert sum(i["primary"] for i in once) == (1 if once else 0)


@pytest.mark.parametrize(
    ("entity", "field", "value", "expected"),
    [
        ("contact", "first_name", "  Ann ", "Ann"),
        ("contact", "middle_name", None, None),
        ("contact", "kind", "company", "company"),
        ("matter", "status", "Closed", "closed"),
        ("matter", "open_date", "2026-11-30", "2026-11-30"),
        ("matter", "client", 42, 42),
        (
            "contact",
            "phones",
            [{"number": "+44 1", "kind": "Mobile"}],
            [{"number": "+44 1", "kind": "mobile", "primary": True}],
        ),
    ],
)
def test_good_values(entity: str, field: str, value: Any, expected: Any) -> None:
    assert canonical.given(entity, field, value) == expected


@pytest.mark.parametrize(
    ("entity", "field", "value", "says"),
    [
        ("contact", "nickname", "x", "no synced field"),
        ("contact", "emails", "ann@example.com", "list of objects"),
        ("contact", "emails", [{"kind": "work"}], "needs its address"),
        ("contact", "first_name", 5, "is text"),
        ("contact", "kind", "robot", "person or company"),
        ("matter", "status", "maybe", "open, pending or closed"),
        ("matter", "open_date", "30/11/2026", "YYYY-MM-DD"),
        ("matter", "client", "42", "positive integer"),
        ("matter", "client", True, "positive integer"),
        ("matter", "client", None, "a matter needs one"),
        ("matter", "close_date", "20260105", "YYYY-MM-DD"),
        ("matter", "close_date", "2026-W01-1", "YYYY-MM-DD"),
        ("matter", "title", "   ", "cannot be empty"),
    ],
)
def test_bad_values_say_what_is_wrong(entity: str, field: str, value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        canonical.given(entity, field, value)
