"""The official ISO 20022 schemas, offline: XSDs shipped inside PyPI packages (the dev extras).

A document whose official XSD a package ships is validated twice, by xmlschema and by
libxml2 (lxml), which word their errors differently. No package ships the official XSD
of head.001.001.02, pacs.002.001.12 or pacs.004.001.11 (pacs008 ships abridged schemas
under those names, not the official ones), so those are bound strictly to the classes
pyiso20022 generated from the official schemas, then written back: names and nesting
must bind, and the order must survive the round trip. The generated classes keep the
official schema's facets in their fields' metadata, and the bound document is checked
against every one of them: required elements and attributes, occurrences, lengths,
patterns, and an amount's bounds, total and fraction digits.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import lxml.etree  # type: ignore[import-untyped]  # no stubs for lxml in the dev extras
import xmlschema
from xsdata.exceptions import ParserError
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.parsers.config import ParserConfig
from xsdata.formats.dataclass.serializers import XmlSerializer

# Message definition ("pacs.008.001.08") -> the package that ships its official XSD.
PACKAGES = {
    "acmt.023.001.04": "acmt001",
    "acmt.024.001.04": "acmt001",
    "pacs.008.001.08": "pacs008",
    "camt.056.001.12": "camt_exceptions",
    "camt.029.001.14": "camt_exceptions",
}
GENERATED = frozenset({"pacs.002.001.12", "pacs.004.001.11"})  # only generated classes: see above
DEFINITIONS = frozenset(PACKAGES) | GENERATED
HEADER = "head.001.001.02"


def xsd_path(definition: str) -> Path:
    spec = importlib.util.find_spec(PACKAGES[definition])
    assert spec is not None and spec.submodule_search_locations, PACKAGES[definition]
    return Path(next(iter(spec.submodule_search_locations))) / "templates" / definition / f"{definition}.xsd"


@functools.cache
def _xmlschema(definition: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(xsd_path(definition)))


@functools.cache
def _libxml2(definition: str) -> lxml.etree.XMLSchema:
    return lxml.etree.XMLSchema(lxml.etree.parse(str(xsd_path(definition))))


def document_errors(definition: str, document: ET.Element) -> list[str]:
    """What each validator finds wrong with a <Document>; [] when it is valid."""
    if definition in GENERATED:
        return _binding_errors(definition, document, "Document")
    raw = ET.tostring(document, encoding="utf-8")
    errors = [f"xmlschema: {error.reason} at {error.path}" for error in _xmlschema(definition).iter_errors(raw)]
    libxml2 = _libxml2(definition)
    if not libxml2.validate(lxml.etree.fromstring(raw)):
        errors.extend(f"libxml2: {entry.message}" for entry in libxml2.error_log)
    return errors


def header_errors(header: ET.Element) -> list[str]:
    """What binding an <AppHdr> to the generated head.001.001.02 classes finds wrong."""
    return _binding_errors(HEADER, header, "AppHdr")


def _binding_errors(definition: str, element: ET.Element, root: str) -> list[str]:
    family = definition.partition(".")[0]
    generated = importlib.import_module(f"pyiso20022.{family}.{definition.replace('.', '_')}")
    parser = XmlParser(ParserConfig(fail_on_unknown_properties=True, fail_on_unknown_attributes=True))
    try:
        bound = parser.from_bytes(ET.tostring(element, encoding="utf-8"), getattr(generated, root))
    except (ParserError, TypeError) as error:
        return [f"{definition}: {error}"]
    written = ET.fromstring(XmlSerializer().render(bound).encode())
    if [e.tag for e in written.iter()] != [e.tag for e in element.iter()]:
        return [f"{definition}: elements out of order, or lost in binding"]
    return [f"{definition}: {error}" for error in facet_errors(bound, root)]


def facet_errors(bound: object, path: str) -> list[str]:
    """What a bound document breaks of the facets its generated classes carry from the XSD."""
    errors: list[str] = []
    for field in dataclasses.fields(bound):  # type: ignore[arg-type]  # a generated dataclass
        meta = field.metadata
        value = getattr(bound, field.name)
        where = f"{path}/{meta.get('name', field.name)}"
        values = value if isinstance(value, list) else [] if value is None else [value]
        least = meta.get("min_occurs", 1 if meta.get("required") else 0)
        if len(values) < least:
            errors.append(f"{where}: {len(values)} present, at least {least} required")
        if "max_occurs" in meta and len(values) > meta["max_occurs"]:
            errors.append(f"{where}: {len(values)} present, at most {meta['max_occurs']} allowed")
        for item in values:
            errors.extend(_value_errors(item, meta, where))
    return errors


def _value_errors(value: object, meta: Mapping[str, Any], where: str) -> list[str]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return facet_errors(value, where)
    errors = []
    if isinstance(value, str):
        if len(value) < meta.get("min_length", 0) or len(value) > meta.get("max_length", len(value)):
            errors.append(f"{where}: {len(value)} characters, outside its length facets")
        if "pattern" in meta and re.fullmatch(meta["pattern"], value) is None:
            errors.append(f"{where}: does not match the pattern {meta['pattern']}")
    if isinstance(value, Decimal):
        _, digits, exponent = value.as_tuple()
        fraction = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if "min_inclusive" in meta and value < meta["min_inclusive"]:
            errors.append(f"{where}: below {meta['min_inclusive']}")
        if fraction > meta.get("fraction_digits", fraction):
            errors.append(f"{where}: {fraction} fraction digits, at most {meta['fraction_digits']}")
        if len(digits) > meta.get("total_digits", len(digits)):
            errors.append(f"{where}: {len(digits)} digits, at most {meta['total_digits']}")
    return errors
