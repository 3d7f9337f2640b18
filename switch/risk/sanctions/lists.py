"""Sanctions lists in their published formats, loaded into one list of parties.

Three formats: OFAC's legacy CSV files (sdn.csv, alt.csv, add.csv), OFAC's sdn.xml and
the UN Security Council's consolidated list XML. Each party keeps every name it is
published under (primary name first, then its aliases, in the published order), its
kind, its programs and the countries it names, as ISO 3166-1 alpha-2 codes.

Loading is all or nothing: a file that is missing, malformed or empty raises ListError,
so a failed refresh keeps the list already loaded. A list's version is a digest of the
files' bytes, so the same files always give the same version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .countries import alpha2

ListFormat = Literal["ofac-csv", "ofac-xml", "un-xml"]
FORMATS: tuple[ListFormat, ...] = ("ofac-csv", "ofac-xml", "un-xml")
OFAC_CSV_FILES = ("sdn.csv", "alt.csv", "add.csv")
KINDS = ("individual", "entity", "vessel", "aircraft")

_NULL = "-0-"
_SDN_FIELDS, _ALT_FIELDS, _ADD_FIELDS = 12, 5, 6
_EOF = "\x1a"  # the DOS end-of-file mark OFAC's files end with
# "nationality Lebanon", "alt. citizen Iran" in an SDN's remarks
_REMARKED_COUNTRY = re.compile(r"\b(?:nationality|citizen(?:ship)?) ([^;]+)")


class ListError(Exception):
    """A list file missing or not what it claims; the message names the file and where."""


@dataclass(frozen=True, slots=True)
class ListedParty:
    uid: str  # source-prefixed and stable: "ofac:36", "un:QDi.001"
    names: tuple[str, ...]  # primary name first, then every alias, as published
    kind: str  # "individual" | "entity" | "vessel" | "aircraft" | "" (unknown)
    programs: tuple[str, ...]  # OFAC programs ("SDGT",); UN: the list type ("Al-Qaida",)
    countries: tuple[str, ...]  # alpha-2 codes, upper-case, first mention first, no repeats


@dataclass(frozen=True, slots=True)
class SanctionsList:
    version: str  # SHA-256 hex over the source files' names and bytes
    parties: tuple[ListedParty, ...]
    sources: tuple[str, ...]  # the formats loaded, in order: ("ofac-csv", "un-xml")


@dataclass(frozen=True, slots=True)
class ListSource:
    format: ListFormat
    path: Path  # ofac-csv: the directory holding sdn.csv, alt.csv and add.csv; else the XML file


def load(sources: Sequence[ListSource]) -> SanctionsList:
    """Reads and parses every source, all or nothing (ListError)."""
    if not sources:
        raise ListError("no sanctions list sources")
    parties: list[ListedParty] = []
    files: list[tuple[str, str, bytes]] = []
    for source in sources:
        if source.format not in FORMATS:
            raise ListError(f"{source.path}: unknown list format {source.format!r}")
        if source.format == "ofac-csv":
            sdn, alt, add = (_read(source.path / name) for name in OFAC_CSV_FILES)
            files += [(source.format, name, data) for name, data in zip(OFAC_CSV_FILES, (sdn, alt, add), strict=True)]
            parsed = parse_ofac_csv(sdn, alt, add)
        else:
            data = _read(source.path)
            files.append((source.format, source.path.name, data))
            parse = parse_ofac_xml if source.format == "ofac-xml" else parse_un_xml
            parsed = parse(data, name=source.path.name)
        if not parsed:
            raise ListError(f"{source.path}: no entries")
        parties += parsed
    seen: set[str] = set()
    for party in parties:
        if party.uid in seen:
            raise ListError(f"{party.uid} listed twice across the sources")
        seen.add(party.uid)
    return SanctionsList(_version(files), tuple(parties), tuple(source.format for source in sources))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ListError(f"{path}: cannot be read ({error.strerror or type(error).__name__})") from None


def _version(files: Iterable[tuple[str, str, bytes]]) -> str:
    """The same files, in whatever order the sources name them, give the same version."""
    digest = hashlib.sha256()
    for list_format, name, data in sorted(files, key=lambda file: (file[0], file[1])):
        label = f"{list_format}/{name}".encode()
        digest.update(len(label).to_bytes(4, "big") + label + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _countries(names: Iterable[str]) -> tuple[str, ...]:
    codes = (alpha2(name) for name in names if name)
    return tuple(dict.fromkeys(code for code in codes if code))


# ---------------------------------------------------------------------------- OFAC CSV


def _decode(data: bytes, name: str) -> str:
    """OFAC's files are Windows-1252 in practice (latin-1 for the bytes it leaves undefined);
    a file that starts with the UTF-8 byte order mark is read as UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ListError(f"{name}: not UTF-8 after its byte order mark (byte {error.start + 3})") from None
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # a byte cp1252 leaves undefined
        return data.decode("latin-1")


