"""Money: ``Decimal`` amounts with an ISO 4217 currency, never floats.

Rounding rules (documented in docs/decisions.md, tested by property tests):
- An amount a client sends (expense, flat fee, fee estimate) must already be in whole minor units of its
  currency (pence, cents; none for JPY; mils for KWD); more decimal places are refused, not rounded.
- An hourly rate may carry up to 4 decimal places.
- A time entry's total is ``duration_seconds x rate / 3600`` computed exactly, then rounded once, half
  up (away from zero at .5), to the currency's minor unit.
- Any total over several entries is the sum of the already-rounded entry totals, so a bill always adds up.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CURRENCY_PATTERN = r"^[A-Z]{3}$"
RATE_PLACES = 4
# Largest absolute amount accepted: keeps every stored amount well inside a 64-bit scaled integer.
MAX_ABS_AMOUNT = Decimal("999999999999")

# ISO 4217 minor units for currencies that do not use two decimal places; everything else uses two.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def _quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit."""
    return amount.quantize(_quantum(minor_units(currency)), rounding=ROUND_HALF_UP)


def _places(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_amount(amount: Decimal, currency: str) -> Decimal:
    """An amount in whole minor units, within range; raises ValueError with a reason otherwise."""
    _check_range(amount)
    places = minor_units(currency)
    if _places(amount) > places:
        raise ValueError(f"{currency} amounts have at most {places} decimal places; got {amount}")
    return round_money(amount, currency)


def check_rate(amount: Decimal) -> Decimal:
    _check_range(amount)
    if _places(amount) > RATE_PLACES:
        raise ValueError(f"rates have at most {RATE_PLACES} decimal places; got {amount}")
    return amount


def _check_range(amount: Decimal) -> None:
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    if abs(amount) > MAX_ABS_AMOUNT:
        raise ValueError(f"amount must be at most {MAX_ABS_AMOUNT} in absolute value")


def time_total(duration_seconds: int, hourly_rate: Decimal, currency: str) -> Decimal:
    """The fee for a duration at an hourly rate, rounded once (see module docstring)."""
    return round_money(Decimal(duration_seconds) * hourly_rate / Decimal(3600), currency)


def sum_totals(totals: list[Decimal], currency: str) -> Decimal:
    return round_money(sum(totals, Decimal(0)), currency)


def format_amount(amount: Decimal, currency: str) -> str:
    """Fixed-point text with at least the currency's minor units (more only for a finer rate)."""
    places = max(minor_units(currency), _places(amount))
    return f"{amount.quantize(_quantum(places)):f}"
