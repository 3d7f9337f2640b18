"""Exact conversion between integer minor units and ISO 20022 decimal amounts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from switch.domain import currency


def to_decimal(minor_units: int, code: str) -> str:
    """ "12.34" for 1234 USD, "1234" for 1234 JPY, "1.234" for 1234 KWD: no float anywhere."""
    places = currency.exponent(code)
    sign = "-" if minor_units < 0 else ""
    whole, fraction = divmod(abs(minor_units), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


def to_minor(text: str, code: str) -> int:
    """The minor units of a decimal amount; ValueError if it has more places than the currency."""
    places = currency.exponent(code)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("amount is not a decimal number") from None
    if not value.is_finite():
        raise ValueError("amount is not a finite number")
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount has more than {places} decimal places for {code}")
    return int(scaled)
