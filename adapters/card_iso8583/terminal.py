"""Who the switch is on the network, from the route's options, validated once at start.

Fields 41 (terminal), 32 and 90 (acquirer), 18 (merchant category), 22 and 25 (how
the card was presented), 43 (card acceptor name and location) and the time zone of
fields 12 and 13. A bad option fails the adapter's construction, naming the
option, rather than every authorization at the network.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

NAME_WIDTH, CITY_WIDTH = 25, 13  # field 43: name, city, then a 2-letter country code

_PRINTABLE = re.compile(r"[\x20-\x7e]*")


class OptionError(ValueError):
    """A route option the ISO 8583 adapter cannot use; the message names the option."""


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    acquirer_id: str = "00000000000"
    merchant_category_code: str = "5999"  # miscellaneous retail
    pos_entry_mode: str = "010"  # keyed (card not present), PIN capability unknown
    pos_condition_code: str = "59"  # electronic commerce
    card_acceptor_name: str = "PAYMENT SWITCH"
    card_acceptor_city: str = "INTERNET"
    card_acceptor_country: str = "US"
    timezone: tzinfo = UTC  # of the terminal: fields 12 and 13; field 7 stays UTC

    @property
    def card_acceptor(self) -> str:
        """Field 43: name (25), city (13), country (2), space-padded to 40."""
        return (
            self.card_acceptor_name.ljust(NAME_WIDTH)
            + self.card_acceptor_city.ljust(CITY_WIDTH)
            + self.card_acceptor_country
        )


def from_options(options: Mapping[str, Any]) -> Terminal:
    """The Terminal a route's options describe; defaults for what they leave out."""
    defaults = Terminal("SWITCH01")
    timezone_name = str(options.get("timezone", "UTC"))
    try:
        timezone: tzinfo = UTC if timezone_name == "UTC" else zoneinfo.ZoneInfo(timezone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, e.g. "America"
        raise OptionError(f"option timezone: {timezone_name!r} is not an IANA time zone name") from None
    return Terminal(
        terminal_id=_text(options, "terminal_id", defaults.terminal_id, 1, 8),
        acquirer_id=_digits(options, _acquirer_option(options), defaults.acquirer_id, 1, 11),
        merchant_category_code=_digits(options, "merchant_category_code", defaults.merchant_category_code, 4, 4),
        pos_entry_mode=_digits(options, "pos_entry_mode", defaults.pos_entry_mode, 3, 3),
        pos_condition_code=_digits(options, "pos_condition_code", defaults.pos_condition_code, 2, 2),
        card_acceptor_name=_text(options, "card_acceptor_name", defaults.card_acceptor_name, 1, NAME_WIDTH),
        card_acceptor_city=_text(options, "card_acceptor_city", defaults.card_acceptor_city, 0, CITY_WIDTH),
        card_acceptor_country=_country(options, defaults.card_acceptor_country),
        timezone=timezone,
    )


def _acquirer_option(options: Mapping[str, Any]) -> str:
    """ "acquirer" is the option's older name, still read when the new one is absent."""
    return "acquirer" if "acquirer" in options and "acquirer_id" not in options else "acquirer_id"


def _digits(options: Mapping[str, Any], name: str, default: str, shortest: int, longest: int) -> str:
    value = str(options.get(name, default))
    if not (value.isascii() and value.isdigit() and shortest <= len(value) <= longest):
        size = f"{longest}" if shortest == longest else f"{shortest} to {longest}"
        raise OptionError(f"option {name}: must be {size} digits")
    return value


def _text(options: Mapping[str, Any], name: str, default: str, shortest: int, longest: int) -> str:
    value = str(options.get(name, default))
    if not (_PRINTABLE.fullmatch(value) and shortest <= len(value) <= longest):
        raise OptionError(f"option {name}: must be {shortest} to {longest} printable ASCII characters")
    return value


def _country(options: Mapping[str, Any], default: str) -> str:
    value = str(options.get("card_acceptor_country", default))
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise OptionError("option card_acceptor_country: must be an ISO 3166 two-letter code, e.g. US")
    return value
