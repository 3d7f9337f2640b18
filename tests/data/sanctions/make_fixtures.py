"""Writes the sanctions-list fixtures in their published formats: python -m tests.data.sanctions.make_fixtures

ofac/sdn.csv, ofac/alt.csv, ofac/add.csv (OFAC's legacy CSV: no header, "-0- " for null,
Windows-1252, a DOS end-of-file mark on the last line), ofac/sdn.xml (the same entries as
OFAC's XML) and un/consolidated.xml (the UN Security Council's consolidated list).

Each holds a few real published entries, as the lists publish them (their names, aliases,
types, programs and addresses' countries; long remarks shortened), then parties generated
from names.py. The output depends on nothing but the seeds: tests/test_sanctions_lists.py
checks the committed files are what this writes.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from switch.risk.sanctions.countries import ofac_name

from .names import GeneratedParty, Name, generated_parties

HERE = Path(__file__).resolve().parent
OFAC_SEED, UN_SEED = 20240601, 20240602
# The committed files' generated parties, sized to keep them under 2 MB in all (the XML is
# verbose); a benchmark can write bigger lists elsewhere (--ofac, --un, --out).
OFAC_COUNT, UN_COUNT = 2_000, 600
OFAC_NAMESPACE = "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML"
NULL = "-0- "
EOF_MARK = "\x1a"


@dataclass(frozen=True, slots=True)
class Alias:
    alt_num: int
    type: str  # "aka" | "fka" | "nka"
    last: str
    first: str = ""
    weak: bool = False


@dataclass(frozen=True, slots=True)
class Address:
    add_num: int
    country: str = ""  # as OFAC writes it
    city: str = ""
    street: str = ""


@dataclass(frozen=True, slots=True)
class OfacEntry:
    ent_num: int
    last: str  # an individual's family name (upper-case), else the whole name
    kind: str  # "individual" | "entity" | "vessel" | "aircraft"
    programs: tuple[str, ...]
    first: str = ""
    title: str = ""
    remarks: str = ""
    aliases: tuple[Alias, ...] = ()
    addresses: tuple[Address, ...] = ()
    nationalities: tuple[str, ...] = ()  # written in remarks ("nationality X") and the XML's nationalityList
    citizenships: tuple[str, ...] = ()  # remarks "citizen X", the XML's citizenshipList
    vessel: tuple[str, str, str, str, str, str] = ("", "", "", "", "", "")  # call sign, type, tonnage, GRT, flag, owner

    @property
    def sdn_name(self) -> str:
        return f"{self.last}, {self.first}" if self.first else self.last


# Real entries as OFAC publishes them (sdn.csv/alt.csv/add.csv), long remarks shortened.
REAL_OFAC = (
    OfacEntry(36, "AEROCARIBBEAN AIRLINES", "entity", ("CUBA",),
              aliases=(Alias(12, "aka", "AERO-CARIBBEAN"),), addresses=(Address(25, "Cuba", "Havana"),)),
    OfacEntry(306, "BANCO NACIONAL DE CUBA", "entity", ("CUBA",), remarks="a.k.a. 'BNC'.",
              aliases=(Alias(220, "aka", "NATIONAL BANK OF CUBA"),),
              addresses=(Address(199, "Switzerland", "Zurich CH-8022", "Zweierstrasse 35"),
                         Address(200, "Spain", "Madrid E-28036", "Avenida de Concha Espina 8"),
                         Address(201, "Japan", "Tokyo 103",
                                 "Dai-Ichi Bldg. 6th Floor, 10-2 Nihombashi, 2-chome, Chuo-ku"),
                         Address(202, "Panama", "Panama City", "Federico Boyd Avenue & 51 Street"))),
    OfacEntry(1287, "LA EMPRESA CUBANA DE FLETES", "entity", ("CUBA",),
              aliases=(Alias(888, "aka", "CUFLET"), Alias(889, "aka", "CUBAN FREIGHT ENTERPRISE")),
              addresses=(Address(825, "Korea, North", "Pyongyang"), Address(826, "Russia", "Moscow"),
                         Address(827, "Spain", "Barcelona"), Address(828, "Germany", "Rostock"),
                         Address(829, "Italy", "Genoa"), Address(830, "Poland", "Syczecin"),
                         Address(831, "Netherlands", "Rotterdam"), Address(832, "Mexico"),
                         Address(833, "Argentina", "Buenos Aires"), Address(834, "Canada", "Montreal"),
                         Address(835, "Bulgaria", "Varna"))),
    OfacEntry(2686, "NASRALLAH", "individual", ("SDGT", "SYRIA"), first="Hasan",
              title="Secretary General of Hizballah",
              remarks="DOB 31 Aug 1960; alt. DOB 31 Aug 1953; alt. DOB 31 Aug 1955; alt. DOB 31 Aug 1958; "
              "POB Al Basuriyah, Lebanon; Gender Male; Passport 042833 (Lebanon); Secretary General of Hizballah; "
              "Linked To: HIZBALLAH.",
              aliases=(Alias(22740, "aka", "NASRALLAH", "Hasan Abd-al-Karim"),),
              addresses=(Address(37108, "Lebanon"),)),
    OfacEntry(2691, "YASSIN", "individual", ("SDGT",), first="Sheik Ahmed Ismail",
              remarks="DOB 1938; POB al-Jawrah, al-Majdal District, Gaza.",
              addresses=(Address(1849, "undetermined", "Gaza Strip"),)),
    OfacEntry(4234, "HERMANN", "vessel", ("CUBA",), addresses=(Address(2233),),
              vessel=("CL2685", "General Cargo", "2597", "1098", "Cuba", "Compania Navegacion Golfo S.A.")),
    OfacEntry(4257, "ABDALLAH", "individual", ("SDGT",), first="Ramadan",
              title="Secretary General of the PALESTINIAN ISLAMIC JIHAD",
              remarks="DOB 01 Jan 1958; POB Gaza City, Gaza Strip; Passport 265 216 (Egypt); "
              "Secretary General of the PALESTINIAN ISLAMIC JIHAD.",
              aliases=(Alias(3414, "aka", "ABDULLAH", "Dr. Ramadan"),
                       Alias(3415, "aka", "SHALLAH", "Dr. Ramadan Abdullah"),
                       Alias(3416, "aka", "SHALLAH", "Ramadan Abdalla Mohamed")),
              addresses=(Address(2256, "Syria", "Damascus"),)),
    OfacEntry(4307, "ABRIL CORTEZ", "individual", ("SDNT",), first="Oliverio",
              remarks="DOB 20 Aug 1956; Cedula No. 3002003 (Colombia); Passport AF368431 (Colombia).",
              aliases=(Alias(3519, "fka", "CORTEZ", "Oliverio Abril"), Alias(7795, "aka", "ABRIL CORTES", "Oliverio")),
              addresses=(Address(4066, "Colombia", "Cali", "c/o INVERSIONES EL PENON S.A."),
                         Address(4072, "Colombia", "Jamundi", "Calle 18A No. 8A-20"))),
)  # fmt: skip

OFAC_PROGRAMS = ("SDGT", "IRAN", "IRGC", "SDNT", "RUSSIA-EO14024", "DPRK3", "SYRIA", "NPWMD", "CUBA", "GLOMAG")
UN_LIST_TYPES = {"Al-Qaida": "QD", "Taliban": "TA", "DPRK": "KP", "Iraq": "IQ", "Libya": "LY", "Somalia": "SO"}
UN_COUNTRY_NAMES = {
    "IR": "Iran (Islamic Republic of)", "KP": "Democratic People's Republic of Korea", "SY": "Syrian Arab Republic",
    "RU": "Russian Federation", "VE": "Venezuela (Bolivarian Republic of)", "TR": "Türkiye", "MM": "Myanmar",
    "GB": "United Kingdom of Great Britain and Northern Ireland",
    "HK": "China, Hong Kong Special Administrative Region",
}  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _last(name: Name) -> str:
    """OFAC's lastName: a person's family name in capitals, else the whole name."""
    return name.family.upper() if name.given else name.family


def generated_ofac(seed: int = OFAC_SEED, count: int = OFAC_COUNT) -> list[OfacEntry]:
    rng = random.Random(seed + 1)
    entries = []
    for index, party in enumerate(generated_parties(seed, count)):
        ent_num = 100_001 + index
        primary, *others = party.names
        aliases = tuple(
            Alias(200_000 + index * 10 + position, rng.choice(("aka", "aka", "aka", "fka", "nka")), _last(name),
                  name.given, weak=len(name.family) <= 4)
            for position, name in enumerate(others)
        )  # fmt: skip
        names = [ofac_name(code) for code in party.countries]
        remarks = ""
        nationalities: tuple[str, ...] = ()
        citizenships: tuple[str, ...] = ()
        if party.kind == "individual":
            nationalities, citizenships = tuple(names[1:2]), tuple(names[2:3])
            parts = [f"DOB {rng.randint(1, 28):02d} {rng.choice(_MONTHS)} {rng.randint(1940, 2000)}"]
            parts += [f"nationality {name}" for name in nationalities] + [f"citizen {name}" for name in citizenships]
            remarks = "; ".join([*parts, rng.choice(("Gender Male", "Gender Female"))]) + "."
            names = names[:1]
        addresses = tuple(
            Address(300_000 + index * 10 + position, name, rng.choice(("", "", "Central District")))
            for position, name in enumerate(names or [""])
        )
        vessel = ("", "", "", "", "", "")
        if party.kind == "vessel":
            vessel = (f"9HA{rng.randint(1000, 9999)}", "Crude Oil Tanker", "", str(rng.randint(3000, 90000)),
                      ofac_name(rng.choice(("PA", "CY", "MY", "SG"))), "")  # fmt: skip
        entries.append(
            OfacEntry(
                ent_num,
                _last(primary),
                party.kind,
                tuple(rng.sample(OFAC_PROGRAMS, rng.choice((1, 1, 1, 2)))),
                first=primary.given,
                remarks=remarks,
                aliases=aliases,
                addresses=addresses,
                nationalities=nationalities,
                citizenships=citizenships,
                vessel=vessel,
            )
        )
    return entries


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if value else NULL


def _csv_line(number: int, *fields: str) -> str:
    return ",".join([str(number), *(_quoted(value) for value in fields)]) + "\n"


def ofac_csv(entries: Sequence[OfacEntry]) -> tuple[bytes, bytes, bytes]:
    """sdn.csv, alt.csv and add.csv as OFAC writes them."""
    sdn, alt, add = [], [], []
    for entry in entries:
        kind = "" if entry.kind == "entity" else entry.kind
        call_sign, vessel_type, tonnage, grt, flag, owner = entry.vessel
        sdn.append(_csv_line(entry.ent_num, entry.sdn_name, kind, "] [".join(entry.programs), entry.title,
                             call_sign, vessel_type, tonnage, grt, flag, owner, entry.remarks))  # fmt: skip
        for alias in entry.aliases:
            name = f"{alias.last}, {alias.first}" if alias.first else alias.last
            alt.append(f"{entry.ent_num},{alias.alt_num},{_quoted(alias.type)},{_quoted(name)},{NULL}\n")
        for address in entry.addresses:
            add.append(f"{entry.ent_num},{address.add_num},{_quoted(address.street)},{_quoted(address.city)},"
                       f"{_quoted(address.country)},{NULL}\n")  # fmt: skip
    sdn_bytes, alt_bytes, add_bytes = ("".join([*lines, EOF_MARK]).encode("cp1252") for lines in (sdn, alt, add))
    return sdn_bytes, alt_bytes, add_bytes


def _element(indent: int, tag: str, text: str) -> str:
    return f"{' ' * indent}<{tag}>{escape(text)}</{tag}>\n" if text else ""


def ofac_xml(entries: Sequence[OfacEntry]) -> bytes:
    """The same entries as OFAC's sdn.xml writes them."""
    out = [
        '<?xml version="1.0" standalone="yes"?>\n',
        f'<sdnList xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="{OFAC_NAMESPACE}">\n',
        f"  <publshInformation>\n    <Publish_Date>06/01/2024</Publish_Date>\n"
        f"    <Record_Count>{len(entries)}</Record_Count>\n  </publshInformation>\n",
    ]
    for entry in entries:
        out.append("  <sdnEntry>\n")
        out.append(_element(4, "uid", str(entry.ent_num)))
        out.append(_element(4, "firstName", entry.first))
        out.append(_element(4, "lastName", entry.last))
        out.append(_element(4, "title", entry.title))
        out.append(_element(4, "sdnType", entry.kind.capitalize()))
        out.append(_element(4, "remarks", entry.remarks))
        out.append(
            "    <programList>\n" + "".join(_element(6, "program", p) for p in entry.programs) + "    </programList>\n"
        )
        if entry.aliases:
            out.append("    <akaList>\n")
            for alias in entry.aliases:
                out.append("      <aka>\n" + _element(8, "uid", str(alias.alt_num)))
                out.append(_element(8, "type", ".".join(alias.type) + "."))
                out.append(_element(8, "category", "weak" if alias.weak else "strong"))
                out.append(
                    _element(8, "lastName", alias.last) + _element(8, "firstName", alias.first) + "      </aka>\n"
                )
            out.append("    </akaList>\n")
        out.append("    <addressList>\n")
        for address in entry.addresses:
            out.append(
                "      <address>\n" + _element(8, "uid", str(address.add_num)) + _element(8, "address1", address.street)
            )
            out.append(
                _element(8, "city", address.city) + _element(8, "country", address.country) + "      </address>\n"
            )
        out.append("    </addressList>\n")
        for listed, item in ((entry.nationalities, "nationality"), (entry.citizenships, "citizenship")):
            if listed:
                out.append(f"    <{item}List>\n")
                for position, country in enumerate(listed):
                    uid = _element(8, "uid", str(entry.ent_num * 10 + position))
                    main = _element(8, "mainEntry", "true" if position == 0 else "false")
                    out.append(f"      <{item}>\n{uid}{_element(8, 'country', country)}{main}      </{item}>\n")
                out.append(f"    </{item}List>\n")
        call_sign, vessel_type, tonnage, grt, flag, owner = entry.vessel
        if entry.kind == "vessel":
            out.append(
                "    <vesselInfo>\n" + _element(6, "callSign", call_sign) + _element(6, "vesselType", vessel_type)
            )
            out.append(
                _element(6, "vesselFlag", flag) + _element(6, "vesselOwner", owner) + _element(6, "tonnage", tonnage)
            )
            out.append(_element(6, "grossRegisteredTonnage", grt) + "    </vesselInfo>\n")
        out.append("  </sdnEntry>\n")
    out.append("</sdnList>\n")
    return "".join(out).encode("utf-8")


