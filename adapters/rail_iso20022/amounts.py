"""Integer minor units written as ISO 20022 decimal amounts, exactly."""

from __future__ import annotations

from switch.domain import currency


def to_decimal(minor_units: int, code: str) -> str:
    """ "12.34" for 1234 USD, "1234" for 1234 JPY, "1.234" for 1234 KWD: no float anywhere."""
    places = currency.exponent(code)
    sign = "-" if minor_units < 0 else ""
    whole, fraction = divmod(abs(minor_units), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"
