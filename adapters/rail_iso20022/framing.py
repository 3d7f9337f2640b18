"""Messages on the wire: a UTF-8 XML document behind a 4-byte big-endian length header.

Parsing is defensive: a document type declaration (and so any entity) is refused
before the parser sees it, frames are bounded, and errors name a position, never
the content, so an account id in a bad message cannot reach a log.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from . import spec

MAX_FRAME = 1 << 20


class FramingError(Exception):
    """A peer sent bytes that are not an ISO 20022 message we understand."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message: its type ("pacs.008") and its content element, namespaces stripped."""

    type: str
    body: ET.Element

    def text(self, path: str) -> str:
        """The stripped text at path under the content element; "" when absent."""
        found = self.body.find(path)
        return (found.text or "").strip() if found is not None else ""


def encode(message: Message) -> bytes:
    document = ET.Element("Document", {"xmlns": spec.namespace(message.type)})
    document.append(message.body)
    raw: bytes = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    if len(raw) > MAX_FRAME:
        raise FramingError(f"message of {len(raw)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return len(raw).to_bytes(4, "big") + raw


def decode(raw: bytes) -> Message:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise FramingError("document type declarations are not accepted")
    try:
        document = ET.fromstring(raw)
    except ET.ParseError as error:
        raise FramingError(f"malformed XML at line {error.position[0]}, column {error.position[1]}") from None
    message_type = _message_type(document.tag)
    for element in document.iter():
        element.tag = _local(element.tag)
    if document.tag != "Document" or len(document) != 1 or document[0].tag != spec.ROOTS[message_type]:
        raise FramingError(f"a {message_type} document without its {spec.ROOTS[message_type]} element")
    return Message(message_type, document[0])


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; asyncio.IncompleteReadError when the peer closed the connection."""
    length = int.from_bytes(await reader.readexactly(4), "big")
    if length > MAX_FRAME:
        raise ConnectionError(f"frame of {length} bytes exceeds the limit; the stream cannot be trusted")
    return decode(await reader.readexactly(length))


def _message_type(tag: str) -> str:
    uri = tag[1:].partition("}")[0] if tag.startswith("{") else ""
    name = uri.removeprefix(spec.NAMESPACE_PREFIX)
    message_type = name[:8]
    if not uri.startswith(spec.NAMESPACE_PREFIX) or message_type not in spec.ROOTS:
        raise FramingError("not a known ISO 20022 message namespace")
    return message_type


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
