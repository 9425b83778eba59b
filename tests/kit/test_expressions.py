"""The safe expression language and templates: results, precise errors, and no way to run code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casebridge.kit.expressions import ExpressionError, evaluate, render, truthy, validate, validate_template

DATA: dict[str, Any] = {
    "event": {"type": "matter.status_changed", "changes": {"status": {"old": "open", "new": "closed"}}},
    "entity": {
        "title": "Sale of 1 High St",
        "status": "closed",
        "practice_area": "Conveyancing",
        "fee_estimate": {"amount": "2500.00", "currency": "GBP"},
        "participants": [{"role": "buyer"}],
    },
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"==": [{"var": "event.type"}, "matter.status_changed"]}, True),
        ({"changed": "status"}, True),
        ({"changed": "title"}, False),
        ({">": [{"var": "entity.fee_estimate.amount"}, 1000]}, True),
        ({"<=": [1000, {"var": "entity.fee_estimate.amount"}, 3000]}, True),
        ({"in": ["Convey", {"var": "entity.practice_area"}]}, True),
        ({"in": [{"var": "entity.status"}, ["open", "pending"]]}, False),
        ({"and": [{"!!": {"var": "entity.title"}}, {"!": {"var": ["entity.nope", None]}}]}, True),
        ({"if": [{"==": [1, 2]}, "a", {"==": [2, 2]}, "b", "c"]}, "b"),
        ({"cat": ["#", {"var": "entity.participants.0.role"}]}, "#buyer"),
        ({"*": [{"var": "entity.fee_estimate.amount"}, "1.1"]}, Decimal("2750.000")),
        ({"missing": ["entity.title", "entity.client"]}, ["entity.client"]),
        ({"var": ["entity.nope", "fallback"]}, "fallback"),
    ],
)
def test_evaluate(expr: Any, expected: Any) -> None:
    assert evaluate(expr, DATA) == expected


@pytest.mark.parametrize(
    ("expr", "path", "message"),
    [
        ({"eval": "1+1"}, "eval", "unknown operator"),
        ({"and": [{"==": [1]}]}, "and.0.==", "takes 2..2 arguments"),
        ({"var": "__class__.__mro__()"}, "var", "dotted path"),
        ({"==": [1, 2], "!=": [1, 2]}, "", "exactly one operator"),
        ({"or": [True, {"__import__": ["os"]}]}, "or.1.__import__", "unknown operator"),
    ],
)
def test_validation_names_the_path(expr: Any, path: str, message: str) -> None:
    errors = validate(expr)
    assert errors
    assert errors[0].path == path
    assert message in errors[0].message


def test_bounded_size() -> None:
    deep: Any = True
    for _ in range(50):
        deep = {"!": deep}
    assert "deeper" in validate(deep)[0].message
    assert "parts" in validate({"and": [{"and": [True] * 99}] * 25})[0].message


def test_runtime_type_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="not a number"):
        evaluate({">": [{"var": "entity.title"}, 1]}, DATA)
    assert evaluate({"var": "entity.client.name"}, DATA) is None  # JSON-logic: a missing path is null


def test_paths_read_data_never_attributes() -> None:
    """A path names keys of the data dict: '__class__' is just a key that is not there."""
    assert evaluate({"var": "entity.__class__"}, DATA) is None
    assert evaluate({"var": "entity.title.__len__"}, DATA) is None
    with pytest.raises(ExpressionError, match="does not exist"):
        render("{{ entity.title.__class__ }}", DATA)


def test_templates() -> None:
    assert (
        render("Matter {{ entity.title }} is {{entity.status}}", DATA) == "Matter Sale of 1 High St is closed"
    )
    assert render("{{ entity.fee_estimate }}", DATA) == {"amount": "2500.00", "currency": "GBP"}
    body = {"ref": "{{ event.type }}", "lines": ["{{ entity.participants.0.role }}", 3]}
    assert render(body, DATA) == {"ref": "matter.status_changed", "lines": ["buyer", 3]}
    with pytest.raises(ExpressionError, match="does not exist"):
        render("{{ entity.secret }}", DATA)
    errors = validate_template({"a": "{{ os.system('x') }}", "b": ["{{ ok.path }}", "{{ broken"]})
    assert [e.path for e in errors] == ["a", "b.1"]


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["==", "and", "or", "!", "var", "in", "+", "cat", "x"]), children, max_size=1
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_either_evaluates_or_raises_an_expression_error(expr: Any) -> None:
    try:
        truthy(expr, DATA)
    except ExpressionError:
        pass