def _value(field: str) -> str:
    value = field.strip()
    return "" if value == _NULL else value


def _rows(data: bytes, name: str, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of each record; blank lines and the trailing EOF mark skipped."""
    reader = csv.reader(io.StringIO(_decode(data, name), newline=""), strict=True)
    try:
        for row in reader:
            if not row or (len(row) == 1 and row[0].strip(" \t\r\n" + _EOF) == ""):
                continue
            if len(row) != width:
                raise ListError(f"{name} line {reader.line_num}: {len(row)} fields, expected {width}")
            yield reader.line_num, [_value(field) for field in row]
    except csv.Error as error:
        raise ListError(f"{name} line {reader.line_num}: {error}") from None


def _ent_num(value: str, name: str, line: int) -> str:
    if not value.isdigit():
        raise ListError(f"{name} line {line}: ent_num {value[:20]!r} is not a number")
    return str(int(value))


def _programs(value: str) -> tuple[str, ...]:
    """The CSV's programs, written "SDGT] [IRGC" -> ("SDGT", "IRGC")."""
    return tuple(program for part in value.split("] [") if (program := part.strip(" []")))


def _csv_kind(value: str) -> str:
    kind = value.lower()
    return "entity" if not kind else kind if kind in KINDS else ""


def parse_ofac_csv(sdn: bytes, alt: bytes, add: bytes) -> list[ListedParty]:
    """OFAC's legacy CSV files: no header, "-0-" for null, alt.csv and add.csv joined on ent_num."""
    entries: dict[str, tuple[str, str, tuple[str, ...], str]] = {}
    for line, row in _rows(sdn, "sdn.csv", _SDN_FIELDS):
        ent_num = _ent_num(row[0], "sdn.csv", line)
        if ent_num in entries:
            raise ListError(f"sdn.csv line {line}: ent_num {ent_num} listed twice")
        if not row[1]:
            raise ListError(f"sdn.csv line {line}: no SDN_Name")
        entries[ent_num] = (row[1], _csv_kind(row[2]), _programs(row[3]), row[11])
    aliases: dict[str, list[str]] = {}
    for line, row in _rows(alt, "alt.csv", _ALT_FIELDS):
        ent_num = _ent_num(row[0], "alt.csv", line)
        if ent_num not in entries:
            raise ListError(f"alt.csv line {line}: ent_num {ent_num} is not in sdn.csv")
        if row[3]:
            aliases.setdefault(ent_num, []).append(row[3])
    places: dict[str, list[str]] = {}
    for line, row in _rows(add, "add.csv", _ADD_FIELDS):
        ent_num = _ent_num(row[0], "add.csv", line)
        if ent_num not in entries:
            raise ListError(f"add.csv line {line}: ent_num {ent_num} is not in sdn.csv")
        places.setdefault(ent_num, []).append(row[4])
    parties = []
    for ent_num, (name, kind, programs, remarks) in entries.items():
        remarked = [match.group(1).strip().rstrip(".") for match in _REMARKED_COUNTRY.finditer(remarks)]
        parties.append(
            ListedParty(
                uid=f"ofac:{ent_num}",
                names=tuple(dict.fromkeys((name, *aliases.get(ent_num, ())))),
                kind=kind,
                programs=programs,
                countries=_countries([*places.get(ent_num, ()), *remarked]),
            )
        )
    return parties


# ---------------------------------------------------------------------------- XML


def _xml(data: bytes, name: str, root_tag: str) -> ET.Element:
    """Parsed with document type declarations (so entities, internal or external) refused. The
    byte search finds them in any encoding that writes ASCII as ASCII; the others (UTF-16, UTF-32)
    are refused, as no list is published in them."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        raise ListError(f"{name}: not in an ASCII-compatible encoding")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ListError(f"{name}: document type declarations are not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        line, column = error.position
        raise ListError(f"{name}: malformed XML at line {line}, column {column}") from None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.rpartition("}")[2]
    if root.tag != root_tag:
        raise ListError(f"{name}: root element <{root.tag[:40]}>, expected <{root_tag}>")
    return root


def _text(element: ET.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return " ".join((found.text or "").split()) if found is not None else ""


def _texts(element: ET.Element, path: str) -> list[str]:
    return [text for found in element.iterfind(path) if (text := " ".join((found.text or "").split()))]


def _ofac_name(element: ET.Element) -> str:
    """As the CSV writes it: "LAST, First" for a name in two parts, else the one part."""
    last, first = _text(element, "lastName"), _text(element, "firstName")
    return f"{last}, {first}" if last and first else last or first


def parse_ofac_xml(data: bytes, *, name: str = "sdn.xml") -> list[ListedParty]:
    """OFAC's sdn.xml: <sdnList> of <sdnEntry>, whatever its namespace."""
    root = _xml(data, name, "sdnList")
    parties = []
    for position, entry in enumerate(root.iterfind("sdnEntry"), 1):
        uid = _text(entry, "uid")
        if not uid.isdigit():
            raise ListError(f"{name}: sdnEntry #{position} has no numeric uid")
        primary = _ofac_name(entry)
        if not primary:
            raise ListError(f"{name}: sdnEntry uid {uid} has no name")
        kind = _text(entry, "sdnType").lower()
        parties.append(
            ListedParty(
                uid=f"ofac:{int(uid)}",
                names=tuple(dict.fromkeys([primary, *filter(None, map(_ofac_name, entry.iterfind("akaList/aka")))])),
                kind=kind if kind in KINDS else "",
                programs=tuple(_texts(entry, "programList/program")),
                countries=_countries(
                    [
                        *_texts(entry, "addressList/address/country"),
                        *_texts(entry, "nationalityList/nationality/country"),
                        *_texts(entry, "citizenshipList/citizenship/country"),
                    ]
                ),
            )
        )
    return parties


def parse_un_xml(data: bytes, *, name: str = "consolidated.xml") -> list[ListedParty]:
    """The UN Security Council's consolidated list: <INDIVIDUALS> and <ENTITIES>."""
    root = _xml(data, name, "CONSOLIDATED_LIST")
    parties = []
    for kind, tag in (("individual", "INDIVIDUAL"), ("entity", "ENTITY")):
        for position, entry in enumerate(root.iterfind(f"{tag}S/{tag}"), 1):
            reference = _text(entry, "REFERENCE_NUMBER")
            if not reference:
                raise ListError(f"{name}: {tag} #{position} has no REFERENCE_NUMBER")
            parts = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")
            primary = " ".join(part for part in (_text(entry, path) for path in parts) if part)
            if not primary:
                raise ListError(f"{name}: {tag} {reference} has no name")
            aliases = _texts(entry, f"{tag}_ALIAS/ALIAS_NAME")
            original = _texts(entry, "NAME_ORIGINAL_SCRIPT")
            parties.append(
                ListedParty(
                    uid=f"un:{reference}",
                    names=tuple(dict.fromkeys([primary, *aliases, *original])),
                    kind=kind,
                    programs=tuple(_texts(entry, "UN_LIST_TYPE")),
                    countries=_countries(
                        [*_texts(entry, "NATIONALITY/VALUE"), *_texts(entry, f"{tag}_ADDRESS/COUNTRY")]
                    ),
                )
            )
    return parties