@dataclass(frozen=True, slots=True)
class UnEntry:
    dataid: int
    reference: str
    kind: str  # "individual" | "entity"
    name: tuple[str, ...]  # FIRST_NAME, SECOND_NAME, ... (an entity: FIRST_NAME only)
    list_type: str
    listed_on: str
    aliases: tuple[tuple[str, str], ...] = ()  # (QUALITY, ALIAS_NAME)
    nationalities: tuple[str, ...] = ()
    address_countries: tuple[str, ...] = ("",)  # "" an address without a country
    original_script: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # other elements as published (GENDER)


# Real entries as the UN publishes them (comments and dates of birth left out).
REAL_UN = (
    UnEntry(6907993, "CDi.001", "individual", ("ERIC", "BADEGE"), "DRC", "2012-12-31",
            nationalities=("Democratic Republic of the Congo",), address_countries=("Rwanda",),
            extra={"GENDER": "Male"}),
    UnEntry(6907994, "CDi.002", "individual", ("FRANK KAKOLELE", "BWAMBALE"), "DRC", "2005-11-01",
            aliases=(("Good", "FRANK KAKORERE"), ("Good", "FRANK KAKORERE BWAMBALE"), ("Good", "AIGLE BLANC")),
            nationalities=("Democratic Republic of the Congo",),
            address_countries=("Democratic Republic of the Congo",), extra={"GENDER": "Male"}),
    UnEntry(6907995, "CDi.003", "individual", ("GASTON", "IYAMUREMYE"), "DRC", "2010-12-01",
            aliases=(("Low", "Rumuli"), ("Good", "Byiringiro Victor Rumuli"), ("Good", "Victor Rumuri"),
                     ("Good", "Michel Byiringiro")),
            nationalities=("Rwanda",), address_countries=("Democratic Republic of the Congo",),
            extra={"GENDER": "Male"}),
    UnEntry(6907997, "CDi.005", "individual", ("JÉRÔME", "KAKWAVU BUKANDE"), "DRC", "2005-11-01",
            aliases=(("Good", "Jérôme Kakwavu"), ("Low", "Commandant Jérôme")),
            nationalities=("Democratic Republic of the Congo",), extra={"GENDER": "Male"}),
    UnEntry(3000510, "TAe.013", "entity", ("RAHAT LTD.",), "Taliban", "2012-11-21",
            aliases=(("a.k.a.", "Rahat Trading Company"), ("a.k.a.", "Haji Muhammad Qasim Sarafi"),
                     ("a.k.a.", "New Chagai Trading"), ("a.k.a.", "Musa Kalim Hawala")),
            address_countries=("",), original_script="راحت لمتد"),
    UnEntry(6908451, "TAe.014", "entity", ("HAJI BASIR AND ZARJMIL COMPANY HAWALA",), "Taliban", "2015-03-27-04:00",
            aliases=(("a.k.a.", "Haji Bashir and Zarjmil Hawala Company"),
                     ("a.k.a.", "Haji Abdul Basir and Zar Jameel Hawala"), ("a.k.a.", "Haji Basir Hawala"),
                     ("a.k.a.", "Haji Baseer Hawala"), ("a.k.a.", "Haji Abdul Basir Exchange Shop"),
                     ("a.k.a.", "Haji Basir and Zarjamil Currency Exchange"),
                     ("a.k.a.", "Haji Zar Jamil, Haji Abdul Baseer Money Changer")),
            address_countries=("Pakistan", "Pakistan", "Afghanistan", "United Arab Emirates",
                               "Iran (Islamic Republic of)"),
            original_script="د حاجی بصیر او ضرجمیل کمپنی حواله"),
    UnEntry(6908876, "YEe.001", "entity", ("THE HOUTHIS",), "Yemen", "2022-02-28",
            aliases=(("a.k.a.", "ANSARALLAH"), ("a.k.a.", "ANSAR ALLAH"), ("a.k.a.", "PARTISANS OF GOD"),
                     ("a.k.a.", "SUPPORTERS OF GOD")),
            address_countries=("Yemen",)),
)  # fmt: skip


