"""Property tests for the money and time rules (casebridge.money), and one over HTTP for /totals."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casebridge.money import check_amount, format_amount, minor_units, sum_totals, time_total
from tests.factories import create_matter, create_user

CURRENCIES = ["GBP", "JPY", "KWD", "USD"]
currencies = st.sampled_from(CURRENCIES)
durations = st.integers(min_value=0, max_value=10**6)
rates = st.decimals(min_value=0, max_value=100000, places=4, allow_nan=False, allow_infinity=False)


def _minor_amounts(currency: str, max_value: int = 10**9) -> st.SearchStrategy[Decimal]:
    places = minor_units(currency)
    return st.integers(min_value=-max_value, max_value=max_value).map(lambda n: Decimal(n).scaleb(-places))


def _in_minor_units(amount: Decimal, currency: str) -> bool:
    return amount == amount.quantize(Decimal(1).scaleb(-minor_units(currency)))


@given(duration=durations, rate=rates, currency=currencies)
def test_time_total_is_whole_minor_units_within_half_a_unit(
    duration: int, rate: Decimal, currency: str
) -> None:
    total = time_total(duration, rate, currency)
    places = minor_units(currency)
    assert _in_minor_units(total, currency)
    assert total.as_tuple().exponent == -places
    exact = Fraction(duration) * Fraction(rate) / 3600
    assert abs(Fraction(total) - exact) <= Fraction(1, 2 * 10**places)


@given(duration=durations, rate=rates, currency=currencies)
def test_exact_halves_round_up(duration: int, rate: Decimal, currency: str) -> None:
    total = time_total(duration, rate, currency)
    exact = Fraction(duration) * Fraction(rate) / 3600
    half = Fraction(1, 2 * 10 ** minor_units(currency))
    if Fraction(total) - exact == -half:
        raise AssertionError(f"{exact} rounded down to {total}")


@given(a=durations, b=durations, rate=rates, currency=currencies)
def test_time_total_is_monotonic_in_duration(a: int, b: int, rate: Decimal, currency: str) -> None:
    short, long = sorted((a, b))
    assert time_total(short, rate, currency) <= time_total(long, rate, currency)


@given(
    lines=st.lists(st.tuples(durations, rates), min_size=0, max_size=20),
    currency=currencies,
)
def test_sum_of_rounded_lines(lines: list[tuple[int, Decimal]], currency: str) -> None:
    rounded = [time_total(d, r, currency) for d, r in lines]
    total = sum_totals(rounded, currency)
    assert total == sum(rounded, Decimal(0))
    assert _in_minor_units(total, currency)
    # Each line is off by at most half a unit, so the sum is within n halves of the exact sum.
    exact = sum((Fraction(d) * Fraction(r) / 3600 for d, r in lines), Fraction(0))
    assert abs(Fraction(total) - exact) <= Fraction(len(lines), 2 * 10 ** minor_units(currency))


@given(data=st.data(), currency=currencies)
def test_format_amount_round_trips(data: st.DataObject, currency: str) -> None:
    amount = data.draw(_minor_amounts(currency))
    text = format_amount(amount, currency)
    assert Decimal(text) == amount
    places = minor_units(currency)
    assert len(text.partition(".")[2]) == places
    assert "e" not in text.lower()


@given(rate=rates, currency=currencies)
def test_format_amount_keeps_a_rates_places(rate: Decimal, currency: str) -> None:
    text = format_amount(rate, currency)
    assert Decimal(text) == rate
    assert len(text.partition(".")[2]) >= minor_units(currency)


@given(data=st.data(), currency=currencies)
def test_check_amount_accepts_minor_units(data: st.DataObject, currency: str) -> None:
    amount = data.draw(_minor_amounts(currency))
    assert check_amount(amount, currency) == amount


@given(
    units=st.integers(min_value=-(10**9), max_value=10**9),
    extra=st.integers(min_value=1, max_value=9),
    currency=currencies,
)
def test_check_amount_refuses_more_places_than_the_currency_has(
    units: int, extra: int, currency: str
) -> None:
    # One more decimal place than the currency allows, with a non-zero last digit.
    amount = Decimal(units * 10 + extra).scaleb(-(minor_units(currency) + 1))
    with pytest.raises(ValueError, match=f"at most {minor_units(currency)} decimal places"):
        check_amount(amount, currency)


def test_examples() -> None:
    assert time_total(5400, Decimal("250.00"), "GBP") == Decimal("375.00")
    assert time_total(1, Decimal("100"), "GBP") == Decimal("0.03")
    assert time_total(1800, Decimal("1001"), "JPY") == Decimal("501")  # 500.5 rounds half up
    assert time_total(1, Decimal("1000"), "JPY") == Decimal("0")
    assert time_total(60, Decimal("10"), "KWD") == Decimal("0.167")
    assert time_total(18, Decimal("1"), "USD") == Decimal("0.01")  # 0.005 rounds half up
    assert format_amount(Decimal("5"), "GBP") == "5.00"
    assert format_amount(Decimal("123.4567"), "GBP") == "123.4567"
    assert format_amount(Decimal("7"), "JPY") == "7"


# Over HTTP: /activities/totals equals the sum of the totals of the lines it covers. ----------------

_http_line = st.one_of(
    st.tuples(
        st.just("hourly"),
        st.integers(min_value=0, max_value=7 * 24 * 3600),
        st.decimals(min_value=0, max_value=5000, places=4, allow_nan=False, allow_infinity=False),
        currencies,
    ),
    st.tuples(st.just("flat"), st.just(0), st.integers(min_value=0, max_value=10**7), currencies),
    st.tuples(st.just("expense"), st.just(0), st.integers(min_value=0, max_value=10**7), currencies),
)


def _line_body(matter_id: str, user_id: str, line: tuple[str, int, Any, str]) -> dict[str, Any]:
    method, duration, value, currency = line
    body: dict[str, Any] = {"matter_id": matter_id, "date": "2026-11-02", "user_id": user_id}
    if method == "hourly":
        rate = {"amount": str(value), "currency": currency}
        return {**body, "kind": "time", "duration_seconds": duration, "rate": rate}
    amount = {"amount": str(Decimal(value).scaleb(-minor_units(currency))), "currency": currency}
    if method == "flat":
        return {**body, "kind": "time", "flat_fee": amount}
    return {**body, "kind": "expense", "amount": amount}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_http_line, min_size=1, max_size=5))
def test_totals_endpoint_is_the_sum_of_line_totals(
    api: httpx.Client, lines: list[tuple[str, int, Any, str]]
) -> None:
    matter = create_matter(api)
    user = create_user(api)
    expected: dict[str, dict[str, Any]] = {}
    for line in lines:
        r = api.post("/api/v1/activities", json=_line_body(matter["id"], user["id"], line))
        assert r.status_code == 201, r.text
        out = r.json()
        currency = out["total"]["currency"]
        row = expected.setdefault(
            currency, {"time": Decimal(0), "expenses": Decimal(0), "duration_seconds": 0, "count": 0}
        )
        row["time" if out["kind"] == "time" else "expenses"] += Decimal(out["total"]["amount"])
        row["duration_seconds"] += out["duration_seconds"] or 0
        row["count"] += 1
        if out["billing_method"] == "hourly":
            assert Decimal(out["total"]["amount"]) == time_total(
                out["duration_seconds"], Decimal(out["rate"]["amount"]), currency
            )
    got = api.get("/api/v1/activities/totals", params={"matter_id": matter["id"]})
    assert got.status_code == 200, got.text
    totals = got.json()["totals"]
    assert [t["currency"] for t in totals] == sorted(expected)
    for t in totals:
        want = expected[t["currency"]]
        assert Decimal(t["time"]["amount"]) == want["time"]
        assert Decimal(t["expenses"]["amount"]) == want["expenses"]
        assert Decimal(t["total"]["amount"]) == want["time"] + want["expenses"]
        assert t["total"]["amount"] == format_amount(want["time"] + want["expenses"], t["currency"])
        assert (t["duration_seconds"], t["count"]) == (want["duration_seconds"], want["count"])
