"""Sanctions lists in their published formats: OFAC's CSV and XML, the UN's consolidated XML."""

from __future__ import annotations

import shutil
import string
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.risk.sanctions.countries import alpha2
from switch.risk.sanctions.lists import (
    OFAC_CSV_FILES,
    ListedParty,
    ListError,
    ListSource,
    load,
    parse_ofac_csv,
    parse_ofac_xml,
    parse_un_xml,
)
from tests.data.sanctions import make_fixtures
from tests.data.sanctions.make_fixtures import REAL_OFAC, REAL_UN, Alias, OfacEntry, ofac_csv

DATA = Path(__file__).parent / "data" / "sanctions"
OFAC_DIR = DATA / "ofac"
SDN_XML = OFAC_DIR / "sdn.xml"
UN_XML = DATA / "un" / "consolidated.xml"

REAL_OFAC_PARTIES = (
    ListedParty("ofac:36", ("AEROCARIBBEAN AIRLINES", "AERO-CARIBBEAN"), "entity", ("CUBA",), ("CU",)),
    ListedParty("ofac:306", ("BANCO NACIONAL DE CUBA", "NATIONAL BANK OF CUBA"), "entity", ("CUBA",),
                ("CH", "ES", "JP", "PA")),
    ListedParty("ofac:1287", ("LA EMPRESA CUBANA DE FLETES", "CUFLET", "CUBAN FREIGHT ENTERPRISE"), "entity", ("CUBA",),
                ("KP", "RU", "ES", "DE", "IT", "PL", "NL", "MX", "AR", "CA", "BG")),
    ListedParty("ofac:2686", ("NASRALLAH, Hasan", "NASRALLAH, Hasan Abd-al-Karim"), "individual", ("SDGT", "SYRIA"),
                ("LB",)),
    ListedParty("ofac:2691", ("YASSIN, Sheik Ahmed Ismail",), "individual", ("SDGT",), ()),  # "undetermined"
    ListedParty("ofac:4234", ("HERMANN",), "vessel", ("CUBA",), ()),
    ListedParty("ofac:4257", ("ABDALLAH, Ramadan", "ABDULLAH, Dr. Ramadan", "SHALLAH, Dr. Ramadan Abdullah",
                              "SHALLAH, Ramadan Abdalla Mohamed"), "individual", ("SDGT",), ("SY",)),
    ListedParty("ofac:4307", ("ABRIL CORTEZ, Oliverio", "CORTEZ, Oliverio Abril", "ABRIL CORTES, Oliverio"),
                "individual", ("SDNT",), ("CO",)),
)  # fmt: skip

REAL_UN_PARTIES = (
    ListedParty("un:CDi.001", ("ERIC BADEGE",), "individual", ("DRC",), ("CD", "RW")),
    ListedParty("un:CDi.002", ("FRANK KAKOLELE BWAMBALE", "FRANK KAKORERE", "FRANK KAKORERE BWAMBALE", "AIGLE BLANC"),
                "individual", ("DRC",), ("CD",)),
    ListedParty("un:CDi.003", ("GASTON IYAMUREMYE", "Rumuli", "Byiringiro Victor Rumuli", "Victor Rumuri",
                               "Michel Byiringiro"), "individual", ("DRC",), ("RW", "CD")),
    ListedParty("un:CDi.005", ("JÉRÔME KAKWAVU BUKANDE", "Jérôme Kakwavu", "Commandant Jérôme"), "individual", ("DRC",),
                ("CD",)),
    ListedParty("un:TAe.013", ("RAHAT LTD.", "Rahat Trading Company", "Haji Muhammad Qasim Sarafi",
                               "New Chagai Trading", "Musa Kalim Hawala", "راحت لمتد"), "entity", ("Taliban",), ()),
    ListedParty("un:TAe.014", ("HAJI BASIR AND ZARJMIL COMPANY HAWALA", "Haji Bashir and Zarjmil Hawala Company",
                               "Haji Abdul Basir and Zar Jameel Hawala", "Haji Basir Hawala", "Haji Baseer Hawala",
                               "Haji Abdul Basir Exchange Shop", "Haji Basir and Zarjamil Currency Exchange",
                               "Haji Zar Jamil, Haji Abdul Baseer Money Changer", "د حاجی بصیر او ضرجمیل کمپنی حواله"),
                "entity", ("Taliban",), ("PK", "AF", "AE", "IR")),
    ListedParty("un:YEe.001", ("THE HOUTHIS", "ANSARALLAH", "ANSAR ALLAH", "PARTISANS OF GOD", "SUPPORTERS OF GOD"),
                "entity", ("Yemen",), ("YE",)),
)  # fmt: skip


def _csv_files(directory: Path = OFAC_DIR) -> tuple[bytes, bytes, bytes]:
    sdn, alt, add = ((directory / name).read_bytes() for name in OFAC_CSV_FILES)
    return sdn, alt, add