def un_country(code: str) -> str:
    return UN_COUNTRY_NAMES.get(code) or ofac_name(code)


def generated_un(seed: int = UN_SEED, count: int = UN_COUNT) -> list[UnEntry]:
    rng = random.Random(seed + 1)
    entries = []
    numbers: dict[str, int] = {}
    for index, party in enumerate(generated_parties(seed, count, kinds=("individual", "entity"), wide=True)):
        list_type = rng.choice(sorted(UN_LIST_TYPES))
        prefix = UN_LIST_TYPES[list_type] + ("i" if party.kind == "individual" else "e")
        numbers[prefix] = numbers.get(prefix, 700) + 1
        primary, *others = party.names
        countries = [un_country(code) for code in party.countries]
        quality = ("Good", "Low") if party.kind == "individual" else ("a.k.a.", "f.k.a.")
        entries.append(
            UnEntry(
                9_000_001 + index,
                f"{prefix}.{numbers[prefix]:03d}",
                party.kind,
                (primary.given, primary.family) if primary.given else (primary.family,),
                list_type,
                f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                aliases=tuple((rng.choice(quality), name.full) for name in others),
                nationalities=tuple(countries[:1]) if party.kind == "individual" else (),
                address_countries=tuple(countries[1:] if party.kind == "individual" else countries) or ("",),
            )
        )
    return entries


