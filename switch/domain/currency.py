"""ISO 4217 currencies and the exponent of their minor unit.

The exponent says how many minor units make a major one: 10**2 cents in a
dollar, 10**0 in a yen, 10**3 fils in a Kuwaiti dinar. Funds and precious-metal
codes (XAU, XDR, ...) are not payment currencies and are left out on purpose.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
    "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD UZS VES WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNIT_EXPONENT: Final = MappingProxyType(
    {code: exponent for codes, exponent in ((_ZERO, 0), (_TWO, 2), (_THREE, 3), (_FOUR, 4)) for code in codes.split()}
)


def is_known(code: str) -> bool:
    return code in MINOR_UNIT_EXPONENT


def exponent(code: str) -> int:
    """The minor-unit exponent of an ISO 4217 code; KeyError for an unknown code."""
    return MINOR_UNIT_EXPONENT[code]
