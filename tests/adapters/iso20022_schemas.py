"""The official ISO 20022 schemas, offline: XSDs shipped inside PyPI packages (the dev extras).

A document whose official XSD a package ships is validated twice, by xmlschema and by
libxml2 (lxml), which word their errors differently. No package ships the official XSD
of head.001.001.02, pacs.002.001.12 or pacs.004.001.11 (pacs008 ships abridged schemas
under those names, not the official ones), so those are bound strictly to the classes
pyiso20022 generated from the official schemas, then written back: names, nesting and
mandatory elements must bind, and the order must survive the round trip. That checks
structure and order, not the length and pattern facets.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

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
    return []