def un_xml(entries: Sequence[UnEntry]) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n',
        '<CONSOLIDATED_LIST xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="https://scsanctions.un.org/resources/xml/sc-sanctions.xsd" '
        'dateGenerated="2024-06-01T00:00:00.000Z">\n',
    ]
    for kind, tag in (("individual", "INDIVIDUAL"), ("entity", "ENTITY")):
        out.append(f"  <{tag}S>\n")
        for entry in (entry for entry in entries if entry.kind == kind):
            out.append(f"    <{tag}>\n" + _element(6, "DATAID", str(entry.dataid)) + _element(6, "VERSIONNUM", "1"))
            parts = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")
            out += [_element(6, part, value) for part, value in zip(parts, entry.name, strict=False)]
            out.append(_element(6, "UN_LIST_TYPE", entry.list_type) + _element(6, "REFERENCE_NUMBER", entry.reference))
            out.append(_element(6, "LISTED_ON", entry.listed_on))
            out += [_element(6, name, value) for name, value in entry.extra.items()]
            out.append(_element(6, "NAME_ORIGINAL_SCRIPT", entry.original_script))
            if entry.nationalities:
                out.append("      <NATIONALITY>\n" + "".join(_element(8, "VALUE", n) for n in entry.nationalities))
                out.append("      </NATIONALITY>\n")
            out.append("      <LIST_TYPE>\n        <VALUE>UN List</VALUE>\n      </LIST_TYPE>\n")
            for quality, alias in entry.aliases or (("", ""),):
                if alias:
                    body = _element(8, "QUALITY", quality) + _element(8, "ALIAS_NAME", alias)
                else:
                    body = "        <QUALITY/>\n        <ALIAS_NAME/>\n"
                out.append(f"      <{tag}_ALIAS>\n{body}      </{tag}_ALIAS>\n")
            for country in entry.address_countries:
                body = _element(8, "COUNTRY", country) or "        <COUNTRY/>\n"
                out.append(f"      <{tag}_ADDRESS>\n{body}      </{tag}_ADDRESS>\n")
            out.append("      <SORT_KEY/>\n      <SORT_KEY_LAST_MOD/>\n" + f"    </{tag}>\n")
        out.append(f"  </{tag}S>\n")
    out.append("</CONSOLIDATED_LIST>\n")
    return "".join(out).encode("utf-8")