@pytest.fixture(scope="module")
def ofac_csv_parties() -> list[ListedParty]:
    return parse_ofac_csv(*_csv_files())


@pytest.fixture(scope="module")
def ofac_xml_parties() -> list[ListedParty]:
    return parse_ofac_xml(SDN_XML.read_bytes())


@pytest.fixture(scope="module")
def un_parties() -> list[ListedParty]:
    return parse_un_xml(UN_XML.read_bytes())


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A writable copy of the fixtures: tmp_path/ofac/..., tmp_path/un/..."""
    shutil.copytree(OFAC_DIR, tmp_path / "ofac")
    shutil.copytree(UN_XML.parent, tmp_path / "un")
    return tmp_path


def test_the_committed_fixtures_are_what_the_generator_writes() -> None:
    for name, data in make_fixtures.build().items():
        assert (DATA / name).read_bytes() == data, f"{name} drifted: run python -m tests.data.sanctions.make_fixtures"
    assert sum(len(data) for data in make_fixtures.build().values()) < 2_000_000


# ---------------------------------------------------------------------------- OFAC CSV


def test_ofac_csv_parses_every_entry(ofac_csv_parties: list[ListedParty]) -> None:
    generated, _ = make_fixtures.expected_generated()
    assert len(ofac_csv_parties) == len(REAL_OFAC) + make_fixtures.OFAC_COUNT
    assert len({party.uid for party in ofac_csv_parties}) == len(ofac_csv_parties)
    assert Counter(party.kind for party in ofac_csv_parties[len(REAL_OFAC) :]) == Counter(p.kind for p in generated)
    assert {"individual", "entity", "vessel", "aircraft"} <= {party.kind for party in ofac_csv_parties}


def test_ofac_csv_real_entries_as_published(ofac_csv_parties: list[ListedParty]) -> None:
    assert tuple(ofac_csv_parties[: len(REAL_OFAC_PARTIES)]) == REAL_OFAC_PARTIES


def test_ofac_csv_generated_entries_keep_names_kinds_and_countries(ofac_csv_parties: list[ListedParty]) -> None:
    generated, _ = make_fixtures.expected_generated()
    for party, made in zip(ofac_csv_parties[len(REAL_OFAC) :], generated, strict=True):
        assert party.names == tuple(name.ofac for name in made.names)
        assert (party.kind, party.countries) == (made.kind, made.countries)
        assert party.programs and all(program in make_fixtures.OFAC_PROGRAMS for program in party.programs)
    assert any(len(party.programs) > 1 for party in ofac_csv_parties[len(REAL_OFAC) :])
    # Windows-1252 decoded: the diacritics come back as written
    assert any(name.startswith(("MÜLLER, ", "NÚÑEZ, ", "PEÑA, ")) for party in ofac_csv_parties for name in party.names)


def test_ofac_csv_nulls_programs_and_end_of_file_mark() -> None:
    sdn = (
        b'1,"ONE TRADING LLC",-0- ,"SDGT] [IRGC] [NPWMD",-0-,"-0- ",-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'
        b'2,"DOE, Jane","individual",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"DOB 1970; nationality Iran; '
        b'alt. citizen Russia; citizen Narnia."\r\n'
        b"\n\x1a"
    )
    alt = b'1,10,"fka",-0- ,-0- \n1,11,"aka","ONE, TWO AND \xd6NE",-0- \n\x1a'
    add = b'1,20,-0- ,-0- ,-0- ,-0- \n2,21,-0- ,"Tehran","Iran",-0- \n1,22,"-0-","-0-","Korea, North","-0-"\n\x1a'
    assert parse_ofac_csv(sdn, alt, add) == [
        ListedParty("ofac:1", ("ONE TRADING LLC", "ONE, TWO AND ÖNE"), "entity", ("SDGT", "IRGC", "NPWMD"), ("KP",)),
        ListedParty("ofac:2", ("DOE, Jane",), "individual", (), ("IR", "RU")),
    ]
    assert parse_ofac_csv(sdn.removesuffix(b"\x1a"), alt, add) == parse_ofac_csv(sdn, alt, add)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ((b'1,"A",-0- ,-0- ,-0- ,-0- \n', b"", b""), "sdn.csv line 1: 6 fields, expected 12"),
        ((b'x,"A"' + b",-0- " * 10 + b"\n", b"", b""), "sdn.csv line 1: ent_num"),
        ((b'1,"A' + b",-0- " * 10 + b"\n", b"", b""), "sdn.csv line 1"),  # an unclosed quote
        ((b"1,-0- " + b",-0- " * 10 + b"\n", b"", b""), "sdn.csv line 1: no SDN_Name"),
        ((b'1,"A"' + b",-0- " * 10 + b"\n" + b'1,"B"' + b",-0- " * 10 + b"\n", b"", b""), "sdn.csv line 2: ent_num 1"),
        ((b'1,"A"' + b",-0- " * 10 + b"\n", b'2,1,"aka","B",-0- \n', b""), "alt.csv line 1: ent_num 2 is not in"),
        ((b'1,"A"' + b",-0- " * 10 + b"\n", b"", b'1,1,-0- ,-0- ,"Cuba"\n'), "add.csv line 1: 5 fields"),
    ],
)
def test_ofac_csv_malformed(files: tuple[bytes, bytes, bytes], message: str) -> None:
    with pytest.raises(ListError, match=message.replace("(", r"\(")):
        parse_ofac_csv(*files)


_CSV_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " ,.'\"-&/()" + "ÀÉÑÖÜßàéñöüŒ€",
    min_size=1,
    max_size=40,
).map(str.strip)


@settings(max_examples=150, deadline=None)
@given(last=_CSV_TEXT, first=_CSV_TEXT, alias=_CSV_TEXT)
def test_ofac_csv_round_trips_names_with_commas_and_quotes(last: str, first: str, alias: str) -> None:
    if not last or "-0-" in (last, first, alias):
        return
    entry = OfacEntry(7, last, "individual", ("SDGT",), first=first, aliases=(Alias(8, "aka", alias),) if alias else ())
    (party,) = parse_ofac_csv(*ofac_csv([entry]))
    assert party.names == tuple(dict.fromkeys([entry.sdn_name, *([alias] if alias else [])]))


# ---------------------------------------------------------------------------- OFAC XML


def test_ofac_xml_and_csv_describe_the_same_parties(
    ofac_csv_parties: list[ListedParty], ofac_xml_parties: list[ListedParty]
) -> None:
    assert [party.uid for party in ofac_xml_parties] == [party.uid for party in ofac_csv_parties]
    for from_xml, from_csv in zip(ofac_xml_parties, ofac_csv_parties, strict=True):
        assert set(from_xml.names) == set(from_csv.names)
        assert from_xml.names[0] == from_csv.names[0]
        assert (from_xml.kind, from_xml.programs) == (from_csv.kind, from_csv.programs)
        assert set(from_xml.countries) == set(from_csv.countries)


def test_ofac_xml_real_entries(ofac_xml_parties: list[ListedParty]) -> None:
    assert tuple(ofac_xml_parties[: len(REAL_OFAC_PARTIES)]) == REAL_OFAC_PARTIES


def test_ofac_xml_namespace_nationality_and_citizenship() -> None:
    document = b"""<?xml version="1.0" standalone="yes"?>
