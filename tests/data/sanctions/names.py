"""Name pools and the generated sanctions-list parties built from them.

The fixture generator (make_fixtures) formats these parties into the lists' published
formats; a benchmark can take them as they are. Everything is drawn from one seeded
random.Random, so a seed and a count always give the same parties.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Given names and family names by culture, as romanised in the lists.
LATIN_GIVEN = (
    "Carlos", "Maria", "Jose", "Ana", "Luis", "Juan", "Pedro", "Isabel", "Miguel", "Lucia",
    "Pierre", "Jean", "Hans", "Klaus", "Giovanni", "Marco", "Sofia", "Elena", "John", "Robert",
)  # fmt: skip
LATIN_FAMILY = (
    "Garcia", "Rodriguez", "Martinez", "Lopez", "Gonzalez", "Perez", "Sanchez", "Ramirez", "Torres", "Flores",
    "Rivera", "Gomez", "Diaz", "Moreno", "Herrera", "Silva", "Rossi", "Bianchi", "Dupont", "Bernard",
    "Schmidt", "Fischer", "Weber", "Smith", "Johnson", "Williams", "Brown", "Taylor", "Orejuela", "Buitrago",
)  # fmt: skip
# Latin names with diacritics Windows-1252 can write (OFAC's files)...
DIACRITIC_GIVEN = ("José", "François", "Jürgen", "Sören", "Inês", "Raúl", "Björn", "Zoë", "Héctor", "Ángel")
DIACRITIC_FAMILY = ("Müller", "Núñez", "Peña", "Gómez", "Sánchez", "Ibáñez", "Groß", "Åström", "Fernández", "Löwe")
# ... and some it cannot (the UN list only, which is UTF-8).
WIDE_DIACRITIC_FAMILY = ("Dvořák", "Łukaszewski", "Ştefănescu", "Đorđević", "Kovačević")
ARABIC_GIVEN = (
    "Mohammed", "Muhammad", "Ahmad", "Ali", "Hassan", "Hussein", "Omar", "Abdullah", "Khalid", "Yusuf",
    "Ibrahim", "Mustafa", "Fatima", "Aisha", "Abd al-Rahman", "Hamza", "Tariq", "Saeed", "Walid", "Nasser",
)  # fmt: skip
ARABIC_FAMILY = (
    "Al-Rashid", "Al-Masri", "Haddad", "Khalil", "Mansour", "Al-Sayed", "Qasim", "Abbas", "Farouk", "Bin Salem",
    "Al-Tamimi", "Zaidi", "Saleh", "Darwish", "Al-Hashimi", "Karim", "Suleiman", "Othman", "Al-Qahtani", "Jaber",
)  # fmt: skip
CYRILLIC_GIVEN = (
    "Sergei", "Vladimir", "Dmitri", "Alexei", "Nikolai", "Ivan", "Olga", "Tatiana", "Yuri", "Mikhail",
    "Andrei", "Natalia", "Igor", "Svetlana", "Pavel",
)  # fmt: skip
CYRILLIC_FAMILY = (
    "Ivanov", "Petrov", "Sidorov", "Smirnov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novikov",
    "Morozov", "Volkov", "Fedorov", "Orlov", "Zaitsev",
)  # fmt: skip
# Names written in Cyrillic: the UN list only.
CYRILLIC_SCRIPT = {
    "Sergei": "Сергей", "Vladimir": "Владимир", "Dmitri": "Дмитрий", "Ivan": "Иван", "Olga": "Ольга",
    "Ivanov": "Иванов", "Petrov": "Петров", "Smirnov": "Смирнов", "Volkov": "Волков", "Orlov": "Орлов",
}  # fmt: skip
PINYIN_GIVEN = ("Wei", "Fang", "Min", "Jing", "Lei", "Jun", "Yan", "Hui", "Xiaoming", "Zhiwei", "Jianguo", "Li Na")
PINYIN_FAMILY = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun")
# Other spellings of the same name, as lists give them in aliases.
SPELLINGS = {
    "Mohammed": "Muhammad", "Muhammad": "Mohamed", "Ahmad": "Ahmed", "Hussein": "Husayn", "Omar": "Umar",
    "Yusuf": "Youssef", "Saeed": "Said", "Khalid": "Khaled", "Abdullah": "Abdallah", "Mustafa": "Mostafa",
    "Sergei": "Sergey", "Dmitri": "Dmitry", "Alexei": "Aleksey", "Yuri": "Yury", "Tatiana": "Tatyana",
    "Andrei": "Andrey", "Natalia": "Natalya", "Zaitsev": "Zaytsev", "Fedorov": "Fyodorov",
    "Al-Rashid": "Al Rasheed", "Al-Masri": "El-Masry", "Al-Sayed": "El Sayed", "Qasim": "Kassem", "Jaber": "Jabir",
    "Zhou": "Chou", "Zhang": "Chang", "Xu": "Hsu", "Jianguo": "Chien-Kuo",
}  # fmt: skip

ENTITY_WORDS = (
    "GLOBAL", "GOLDEN", "EASTERN", "NORTHERN", "UNITED", "PACIFIC", "CASPIAN", "CRESCENT", "SILK ROAD", "ORIENT",
    "AL NOOR", "ZHONGHUA", "SIBERIAN", "ATLANTIC", "GULF", "STAR", "ALPINE", "HORIZON", "DELTA", "PHOENIX",
)  # fmt: skip
ENTITY_SECTORS = (
    "TRADING", "SHIPPING", "PETROLEUM", "INVESTMENT", "EXCHANGE", "HOLDINGS", "LOGISTICS", "INDUSTRIES",
    "MINING", "ELECTRONICS", "MARINE", "GENERAL TRADING", "TECHNOLOGY", "FINANCE",
)  # fmt: skip
ENTITY_SUFFIXES = ("LLC", "LTD", "LTD.", "CORP", "S.A.", "GMBH", "COMPANY", "CO., LTD.", "FZE", "JSC", "TRADING")
VESSEL_WORDS = ("OCEAN", "SEA", "PACIFIC", "GRACE", "STAR", "PEARL", "GLORY", "DAWN", "WAVE", "SPIRIT", "HOPE")
# Countries the generated parties are placed in (the codes countries.py has names for).
COUNTRIES = (
    "IR", "KP", "SY", "RU", "CU", "VE", "IQ", "LB", "AF", "YE", "AE", "TR", "CN", "HK", "PK",
    "CO", "MX", "PA", "DE", "GB", "ES", "CH", "CY", "MY", "SG", "BY", "LY", "SO", "SD", "MM",
)  # fmt: skip

_CULTURES = (
    (LATIN_GIVEN, LATIN_FAMILY),
    (DIACRITIC_GIVEN, DIACRITIC_FAMILY),
    (ARABIC_GIVEN, ARABIC_FAMILY),
    (ARABIC_GIVEN, ARABIC_FAMILY),
    (CYRILLIC_GIVEN, CYRILLIC_FAMILY),
    (CYRILLIC_GIVEN, CYRILLIC_FAMILY),
    (PINYIN_GIVEN, PINYIN_FAMILY),
)


@dataclass(frozen=True, slots=True)
class Name:
    given: str  # "" for an entity, a vessel or an aircraft
    family: str  # the family name, or the whole name of what is not a person

    @property
    def full(self) -> str:
        """The name in reading order: "Ahmad Al-Rashid"."""
        return f"{self.given} {self.family}" if self.given else self.family

    @property
    def ofac(self) -> str:
        """As OFAC writes it: "AL-RASHID, Ahmad"."""
        return f"{self.family.upper()}, {self.given}" if self.given else self.family


@dataclass(frozen=True, slots=True)
class GeneratedParty:
    names: tuple[Name, ...]  # primary first, then the aliases
    kind: str  # "individual" | "entity" | "vessel" | "aircraft"
    countries: tuple[str, ...]  # alpha-2 codes, no repeats; none for vessels and aircraft


def _individual(rng: random.Random, wide: bool) -> tuple[Name, ...]:
    given_pool, family_pool = rng.choice(_CULTURES)
    given = rng.choice(given_pool)
    if given_pool is not PINYIN_GIVEN and rng.random() < 0.25:
        given = f"{given} {rng.choice([other for other in given_pool if other != given])}"
    family = rng.choice(family_pool)
    if wide and family_pool is LATIN_FAMILY and rng.random() < 0.2:
        family = rng.choice(WIDE_DIACRITIC_FAMILY)
    names = [Name(given, family)]
    if rng.random() < 0.4:  # an alias: another spelling, else another given name
        respelled = Name(
            " ".join(SPELLINGS.get(part, part) for part in given.split(" ")), SPELLINGS.get(family, family)
        )
        names.append(respelled if respelled != names[0] else Name(rng.choice(given_pool), family))
    scripted = [CYRILLIC_SCRIPT.get(part) for part in (given, family)]
    if wide and all(scripted) and rng.random() < 0.7:
        names.append(Name(str(scripted[0]), str(scripted[1])))
    return tuple(dict.fromkeys(names))


def _entity(rng: random.Random) -> tuple[Name, ...]:
    root = rng.choice(ENTITY_WORDS) if rng.random() < 0.6 else rng.choice(rng.choice(_CULTURES)[1]).upper()
    sector = rng.choice(ENTITY_SECTORS)
    names = [Name("", f"{root} {sector} {rng.choice(ENTITY_SUFFIXES)}")]
    if rng.random() < 0.35:  # formerly or also known under another legal form, or its initials
        initials = "".join(word[0] for word in f"{root} {sector}".split())
        other = rng.choice((f"{root} {sector} {rng.choice(ENTITY_SUFFIXES)}", initials))
        names.append(Name("", other))
    return tuple(dict.fromkeys(names))


def generated_parties(
    seed: int,
    count: int,
    *,
    kinds: tuple[str, ...] = ("individual", "entity", "vessel", "aircraft"),
    wide: bool = False,
) -> list[GeneratedParty]:
    """count parties drawn from the pools. wide: names Windows-1252 cannot write too
    (Cyrillic script, Central European diacritics), for the UTF-8 lists."""
    rng = random.Random(seed)
    weights = {"individual": 55, "entity": 38, "vessel": 5, "aircraft": 2}
    chosen = rng.choices(kinds, weights=[weights[kind] for kind in kinds], k=count)
    parties = []
    for kind in chosen:
        if kind == "individual":
            names = _individual(rng, wide)
        elif kind == "entity":
            names = _entity(rng)
        elif kind == "vessel":
            names = (Name("", f"{rng.choice(VESSEL_WORDS)} {rng.choice(VESSEL_WORDS)}"),)
        else:
            letters = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
            names = (Name("", f"EP-{letters}"),)
        countries: tuple[str, ...] = ()
        if kind in ("individual", "entity"):
            countries = tuple(dict.fromkeys(rng.choice(COUNTRIES) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))))
        parties.append(GeneratedParty(names, kind, countries))
    return parties
