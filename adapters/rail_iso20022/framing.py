"""Messages on the wire: a UTF-8 XML envelope behind a 4-byte big-endian length header.

The envelope holds the Business Application Header (head.001.001.02) and the
document, as instant schemes carry them: <Envelope><AppHdr/><Document/></Envelope>.

Parsing is defensive: a document type declaration (and so any entity) is refused
before the parser sees it, frames are bounded, and errors name a position, never
the content, so an account id in a bad message cannot reach a log.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from . import header, spec
from .parties import Agent

MAX_FRAME = 1 << 20
ENVELOPE = "Envelope"


class FramingError(Exception):
    """A peer sent bytes that are not an ISO 20022 message we understand."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message: its type ("pacs.008"), its content element (namespaces stripped), and
    the participants its header names."""

    type: str
    body: ET.Element
    sender: Agent
    receiver: Agent

    def text(self, path: str) -> str:
        """The stripped text at path under the content element; "" when absent."""
        found = self.body.find(path)
        return (found.text or "").strip() if found is not None else ""


def encode(message: Message) -> bytes:
    envelope = ET.Element(ENVELOPE)
    created = message.text("GrpHdr/CreDtTm") or message.text("Assgnmt/CreDtTm")
    message_id = message.text("GrpHdr/MsgId") or message.text("Assgnmt/MsgId") or message.text("Assgnmt/Id")
    envelope.append(header.build(spec.definition(message.type), message_id, message.sender, message.receiver, created))
    document = ET.SubElement(envelope, "Document", {"xmlns": spec.namespace(message.type)})
    document.append(message.body)
    raw: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    if len(raw) > MAX_FRAME:
        raise FramingError(f"message of {len(raw)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return len(raw).to_bytes(4, "big") + raw


def decode(raw: bytes) -> Message:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise FramingError("document type declarations are not accepted")
    try:
        envelope = ET.fromstring(raw)
    except ET.ParseError as error:
        raise FramingError(f"malformed XML at line {error.position[0]}, column {error.position[1]}") from None
    if envelope.tag != ENVELOPE or len(envelope) != 2 or envelope[0].tag != f"{{{spec.HEADER_NAMESPACE}}}AppHdr":
        raise FramingError("not an envelope holding a Business Application Header and a document")
    message_type = _message_type(envelope[1].tag)
    for element in envelope.iter():
        element.tag = _local(element.tag)
    app_header, document = envelope
    if header.definition(app_header) != spec.definition(message_type):
        raise FramingError(f"a {message_type} document under a header naming another definition")
    if len(document) != 1 or document[0].tag != spec.ROOTS[message_type]:
        raise FramingError(f"a {message_type} document without its {spec.ROOTS[message_type]} element")
    return Message(message_type, document[0], header.sender(app_header), header.receiver(app_header))


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
    if message_type not in spec.ROOTS or uri != spec.namespace(message_type) or _local(tag) != "Document":
        raise FramingError("not a known ISO 20022 message namespace")
    return message_type


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