def build(ofac_count: int = OFAC_COUNT, un_count: int = UN_COUNT) -> dict[str, bytes]:
    """Every fixture file by its path under tests/data/sanctions."""
    ofac = [*REAL_OFAC, *generated_ofac(count=ofac_count)]
    sdn, alt, add = ofac_csv(ofac)
    return {
        "ofac/sdn.csv": sdn,
        "ofac/alt.csv": alt,
        "ofac/add.csv": add,
        "ofac/sdn.xml": ofac_xml(ofac),
        "un/consolidated.xml": un_xml([*REAL_UN, *generated_un(count=un_count)]),
    }


def expected_generated() -> tuple[list[GeneratedParty], list[GeneratedParty]]:
    """The generated parties the OFAC and UN fixtures hold, before formatting."""
    return (
        generated_parties(OFAC_SEED, OFAC_COUNT),
        generated_parties(UN_SEED, UN_COUNT, kinds=("individual", "entity"), wide=True),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ofac", type=int, default=OFAC_COUNT, help="generated OFAC entries")
    parser.add_argument("--un", type=int, default=UN_COUNT, help="generated UN entries")
    parser.add_argument("--out", type=Path, default=HERE, help="the directory to write ofac/ and un/ under")
    args = parser.parse_args(argv)
    out: Path = args.out
    for name, data in build(args.ofac, args.un).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path}: {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