<sdnList xmlns="http://tempuri.org/sdnList.xsd">
  <sdnEntry><uid>5</uid><firstName>Ivan</firstName><lastName>PETROV</lastName><sdnType>Individual</sdnType>
    <programList><program>RUSSIA-EO14024</program><program>CYBER2</program></programList>
    <akaList><aka><uid>6</uid><type>a.k.a.</type><category>weak</category><lastName>VANYA</lastName></aka></akaList>
    <addressList><address><uid>7</uid><city>Minsk</city><country>Belarus</country></address></addressList>
    <nationalityList><nationality><uid>8</uid><country>Russia</country><mainEntry>true</mainEntry></nationality>
    </nationalityList>
    <citizenshipList><citizenship><uid>9</uid><country>Cyprus</country><mainEntry>true</mainEntry></citizenship>
    </citizenshipList>
  </sdnEntry>
  <sdnEntry><uid>10</uid><lastName>M/V NOWHERE</lastName><sdnType>Unknown</sdnType><programList/></sdnEntry>
</sdnList>"""
    assert parse_ofac_xml(document) == [
        ListedParty(
            "ofac:5", ("PETROV, Ivan", "VANYA"), "individual", ("RUSSIA-EO14024", "CYBER2"), ("BY", "RU", "CY")
        ),
        ListedParty("ofac:10", ("M/V NOWHERE",), "", (), ()),
    ]


# ---------------------------------------------------------------------------- UN XML


def test_un_xml_real_entries(un_parties: list[ListedParty]) -> None:
    real = {party.uid: party for party in un_parties if party.uid in {p.uid for p in REAL_UN_PARTIES}}
    assert tuple(real[party.uid] for party in REAL_UN_PARTIES) == REAL_UN_PARTIES


def test_un_xml_generated_entries(un_parties: list[ListedParty]) -> None:
    _, generated = make_fixtures.expected_generated()
    assert len(un_parties) == len(REAL_UN) + make_fixtures.UN_COUNT
    parsed = [party for party in un_parties if party.uid not in {p.uid for p in REAL_UN_PARTIES}]
    # the file lists individuals, then entities: the generated order within each kind
    for kind in ("individual", "entity"):
        made = [party for party in generated if party.kind == kind]
        found = [party for party in parsed if party.kind == kind]
        assert [party.names for party in found] == [tuple(name.full for name in p.names) for p in made]
        assert [party.countries for party in found] == [p.countries for p in made]
    assert all(party.programs[0] in make_fixtures.UN_LIST_TYPES for party in parsed)
    assert any("\u0400" <= char <= "\u04ff" for party in parsed for name in party.names for char in name)


def test_country_names_of_both_lists() -> None:
    for name, code in [("Korea, North", "KP"), ("Democratic People's Republic of Korea", "KP"), ("Burma", "MM"),
                       ("Iran (Islamic Republic of)", "IR"), ("Congo, Democratic Republic of the", "CD"),
                       ("  russian federation ", "RU"), ("Côte d'Ivoire", "CI"), ("undetermined", ""),
                       ("", "")]:  # fmt: skip
        assert alpha2(name) == code, name


# ---------------------------------------------------------------------------- load


def _sources(root: Path) -> list[ListSource]:
    return [ListSource("ofac-csv", root / "ofac"), ListSource("un-xml", root / "un" / "consolidated.xml")]


def test_load_and_version(copied: Path) -> None:
    first = load(_sources(copied))
    assert first.sources == ("ofac-csv", "un-xml")
    assert len(first.parties) == len(REAL_OFAC) + make_fixtures.OFAC_COUNT + len(REAL_UN) + make_fixtures.UN_COUNT
    assert len(first.version) == 64
    assert load(_sources(copied)).version == first.version
    assert load(_sources(DATA)).version == first.version  # the files' names and bytes, not where they lie
    assert load(list(reversed(_sources(copied)))).version == first.version
    sdn = copied / "ofac" / "sdn.csv"
    sdn.write_bytes(sdn.read_bytes().replace(b"AEROCARIBBEAN", b"AEROCARIBBEAM", 1))
    changed = load(_sources(copied))
    assert changed.version != first.version
    assert changed.parties[0].names[0] == "AEROCARIBBEAM AIRLINES"
    xml = load([ListSource("ofac-xml", SDN_XML)])
    assert xml.sources == ("ofac-xml",) and xml.version not in (first.version, changed.version)


def test_load_refuses_a_missing_file(copied: Path) -> None:
    (copied / "ofac" / "add.csv").unlink()
    with pytest.raises(ListError, match=r"add\.csv: cannot be read"):
        load(_sources(copied))
    with pytest.raises(ListError, match=r"absent\.xml: cannot be read"):
        load([ListSource("un-xml", copied / "absent.xml")])


def test_load_refuses_a_truncated_csv_row(copied: Path) -> None:
    sdn = copied / "ofac" / "sdn.csv"
    data = sdn.read_bytes()
    sdn.write_bytes(data[: data.index(b"\n", len(data) // 2)] + b'\n9999999,"CUT OFF",-0- ,"SDGT"\n')
    with pytest.raises(ListError, match=r"sdn\.csv line \d+: 4 fields, expected 12"):
        load(_sources(copied))


def test_load_refuses_malformed_xml(copied: Path) -> None:
    un = copied / "un" / "consolidated.xml"
    un.write_bytes(un.read_bytes()[:-200])
    with pytest.raises(ListError, match=r"consolidated\.xml: malformed XML at line \d+"):
        load(_sources(copied))
    un.write_bytes(b"<?xml version='1.0'?><sdnList/>")
    with pytest.raises(ListError, match="root element <sdnList>, expected <CONSOLIDATED_LIST>"):
        load(_sources(copied))


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<CONSOLIDATED_LIST>&lol2;</CONSOLIDATED_LIST>",
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><CONSOLIDATED_LIST/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><CONSOLIDATED_LIST/>'.encode("utf-16"),
    ],
)
def test_load_refuses_document_type_declarations(tmp_path: Path, document: bytes) -> None:
    path = tmp_path / "consolidated.xml"
    path.write_bytes(document)
    with pytest.raises(ListError, match=r"consolidated\.xml: (document type declarations|not in an ASCII)"):
        load([ListSource("un-xml", path)])


def test_load_refuses_empty_lists_duplicates_and_unknown_formats(copied: Path) -> None:
    for name in OFAC_CSV_FILES:
        (copied / "ofac" / name).write_bytes(b"\x1a")
    with pytest.raises(ListError, match="no entries"):
        load(_sources(copied))
    with pytest.raises(ListError, match="listed twice"):
        load([ListSource("ofac-csv", OFAC_DIR), ListSource("ofac-xml", SDN_XML)])
    with pytest.raises(ListError, match="unknown list format"):
        load([ListSource("eu-xml", UN_XML)])  # type: ignore[arg-type]
    with pytest.raises(ListError, match="no sanctions list sources"):
        load([])
