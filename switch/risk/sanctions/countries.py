"""Country names as the sanctions lists write them, to ISO 3166-1 alpha-2 codes.

OFAC writes short English names of its own ("Korea, North", "Burma", "Russia"), the UN
its official ones ("Democratic People's Republic of Korea", "Iran (Islamic Republic
of)"); both are here, with the ISO short names. A name not here (OFAC's "undetermined",
a region) has no code: alpha2 answers "".
"""

from __future__ import annotations

import unicodedata

# code: name | other name | ...  (the first name is the one the fixtures write for OFAC)
_TABLE = """
AF: Afghanistan
AL: Albania
DZ: Algeria
AD: Andorra
AO: Angola
AG: Antigua and Barbuda
AR: Argentina
AM: Armenia
AU: Australia
AT: Austria
AZ: Azerbaijan
BS: Bahamas, The | Bahamas
BH: Bahrain
BD: Bangladesh
BB: Barbados
BY: Belarus
BE: Belgium
BZ: Belize
BJ: Benin
BT: Bhutan
BO: Bolivia | Bolivia (Plurinational State of)
BA: Bosnia and Herzegovina
BW: Botswana
BR: Brazil
BN: Brunei | Brunei Darussalam
BG: Bulgaria
BF: Burkina Faso
MM: Burma | Myanmar
BI: Burundi
CV: Cabo Verde | Cape Verde
KH: Cambodia
CM: Cameroon
CA: Canada
KY: Cayman Islands
CF: Central African Republic
TD: Chad
CL: Chile
CN: China
CO: Colombia
KM: Comoros
CG: Congo, Republic of the | Congo | Republic of the Congo
CD: Congo, Democratic Republic of the | Democratic Republic of the Congo | DRC
CR: Costa Rica
CI: Cote d'Ivoire | Côte d'Ivoire | Ivory Coast
HR: Croatia
CU: Cuba
CW: Curacao | Curaçao
CY: Cyprus
CZ: Czech Republic | Czechia
DK: Denmark
DJ: Djibouti
DM: Dominica
DO: Dominican Republic
EC: Ecuador
EG: Egypt
SV: El Salvador
GQ: Equatorial Guinea
ER: Eritrea
EE: Estonia
SZ: Eswatini | Swaziland
ET: Ethiopia
FJ: Fiji
FI: Finland
FR: France
GA: Gabon
GM: Gambia, The | Gambia
GE: Georgia
DE: Germany
GH: Ghana
GI: Gibraltar
GR: Greece
GD: Grenada
GT: Guatemala
GG: Guernsey
GN: Guinea
GW: Guinea-Bissau
GY: Guyana
HT: Haiti
HN: Honduras
HK: Hong Kong | China, Hong Kong Special Administrative Region
HU: Hungary
IS: Iceland
IN: India
ID: Indonesia
IR: Iran | Iran (Islamic Republic of) | Islamic Republic of Iran
IQ: Iraq
IE: Ireland
IM: Isle of Man
IL: Israel
IT: Italy
JM: Jamaica
JP: Japan
JE: Jersey
JO: Jordan
KZ: Kazakhstan
KE: Kenya
KI: Kiribati
KP: Korea, North | Democratic People's Republic of Korea | North Korea | DPRK
KR: Korea, South | Republic of Korea | South Korea
XK: Kosovo
KW: Kuwait
KG: Kyrgyzstan
LA: Laos | Lao People's Democratic Republic
LV: Latvia
LB: Lebanon
LS: Lesotho
LR: Liberia
LY: Libya
LI: Liechtenstein
LT: Lithuania
LU: Luxembourg
MO: Macau | Macao | China, Macao Special Administrative Region
MG: Madagascar
MW: Malawi
MY: Malaysia
MV: Maldives
ML: Mali
MT: Malta
MH: Marshall Islands
MR: Mauritania
MU: Mauritius
MX: Mexico
FM: Micronesia, Federated States of | Micronesia (Federated States of)
MD: Moldova | Republic of Moldova
MC: Monaco
MN: Mongolia
ME: Montenegro
MA: Morocco
MZ: Mozambique
NA: Namibia
NR: Nauru
NP: Nepal
NL: Netherlands | Netherlands (Kingdom of the)
NZ: New Zealand
NI: Nicaragua
NE: Niger
NG: Nigeria
MK: North Macedonia | Macedonia, The Former Yugoslav Republic of | The former Yugoslav Republic of Macedonia
NO: Norway
OM: Oman
PK: Pakistan
PW: Palau
PS: Palestinian | Palestine | State of Palestine | West Bank
PA: Panama
PG: Papua New Guinea
PY: Paraguay
PE: Peru
PH: Philippines
PL: Poland
PT: Portugal
QA: Qatar
RO: Romania
RU: Russia | Russian Federation
RW: Rwanda
KN: Saint Kitts and Nevis
LC: Saint Lucia
VC: Saint Vincent and the Grenadines
WS: Samoa
SM: San Marino
ST: Sao Tome and Principe
SA: Saudi Arabia
SN: Senegal
RS: Serbia
SC: Seychelles
SL: Sierra Leone
SG: Singapore
SK: Slovakia
SI: Slovenia
SB: Solomon Islands
SO: Somalia
ZA: South Africa
SS: South Sudan
ES: Spain
LK: Sri Lanka
SD: Sudan
SR: Suriname
SE: Sweden
CH: Switzerland
SY: Syria | Syrian Arab Republic
TW: Taiwan
TJ: Tajikistan
TZ: Tanzania | United Republic of Tanzania
TH: Thailand
TL: Timor-Leste
TG: Togo
TO: Tonga
TT: Trinidad and Tobago
TN: Tunisia
TR: Turkey | Türkiye | Turkiye
TM: Turkmenistan
TV: Tuvalu
UG: Uganda
UA: Ukraine
AE: United Arab Emirates
GB: United Kingdom | United Kingdom of Great Britain and Northern Ireland
US: United States | United States of America
UY: Uruguay
UZ: Uzbekistan
VU: Vanuatu
VE: Venezuela | Venezuela (Bolivarian Republic of)
VN: Vietnam | Viet Nam
VG: Virgin Islands, British | British Virgin Islands
YE: Yemen
ZM: Zambia
ZW: Zimbabwe
"""


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.strip().casefold())
    return " ".join("".join(ch for ch in folded if not unicodedata.combining(ch)).split())


def _build() -> tuple[dict[str, str], dict[str, str]]:
    codes: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in _TABLE.strip().splitlines():
        code, _, spelled = line.partition(":")
        variants = [variant.strip() for variant in spelled.split("|")]
        names[code] = variants[0]
        for variant in variants:
            codes[_key(variant)] = code
    return codes, names


_CODES, _NAMES = _build()


def alpha2(name: str) -> str:
    """The ISO 3166-1 alpha-2 code of a country as a list writes it; "" when unknown."""
    return _CODES.get(_key(name), "")


def ofac_name(code: str) -> str:
    """The name OFAC writes for a code (KeyError when the table lacks it)."""
    return _NAMES[code]
