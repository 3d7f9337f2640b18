"""Integer minor units written as ISO 20022 decimal amounts, exactly."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from switch.domain import currency
from switch.domain.models import INT64_MAX


def to_decimal(minor_units: int, code: str) -> str:
    """ "12.34" for 1234 USD, "1234" for 1234 JPY, "1.234" for 1234 KWD: no float anywhere."""
    places = currency.exponent(code)
    sign = "-" if minor_units < 0 else ""
    whole, fraction = divmod(abs(minor_units), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


def to_minor_units(text: str, code: str) -> int:
    """1234 for "12.34" USD; ValueError for an amount that is not a positive decimal with at
    most the currency's places ("12.345" USD)."""
    if not currency.is_known(code):
        raise ValueError("an unknown currency")
    try:
        value = Decimal(text.strip()).scaleb(currency.exponent(code))
    except InvalidOperation:
        raise ValueError("an amount that is not a decimal number") from None
    if not value.is_finite() or value <= 0 or value > INT64_MAX or value != value.to_integral_value():
        raise ValueError("an amount that is not a positive number of the currency's minor units")
    return int(value)
